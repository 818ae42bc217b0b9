import IommufdContract
import IommufdCore

/// The HWPTs of one IOAS (`IOASRecord.hwpts`): a set of IDs that also indexes them by what the
/// auto-domain policy looks for (nest parent or not, dirty tracking or not, IOMMU instance), so
/// `device.attach` to an IOAS holding hundreds of HWPTs looks only at the ones that could fit
/// instead of walking them all (issue 16, target 5).
///
/// An HWPT enters by ID alone (`insert`), as every call site always did; it is indexed the first
/// time `candidates` runs after it (its record's flags and instance never change). So the index
/// costs nothing where HWPTs are made, and each HWPT is looked up once, not on every attach.
struct IOASHWPTs: Sequence {
    struct Key: Hashable {
        var nestParent: Bool
        var dirtyTracking: Bool
        var iommuInstance: String?
    }

    private(set) var ids = Set<ObjectID>()
    private var byKey: [Key: Set<ObjectID>] = [:]
    private var keyOf: [ObjectID: Key] = [:]
    /// Inserted, not indexed yet.
    private var pending = Set<ObjectID>()

    init() {}

    @discardableResult
    mutating func insert(_ id: ObjectID) -> Bool {
        guard ids.insert(id).inserted else { return false }
        pending.insert(id)
        return true
    }

    @discardableResult
    mutating func remove(_ id: ObjectID) -> ObjectID? {
        guard ids.remove(id) != nil else { return nil }
        pending.remove(id)
        if let key = keyOf.removeValue(forKey: id) {
            byKey[key]?.remove(id)
            if byKey[key]?.isEmpty == true { byKey[key] = nil }
        }
        return id
    }

    func contains(_ id: ObjectID) -> Bool { ids.contains(id) }
    var isEmpty: Bool { ids.isEmpty }
    var count: Int { ids.count }
    func makeIterator() -> Set<ObjectID>.Iterator { ids.makeIterator() }
    /// Compared with a plain set of IDs, as `hwpts` was one.
    static func == (a: Set<ObjectID>, b: IOASHWPTs) -> Bool { a == b.ids }
    static func != (a: Set<ObjectID>, b: IOASHWPTs) -> Bool { a != b.ids }

    /// The HWPTs that are not nest parents and whose dirty-tracking flag is `dirtyTracking`,
    /// those of `instance` first, each group by ascending ID. `record` resolves an ID not yet
    /// indexed (an ID it cannot resolve stays pending and is not offered).
    mutating func candidates(dirtyTracking: Bool, instance: String?, record: (ObjectID) -> HWPTRecord?) -> [ObjectID] {
        if !pending.isEmpty {
            for id in pending {
                guard let r = record(id) else { continue }
                let key = Key(nestParent: r.flags.contains(.nestParent), dirtyTracking: r.flags.contains(.dirtyTracking), iommuInstance: r.iommuInstance)
                keyOf[id] = key
                byKey[key, default: []].insert(id)
                pending.remove(id)
            }
        }
        let same = byKey[Key(nestParent: false, dirtyTracking: dirtyTracking, iommuInstance: instance)].map { $0.sorted() } ?? []
        var others: [ObjectID] = []
        for (key, members) in byKey where !key.nestParent && key.dirtyTracking == dirtyTracking && key.iommuInstance != instance {
            others.append(contentsOf: members)
        }
        return same + others.sorted()
    }
}
