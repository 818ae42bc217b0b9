import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

@testable import IommuctlKit

@Suite("Exit codes and error lines")
struct ExitCodeTests {
    @Test("domain errors map by their stable name", arguments: [
        ("iommufdd.NotFound", CtlExit.notFound), ("iommufdd.PermissionDenied", .permissionDenied),
        ("iommufdd.Busy", .busy), ("iommufdd.Conflict", .busy), ("iommufdd.QuotaExceeded", .quota),
        ("iommufdd.LimitExceeded", .quota), ("iommufdd.TooManyClients", .quota),
        ("iommufdd.MessageTooLarge", .quota), ("iommufdd.Unsupported", .unsupported),
        ("iommufdd.PolicyRefused", .unsupported), ("iommufdd.Kernel", .kernel), ("iommufdd.IO", .kernel),
        ("iommufdd.InvalidParams", .invalidParams), ("iommufdd.ShuttingDown", .noDaemon),
        ("iommufdd.SomethingNew", .failure),
    ])
    func byName(name: String, exit: CtlExit) {
        let error = RPCError.domain(name, "message")
        #expect(CtlExit.forRPCError(error) == exit)
        #expect(CtlError(rpc: error).exit == exit)
    }

    @Test("every error name of the contract that travels on the control socket has its own exit code, not the generic 1")
    func contractNames() {
        let names = ErrorName.allCases.filter { $0.origin == .broker || $0.origin == .controlSocket }
        #expect(names.contains(.notFound) && names.contains(.shuttingDown))
        for name in names {
            let error = RPCError.domain(name.wireName, "m", code: name.rpcCode ?? -32000)
            #expect(CtlExit.forRPCError(error) != .failure, "\(name.wireName)")
        }
    }

    @Test("standard JSON-RPC codes without a name")
    func byCode() {
        #expect(CtlExit.forRPCError(.invalidParams("x")) == .invalidParams)
        #expect(CtlExit.forRPCError(.invalidRequest("x")) == .invalidParams)
        #expect(CtlExit.forRPCError(.parseError("x")) == .invalidParams)
        #expect(CtlExit.forRPCError(.methodNotFound("nope")) == .unsupported)
        #expect(CtlExit.forRPCError(.internalError("x")) == .failure)
    }

    @Test("transport failures: no daemon, stale socket, permission, the rest")
    func transport() {
        #expect(CtlError(transport: RPCTransportError(.noDaemon, errno: .ENOENT, path: "/s", message: "m")).exit == .noDaemon)
        #expect(CtlError(transport: RPCTransportError(.connectionRefused, errno: .ECONNREFUSED, path: "/s", message: "m")).exit == .noDaemon)
        let denied = CtlError(transport: RPCTransportError(.permissionDenied, errno: .EACCES, path: "/run/x.sock", message: "m"))
        #expect(denied.exit == .permissionDenied)
        #expect(denied.details.contains { $0.contains("ls -l /run/x.sock") })
        #expect(CtlError(transport: RPCTransportError(.disconnected, message: "m")).exit == .failure)
        #expect(CtlError(transport: RPCTransportError(.timedOut, message: "m")).exit == .failure)
    }

    @Test("a kernel error is one line with its name, errno and ioctl; the hint follows")
    func kernelLine() {
        let error = RPCError(IommuError(.EBUSY, "IOMMU_IOAS_UNMAP", detail: "pinned by an access"))
        let line = CtlError(rpc: error)
        #expect(line.exit == .kernel)
        #expect(line.name == "iommufdd.Kernel")
        #expect(line.message.hasSuffix("[iommufdd.Kernel, errno EBUSY, ioctl IOMMU_IOAS_UNMAP]"))
        #expect(!line.message.contains("\n"))
        let hinted = CtlError(rpc: .domain("iommufdd.QuotaExceeded", "owner vm1 would pin 2 GiB", hint: "raise quota_bytes"))
        #expect(hinted.message == "owner vm1 would pin 2 GiB [iommufdd.QuotaExceeded]")
        #expect(hinted.details == ["hint: raise quota_bytes"])
        #expect(CtlError(rpc: .methodNotFound("x.y")).message == "Method not found: x.y [JSON-RPC -32601]")
    }

    @Test("the codes are distinct and the help table lists each")
    func table() {
        let codes = CtlExit.allCases.map(\.rawValue)
        #expect(Set(codes).count == codes.count)
        for exit in CtlExit.allCases {
            #expect(CtlExit.table.contains("\(exit.rawValue)  "), "\(exit)")
        }
    }
}
