import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import Logging

/// systemd's fd store (sd_notify(3) `FDSTORE=1`), as the broker's `FileDescriptorStore`.
///
/// In use only when the service manager offers it: `NOTIFY_SOCKET` is set and `$FDSTORE` (set
/// by systemd >= 254 to `FileDescriptorStoreMax=` when that is non-zero; for systemd 252 and 253,
/// which keep the store but do not say so, by the unit's drop-in fdstore-variable.conf that
/// scripts/install-units writes) is a positive number.
/// systemd does not answer `FDSTORE=1` messages; an fd beyond the limit is dropped with a line
/// in its log. So the store counts what it holds and warns before the limit is reached.
final class SystemdFDStore: FileDescriptorStore, @unchecked Sendable {
    let notifier: SystemdNotifier
    let logger: Logger
    /// `FileDescriptorStoreMax=`.
    let limit: Int
    private let lock = NSLock()
    private var names = Set<String>()
    private var problems: [String] = []

    init(notifier: SystemdNotifier, limit: Int, logger: Logger, adopted: [String]) {
        self.notifier = notifier
        self.limit = limit
        self.logger = logger
        names = Set(adopted)
    }

    /// Why there is no fd store, or nil when there is one (`limit` from `$FDSTORE`).
    static func availability(environment: [String: String]) -> (limit: Int?, reason: String?) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else {
            return (nil, "not started by systemd (NOTIFY_SOCKET is unset)")
        }
        guard let text = environment["FDSTORE"] else {
            return (nil, "the service manager offers no fd store ($FDSTORE is unset: FileDescriptorStoreMax= is 0, or systemd is older than 254 and the unit lacks the drop-in iommufdd.service.d/fdstore-variable.conf; install the units with scripts/install)")
        }
        guard let limit = Int(text), limit > 0 else {
            return (nil, "the fd store is disabled ($FDSTORE=\(text))")
        }
        return (limit, nil)
    }

    func store(_ fd: Int32, name: String) {
        lock.lock()
        let fresh = names.insert(name).inserted
        let count = names.count
        lock.unlock()
        guard fresh else { return }  // one fd per name: systemd already holds this one
        if count > limit {
            note("the fd store is full (FileDescriptorStoreMax=\(limit)): \(name) was not kept, and a restart would lose what it holds; raise FileDescriptorStoreMax=")
        }
        do {
            try notifier.storeFileDescriptor(fd, name: name, poll: false)
        } catch {
            note("could not hand \(name) to the fd store: \(error); a restart would lose what it holds")
        }
    }

    func remove(name: String) {
        let held = lock.withLock { names.remove(name) != nil }
        guard held else { return }
        do {
            try notifier.removeStoredFileDescriptors(name: name)
        } catch {
            logger.warning("could not remove an fd from the fd store", metadata: ["fd.name": "\(name)", "error": "\(error)"])
        }
    }

    /// Problems met while storing, for `daemon.info` warnings.
    var warnings: [String] { lock.withLock { problems } }
    var count: Int { lock.withLock { names.count } }

    private func note(_ text: String) {
        logger.error("\(text)")
        lock.withLock {
            if problems.count < 32 { problems.append(text) }
        }
    }
}
