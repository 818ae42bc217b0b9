import IommufdContract
import Testing

// MARK: i14audit

/// Every method of the contract's catalogue has an iommuctl command whose params and output a
/// test checks (a `CommandTests` case, or the test named below), or is listed with the reason it
/// has none: a method added to the catalogue without a command fails here.
@Suite("iommuctl covers every method of the catalogue")
struct MethodCoverageTests {
    /// Methods whose command is checked outside `CommandTests.cases` (it sends or receives fds,
    /// or streams), with the test that checks it.
    static let checkedElsewhere: [String: String] = [
        "ioas.map": "ClientTests, IOASMapFDTests (ioas map FILE | --memfd | --fd: the fd travels with the request)",
        "dirty.read": "ClientTests (dirty read --bitmap receives a memfd)",
        "events.subscribe": "ClientTests, EndToEndTests (watch)",
        "queue.fd": "QueueReadE2ETests, WalkthroughTests (queue read keeps the fd and reads it)",
    ]

    /// Methods iommuctl has no command for, and why (`iommuctl call METHOD [JSON]` reaches them).
    static let noCommand: [String: String] = [
        "daemon.ping": "a liveness probe for scripts: `iommuctl call daemon.ping`; `status` shows more",
        "rpc.discover": "the OpenRPC document is for programs: `iommuctl call rpc.discover`",
        "owner.delegate": "its answer is one end of a channel socket for a VMM; a shell has no VMM to give it to",
        "owner.revoke_channels": "closes channels made by owner.delegate, which a shell does not make",
        "device.fd": "hands a bound device fd to a trusted_vmm VMM; iommuctl would only close it",
        "events.unsubscribe": "a subscription is its connection's; `watch` ends it by closing the connection",
    ]

    @Test func everyMethodHasACommandOrAReason() {
        let catalogue = BrokerMethod.allCases.map(\.rawValue) + DaemonMethod.allCases.map(\.rawValue)
        let commanded = Set(CommandTests.cases.map(\.method))
        #expect(catalogue.count >= 50, "the catalogue lists \(catalogue.count) methods")
        for method in catalogue {
            let covered = commanded.contains(method) || Self.checkedElsewhere[method] != nil || Self.noCommand[method] != nil
            #expect(covered, "\(method) has no iommuctl command checked by a test: add one (and its CommandTests case), or list it in noCommand with the reason")
        }
        // The lists name methods that exist, and a method with a command is not also excused.
        for method in Set(Self.checkedElsewhere.keys).union(Self.noCommand.keys) {
            #expect(catalogue.contains(method), "\(method) is listed but is not in the catalogue")
        }
        for method in Self.noCommand.keys {
            #expect(!commanded.contains(method) && Self.checkedElsewhere[method] == nil, "\(method) has a command checked by a test but is listed in noCommand")
        }
    }
}
