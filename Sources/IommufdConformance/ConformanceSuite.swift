/// Every conformance case, in a stable order. The same list runs against the simulator (in
/// `swift test`) and the kernel (in the test VM); each case cites the kernel function or
/// selftest it is derived from.
public enum ConformanceSuite {
    public static let all: [ConformanceCase] =
        ObjectCases.all + HWInfoCases.all + IOASCases.all + OptionCases.all + HWPTCases.all + DirtyCases.all + VIOMMUCases.all
        + QueueCases.all
        + UserAddressCases.all + NestedCases.all
        // MARK: nestedgaps
        + NestedGapCases.all
        + DmabufCases.all  // MARK: p2p
        + PASIDCases.all  // pasid
        + HWQueueCases.all  // hwqueue
        + AuditCases.all  // MARK: i14audit

    /// The cases whose ID contains `substring` (all when it is nil or empty).
    public static func cases(matching substring: String?) -> [ConformanceCase] {
        guard let substring, !substring.isEmpty else { return all }
        return all.filter { $0.id.contains(substring) }
    }
}
