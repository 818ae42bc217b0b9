import IommufdContract
import IommufdCore

extension Broker {
    /// Takes back a journaled nested HWPT: its record, and a check that the iommufd still has
    /// it — `IOMMU_HWPT_INVALIDATE` with no entries (nothing is invalidated): ENOENT for a
    /// missing object, anything else (success, or a type or driver refusal) for a live one.
    func adoptNestedHWPT(_ record: HWPTRecord, _ n: JournalState.Nested, report: inout JournalRecovery) {
        record.nested = NestedRecord(parent: n.parent, viommu: n.viommu, data: HWPTUserData(type: n.dataType, bytes: n.data))
        record.hwInfoType = nil
        guard let b = backend.nested else {
            report.problems.append("nested HWPT \(record.id) of owner '\(record.owner)': this backend has no nested HWPTs; its records are kept for owner.release to clean up")
            return
        }
        let type = n.dataType == HWPTDataType.vtdS1 ? InvalidateDataType.vtdS1 : InvalidateDataType.selftest
        let result = b.invalidate(record.id, InvalidationRequest(dataType: type, entryLength: 0, entryCount: 0, bytes: []))
        if let error = result.error, error.errno == .ENOENT {
            report.problems.append("nested HWPT \(record.id) of owner '\(record.owner)' is not in the iommufd (\(error)); its records are kept for owner.release to clean up")
        }
    }
}
