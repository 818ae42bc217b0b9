import Testing

// MARK: samefd

/// What the hostile-client checks count as the daemon's fds (DaemonUnderTest.countedFDs): a file
/// a library opens by path for a moment is left out; anything a leak would be is counted.
@Suite("The daemon's fd count leaves out transient lookups only")
struct FDCountTests {
    @Test(arguments: [
        ("/usr/share/zoneinfo/Etc/UTC", true),
        ("?", true),
        ("socket:[81234]", false),
        ("pipe:[81235]", false),
        ("anon_inode:[eventfd]", false),
        ("anon_inode:[iommufd-pgfault]", false),
        ("/memfd:guest-ram (deleted)", false),
        ("/dev/iommu", false),
        ("/dev/vfio/devices/vfio0", false),
        ("/run/iommufdd/journal", false),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", false),
    ])
    func transient(target: String, leftOut: Bool) {
        #expect(DaemonUnderTest.isTransientLookup(target) == leftOut, "\(target)")
    }

    /// One more socket than before is a difference even with a zoneinfo file open before and not
    /// after; the zoneinfo file alone is none.
    @Test func aLeakedSocketIsCounted() {
        let before = [0: "/dev/null", 3: "socket:[1]", 4: "/usr/share/zoneinfo/Etc/UTC"].filter { !DaemonUnderTest.isTransientLookup($0.value) }
        let sameButLookup = [0: "/dev/null", 3: "socket:[1]"].filter { !DaemonUnderTest.isTransientLookup($0.value) }
        let leaked = [0: "/dev/null", 3: "socket:[1]", 4: "socket:[2]"].filter { !DaemonUnderTest.isTransientLookup($0.value) }
        #expect(before.count == sameButLookup.count)
        #expect(leaked.count == before.count + 1)
    }
}
