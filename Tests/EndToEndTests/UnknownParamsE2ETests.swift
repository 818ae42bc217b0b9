import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

/// The params schemas say `additionalProperties: false`, and the daemon holds to it: a param a
/// method does not take is refused with -32602 before the method runs, naming the param and the
/// nearest one it does take (a typo such as `tolerate-missing` used to be accepted and do nothing).
@Suite("End to end: unknown params are refused")
final class UnknownParamsE2ETests {
    let daemon: DaemonProcess

    init() throws { daemon = try DaemonProcess() }

    deinit { daemon.expectCleanStop() }

    @Test func aTypoIsRefusedNamingTheParamAndTheNearestOneAndNothingRuns() throws {
        let c = try daemon.client()
        try c.call("owner.create", ["name": "typo"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "typo"])["ioas"]?.int)
        let ram = try makeMemfd(bytes: 64 << 10)
        defer { close(ram) }
        try c.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "iova": 0, "length": 0x10000], fds: [ram])

        let e = try c.error("ioas.unmap", ["ioas": .int(ioas), "iova": 0, "length": 0x10000, "tolerate-missing": true])
        #expect(e.code == -32602, "\(e)")
        #expect(e.message.contains("params.tolerate-missing") && e.message.contains("did you mean \"tolerate_missing\""), "\(e)")
        #expect(e.data?["unknown_params"] == [["param": "tolerate-missing", "nearest": "tolerate_missing"]], "\(e)")
        let info = try c.call("ioas.info", ["ioas": .int(ioas)])
        #expect(info["mapping_count"] == 1, "the refused unmap must not have run: \(info)")

        let unmapped = try c.call("ioas.unmap", ["ioas": .int(ioas), "iova": 0, "length": 0x10000, "tolerate_missing": true])
        #expect(unmapped["unmapped_bytes"] == 0x10000)
        try c.call("owner.release", ["name": "typo"])
    }

    /// Every method, those without params included, refuses a param it does not take.
    @Test func everyMethodRefusesAParamItDoesNotTake() throws {
        let c = try daemon.client()
        let document = try c.call("rpc.discover")
        let methods = try #require(document["methods"]?.arrayValue)
        #expect(methods.count > 30)
        for m in methods {
            let name = try #require(m["name"]?.stringValue)
            let takesParams = !(m["params"]?.arrayValue ?? []).isEmpty
            let e = try c.error(name, ["no_such_param": 1])
            #expect(e.code == -32602, "\(name): \(e)")
            #expect(e.message.contains("params.no_such_param: \(name) "), "\(name): \(e)")
            let unknown = e.data?["unknown_params"]?.arrayValue
            #expect(unknown?.count == 1 && unknown?.first?["param"] == "no_such_param", "\(name): \(e)")
            if takesParams {
                #expect(unknown?.first?["nearest"]?.stringValue != nil && e.message.contains("did you mean"), "\(name): \(e)")
            } else {
                #expect(unknown?.first?["nearest"] == nil && e.message.contains("takes no params"), "\(name): \(e)")
            }
        }
    }

    @Test func everyUnknownParamIsNamedAndNestedOnesByTheirPath() throws {
        let c = try daemon.client()
        let ram = try makeMemfd(bytes: 4096)
        defer { close(ram) }
        let e = try c.error("ioas.map", ["ioas": 1, "fd": ["fd": 0, "index": 0], "offset": 0, "length": 4096, "writable": false], fds: [ram])
        #expect(e.code == -32602, "\(e)")
        #expect(e.data?["unknown_params"] == [["param": "fd.index", "nearest": "fd.fd"], ["param": "writable", "nearest": "writeable"]], "\(e)")
        #expect(e.message.contains("params.fd.index: params.fd of ioas.map has no param \"index\"; did you mean \"fd\"?"), "\(e)")
        #expect(e.message.contains("params.writable: ioas.map has no param \"writable\"; did you mean \"writeable\"?"), "\(e)")
    }

    /// A request of unknown params (up to the 1 MiB message limit) gets an answer of bounded
    /// size: the first 16 are named, long names shortened, and the rest counted.
    @Test func manyOrLongUnknownParamsGetABoundedAnswer() throws {
        let c = try daemon.client()
        let long = "a" + String(repeating: "x", count: 200_000)
        var params: [String: JSONValue] = ["name": "bounded", long: 1]
        for i in 0..<20_000 { params["k\(i)"] = 0 }
        let e = try c.error("owner.info", .object(params))
        #expect(e.code == -32602)
        let listed = try #require(e.data?["unknown_params"]?.arrayValue)
        #expect(listed.count == 16 && e.data?["unknown_params_total"] == 20_001, "\(listed.count) listed, data: \(e.data?["unknown_params_total"] ?? .null)")
        #expect(listed.first?["param"]?.stringValue?.hasSuffix("… (200001 characters)") == true)
        #expect(e.message.contains("and 19985 more unknown params"))
        #expect(e.json.description.utf8.count < 8192, "\(e.json.description.utf8.count) bytes")
    }

    @Test func paramsByPositionAreRefused() throws {
        let c = try daemon.client()
        let e = try c.error("daemon.ping", [1])
        #expect(e.code == -32602 && e.message.contains("by name"), "\(e)")
        #expect(try c.call("daemon.ping", [:]) == "pong")
        #expect(try c.call("daemon.ping") == "pong")
    }

    @Test func aBatchMemberWithAnUnknownParamIsRefusedAndTheOthersRun() throws {
        let c = try daemon.client()
        let answers = try c.batch([
            RPCRequest(method: "owner.create", params: ["name": "batch-typo", "huge-pages": false], id: 1),
            RPCRequest(method: "owner.create", params: ["name": "batch-ok"], id: 2),
        ], timeout: .seconds(60))
        #expect(answers[1].map { if case .failure(let e) = $0 { e.code == -32602 && e.message.contains("huge_pages") } else { false } } == true)
        #expect((try? answers[2]?.get())?["name"] == "batch-ok")
        #expect(try c.error("owner.info", ["name": "batch-typo"]).name == ErrorName.notFound)
        try c.call("owner.release", ["name": "batch-ok"])
    }

    @Test func theNearestNameIgnoresDashesAndCase() {
        let unmap = ["all", "ioas", "iova", "length", "tolerate_missing"]
        #expect(ParamsSchema.nearest(to: "tolerate-missing", among: unmap) == "tolerate_missing")
        #expect(ParamsSchema.nearest(to: "Tolerate_Missing", among: unmap) == "tolerate_missing")
        #expect(ParamsSchema.nearest(to: "iovaa", among: unmap) == "iova")
        #expect(ParamsSchema.nearest(to: "pagesize", among: ["clear", "format", "ioas", "iova", "length", "max_runs", "page_size"]) == "page_size")
        #expect(ParamsSchema.nearest(to: "x", among: []) == nil)
    }
}
