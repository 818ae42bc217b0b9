/// Where the broker hands the fds that must outlive the daemon: systemd's fd store
/// (`FDSTORE=1` / `FDSTOREREMOVE=1`), or a test double. The store keeps its own duplicate;
/// the broker keeps and closes its fd as before.
public protocol FileDescriptorStore: AnyObject, Sendable {
    /// Stores a duplicate of `fd` under the unique `name` (`FDSTORE=1`, `FDNAME=`, `FDPOLL=0`).
    func store(_ fd: Int32, name: String)
    /// Drops every stored fd called `name` (`FDSTOREREMOVE=1`).
    func remove(name: String)
}

/// fd-store names of the broker's fds. Names are unique, printable and free of ':' (systemd's
/// rule), and say what the fd is so the restarted daemon can sort them.
public enum StoredFDName {
    /// The object journal, generation `n` (a compaction writes generation n+1, then drops n).
    public static func journal(_ generation: UInt64) -> String { "journal.\(generation)" }
    /// A memory file behind mappings, by `(st_dev, st_ino)`.
    public static func memory(device: UInt64, inode: UInt64) -> String { "mem.\(device).\(inode)" }
    /// A bound device's VFIO cdev, by device ID.
    public static func device(_ id: UInt32) -> String { "device.\(id)" }

    /// The daemon's end of a delegated channel (`owner.delegate`), by channel ID; the journal's
    /// state says which owner it acts as.
    public static func channel(_ id: UInt64) -> String { "channel.\(id)" }

    public static func parseChannel(_ name: String) -> UInt64? {
        name.hasPrefix("channel.") ? UInt64(name.dropFirst(8)) : nil
    }
    public static func parseJournal(_ name: String) -> UInt64? {
        name.hasPrefix("journal.") ? UInt64(name.dropFirst(8)) : nil
    }
    public static func parseMemory(_ name: String) -> (device: UInt64, inode: UInt64)? {
        let parts = name.split(separator: ".")
        guard parts.count == 3, parts[0] == "mem", let d = UInt64(parts[1]), let i = UInt64(parts[2]) else { return nil }
        return (d, i)
    }
    public static func parseDevice(_ name: String) -> UInt32? {
        name.hasPrefix("device.") ? UInt32(name.dropFirst(7)) : nil
    }
}
