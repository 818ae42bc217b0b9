// The RPC fuzz target: the bytes of one input are what a client sends on the control socket.
//
// Each input goes, in this process, through
//   1. the JSON parser on every line (and a round trip: parse → encode → parse is stable), and
//   2. the real daemon (`Daemon` on the simulator backend, serving a socket in a temporary
//      directory, as admin): framing, JSON-RPC validation, batches, and every method's params
//      decoding and broker checks. One memfd rides with the first line, so `{"fd": 0}` works.
// The input is followed by a newline and a `daemon.ping` whose answer must come back (or the
// daemon must have closed the connection, e.g. for an oversized message): a hang is a failure.
//
// Built with libFuzzer (`scripts/fuzz`), `-D FUZZING` drops the replay `main` below and
// libFuzzer's own takes over. Built plainly, `fuzz-rpc FILE|DIR...` replays inputs through the
// same function (the regression test runs the seed corpus and every past crash that way).
import CIommufd
import Foundation
import IommufdCore
import IommufdRPC
import Logging
@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

/// The daemon every input talks to, started once.
final class FuzzDaemon: @unchecked Sendable {
    let daemon: Daemon
    let socketPath: String
    let memfd: Int32

    static let shared: FuzzDaemon = {
        do { return try FuzzDaemon() } catch {
            FileHandle.standardError.write(Data("fuzz-rpc: cannot start the daemon: \(error)\n".utf8))
            exit(2)
        }
    }()

    init() throws {
        var template = Array("/tmp/iommufdd-fuzz-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw Errno.current }
        let directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        socketPath = directory + "/control.sock"
        let configPath = directory + "/iommufdd.toml"
        try Self.config.write(toFile: configPath, atomically: true, encoding: .utf8)
        var overrides = ConfigOverrides()
        overrides.configPath = configPath
        overrides.socketPath = socketPath
        overrides.backend = .sim
        overrides.logLevel = .critical
        daemon = try Daemon(overrides: overrides)
        daemon.server.start()
        memfd = ifd_memfd_create("fuzz", 0)
        guard memfd >= 0, ftruncate(memfd, 1 << 16) == 0 else { throw Errno.current }
    }

    /// Devices the seeds name, limits small enough to be reached by an input.
    static let config = """
        [limits]
        max_message_bytes = 65536
        max_fds_per_message = 4
        max_output_buffer_bytes = 1048576
        [policy]
        dirty_tracking = "preferred"
        [devices]
        allow = ["sim-pci0", "sim-pci1", "sim-pci2", "sim-mdev0", "0000:00:03.0"]
        [[access]]
        user = 0
        role = "admin"
        trusted_vmm = true
        [[sim.iommu]]
        name = "sim-iommu0"
        dirty_tracking = true
        nesting = true
        [[sim.iommu]]
        name = "sim-iommu1"
        driver = "arm-smmuv3"
        nesting = true
        [[sim.device]]
        name = "sim-pci0"
        iommu = "sim-iommu0"
        pci_address = "0000:00:02.0"
        [[sim.device]]
        name = "sim-pci1"
        iommu = "sim-iommu0"
        pci_address = "0000:00:03.0"
        [[sim.device]]
        name = "sim-pci2"
        iommu = "sim-iommu1"
        [[sim.device]]
        name = "sim-mdev0"
        mdev = true
        """

    static let endMarker = Array(#""id":"fuzz-end""#.utf8)
    static let endRequest = Array("\n{\"jsonrpc\":\"2.0\",\"id\":\"fuzz-end\",\"method\":\"daemon.ping\"}\n".utf8)

    /// Sends one input, then the ping, and reads until the ping's answer or the end of the
    /// connection. Afterwards every owner the input created is released, so inputs do not
    /// depend on each other.
    func run(_ input: [UInt8]) {
        let client: RPCClient
        do { client = try RPCClient(path: socketPath) } catch {
            fatalError("fuzz-rpc: cannot connect to the in-process daemon: \(error)")
        }
        do {
            try client.sendRaw(input + Self.endRequest, fds: [memfd])
        } catch {
            // The daemon closed the connection early (message too large): allowed.
        }
        while true {
            let line: (bytes: [UInt8], fds: [Int32])?
            do {
                line = try client.receiveLine(timeout: .seconds(20))
            } catch {
                break  // closed by the daemon
            }
            guard let line else { fatalError("fuzz-rpc: no answer to the closing daemon.ping within 20 s: the daemon hangs") }
            for fd in line.fds { close(fd) }
            if Self.contains(line.bytes, Self.endMarker) { break }
        }
        client.close()
        cleanUp()
    }

    private func cleanUp() {
        guard daemon.service.broker.counts().owners > 0 else { return }
        guard let admin = try? RPCClient(path: socketPath),
            let list = try? admin.call("owner.list").result["owners"]?.arrayValue
        else { fatalError("fuzz-rpc: the daemon stopped answering owner.list") }
        for owner in list {
            guard let name = owner["name"]?.stringValue else { continue }
            guard let (released, fds) = try? admin.call("owner.release", params: ["name": .string(name)]) else {
                fatalError("fuzz-rpc: owner.release \(name) failed")
            }
            for fd in fds { close(fd) }
            if released["released"]?.boolValue != true { fatalError("fuzz-rpc: owner.release \(name) left objects: \(released)") }
        }
        let counts = daemon.service.broker.counts()
        if counts.ioas != 0 || counts.hwpts != 0 || counts.devicesLeased != 0 || counts.pinnedBytes != 0 {
            fatalError("fuzz-rpc: objects left after every owner was released: \(counts)")
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}

/// The encoder's text is a fixed point: parse → encode → parse → encode writes the same bytes,
/// for every line that parses. (Values may change representation, not meaning: JSON has one
/// number type, so `0e400` parses as a double and is written `0`, which reads back as an integer.)
func checkParserRoundTrip(_ input: [UInt8]) {
    for line in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
        guard let value = try? JSONValue.parse(Array(line), maxDepth: 64) else { continue }
        let encoded = value.encoded()
        guard let again = try? JSONValue.parse(encoded, maxDepth: 64) else {
            fatalError("fuzz-rpc: the encoder wrote JSON its parser refuses: \(String(decoding: encoded, as: UTF8.self))")
        }
        let reencoded = again.encoded()
        if reencoded != encoded {
            fatalError("fuzz-rpc: encoding is not stable: \(String(decoding: encoded, as: UTF8.self)) became \(String(decoding: reencoded, as: UTF8.self))")
        }
    }
}

func fuzzOne(_ input: [UInt8]) {
    checkParserRoundTrip(input)
    FuzzDaemon.shared.run(input)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(input)
    return 0
}
