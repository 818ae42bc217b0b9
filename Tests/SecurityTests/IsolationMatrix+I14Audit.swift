import IommufdContract
import IommufdRPC
import Testing

// MARK: i14audit

extension Clients {
    /// n0 on a nested HWPT of owner A's vIOMMU where it has vDevice 7, and a selftest vEVENTQ on
    /// that vIOMMU (its fd closed): what `test.trigger_vevent` needs to report an event.
    func veventReady(_ f: Fixture) throws {
        let v = try nestedSetUp(f, viommu: true).viommu ?? 0
        let nested = try a.value("hwpt.alloc", ["device": "n0", "viommu": .id(v), "data": ["type": "selftest", "iotlb": 7]]).id("hwpt")
        try a.value("device.replace", ["device": "n0", "hwpt": .id(nested)])
        try a.value("veventq.create", ["viommu": .id(v)])
    }
}

/// The isolation matrix must have a row, with every role's column, for each method of the
/// contract's catalogue (`BrokerMethod`, `DaemonMethod`), not only for those a daemon's
/// `rpc.discover` lists (`everyMethodHasARow`, which needs root): a method added to the catalogue
/// without its isolation rows fails here on any machine. No method is exempt: even
/// `daemon.ping` has a row (every role may call it; an unlisted uid may not, which
/// `unlistedUIDIsRefusedForEveryMethod` checks for every method with a row).
@Suite("Isolation matrix: a row for every method of the contract")
struct IsolationMatrixCatalogueTests {
    @Test func everyCatalogueMethodHasEveryRole() {
        let catalogue = BrokerMethod.allCases.map(\.rawValue) + DaemonMethod.allCases.map(\.rawValue)
        #expect(catalogue.count >= 50, "the catalogue lists \(catalogue.count) methods")
        for method in catalogue {
            let roles = Set(isolationMatrix.filter { $0.method == method }.flatMap { $0.cells.map(\.0) })
            #expect(
                roles.isSuperset(of: [.admin, .owner, .other, .reader]),
                "\(method) lacks isolation-matrix cells for \(Set<Role>([.admin, .owner, .other, .reader]).subtracting(roles).map(\.description).sorted()); add its row to isolationMatrix (Tests/SecurityTests/IsolationMatrixTests.swift)")
        }
    }
}
