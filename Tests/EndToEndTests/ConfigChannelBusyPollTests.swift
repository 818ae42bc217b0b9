import Testing

@testable import IommufdDaemon

private let names = NameResolver(uid: { ["root": 0][$0] }, gid: { ["root": 0][$0] })

// MARK: kinval

@Suite("Config: [limits] channel_busy_poll_us")
struct ConfigChannelBusyPollTests {
    @Test func parsesDefaultsTo50AndIsBounded() throws {
        let c = try DaemonConfig.parse("[limits]\nchannel_busy_poll_us = 200\n", file: "test.toml", names: names).get()
        #expect(c.limits.channelBusyPollMicroseconds == 200)
        let off = try DaemonConfig.parse("[limits]\nchannel_busy_poll_us = 0\n", file: "test.toml", names: names).get()
        #expect(off.limits.channelBusyPollMicroseconds == 0)
        // MARK: chspin: the adaptive spin is on by default, with the control socket's window.
        #expect(DaemonConfig.defaults.limits.channelBusyPollMicroseconds == 50)
        #expect(DaemonConfig.defaults.limits.channelBusyPollMicroseconds == UInt32(DaemonConfig.defaults.limits.rpcSpinMicroseconds))
        for bad in ["1001", "-1"] {
            guard case .failure(let error) = DaemonConfig.parse("[limits]\nchannel_busy_poll_us = \(bad)\n", file: "test.toml", names: names) else {
                Issue.record("channel_busy_poll_us = \(bad) was accepted")
                continue
            }
            #expect(error.issues.first?.reason == "\(bad) is out of range (0 to 1000)")
        }
    }
}
