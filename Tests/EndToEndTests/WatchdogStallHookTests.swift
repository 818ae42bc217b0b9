import Foundation
import IommufdRPC
import Testing

/// `test.stall_main_queue` is a test hook: served only with test hooks on, refused outside its
/// bounds, and it answers before the stall begins. (What it is for — systemd's watchdog killing
/// and restarting a stalled daemon — is shown under the real systemd by `vm-e2e systemd`.)
@Suite("test.stall_main_queue: the watchdog test hook")
struct WatchdogStallHookTests {
    @Test func absentWithoutTestHooks() throws {
        var config = TestConfig()
        config.testHooks = false
        let daemon = try DaemonProcess(config: config)
        let c = try daemon.client()
        defer { c.close() }
        let methods = (try c.call("rpc.discover")["methods"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(!methods.isEmpty && !methods.contains("test.stall_main_queue"), "\(methods)")
        let e = try c.error("test.stall_main_queue", ["seconds": 1])
        #expect(e.code == -32601, "\(e)")
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func boundedAndAnsweredBeforeTheStall() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        defer { c.close() }
        for bad: JSONValue in [0, -1, 3601] {
            let e = try c.error("test.stall_main_queue", ["seconds": bad])
            #expect(e.code == -32602 && e.message.contains("at most 3600"), "seconds \(bad): \(e)")
        }
        let answer = try c.call("test.stall_main_queue", ["seconds": 1])
        #expect(answer["seconds"] == 1, "\(answer)")
        // Not under systemd: no watchdog.
        #expect(answer["watchdog_seconds"] == nil || answer["watchdog_seconds"] == .null, "\(answer)")
        // Connections are served off the main queue: a call right after it is answered.
        #expect(try c.call("daemon.ping") == "pong")
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }
}
