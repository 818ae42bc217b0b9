import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("The HWPT index of an IOAS")
struct IOASHWPTsTests {
    static func record(_ id: ObjectID, _ flags: HWPTAllocFlags, _ instance: String?) -> HWPTRecord {
        HWPTRecord(id: id, owner: "vm", ioas: 1, flags: flags, auto: true, iommuInstance: instance)
    }

    @Test("candidates: right flags only, the device's instance first, each group by ID; removals and late inserts count")
    func candidates() {
        let records: [ObjectID: HWPTRecord] = [
            9: Self.record(9, [.dirtyTracking], "dmar0"),
            3: Self.record(3, [.dirtyTracking], "dmar1"),
            5: Self.record(5, [.dirtyTracking], "dmar0"),
            4: Self.record(4, [], "dmar0"),
            7: Self.record(7, [.nestParent, .dirtyTracking], "dmar0"),
            2: Self.record(2, [.dirtyTracking], nil),
        ]
        var set = IOASHWPTs()
        for id in [9, 3, 5, 4, 7] as [ObjectID] { set.insert(id) }
        #expect(set.count == 5 && set.contains(7) && !set.contains(2))
        #expect(set.candidates(dirtyTracking: true, instance: "dmar0") { records[$0] } == [5, 9, 3])
        #expect(set.candidates(dirtyTracking: false, instance: "dmar0") { records[$0] } == [4])
        #expect(set.candidates(dirtyTracking: true, instance: "dmar1") { records[$0] } == [3, 5, 9])
        set.insert(2)
        set.remove(9)
        #expect(set.candidates(dirtyTracking: true, instance: "dmar0") { records[$0] } == [5, 2, 3])
        #expect(set.candidates(dirtyTracking: true, instance: nil) { records[$0] } == [2, 3, 5])
        #expect(Set(set) == [2, 3, 4, 5, 7])
        // An ID with no record yet stays out until it has one.
        set.insert(11)
        #expect(set.candidates(dirtyTracking: true, instance: "dmar0") { records[$0] } == [5, 2, 3])
        var more = records
        more[11] = Self.record(11, [.dirtyTracking], "dmar0")
        #expect(set.candidates(dirtyTracking: true, instance: "dmar0") { more[$0] } == [5, 11, 2, 3])
        set.remove(11)
        #expect(set.candidates(dirtyTracking: true, instance: "dmar0") { more[$0] } == [5, 2, 3])
    }
}
