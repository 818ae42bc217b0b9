#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdCore

// Event and fault queues (branch `queues`).
//
// The daemon keeps each queue's kernel fd and reads it itself (QueuePump): every record goes
// out as an `event.queue` notification to the owner's subscribers and as one message on the
// SOCK_SEQPACKET socket whose other end the create call (or `queue.fd`) handed to the owner's
// manager. Fault responses come back on that socket and go to the kernel only for cookies this
// queue handed out. So the holder of a queue fd can read the records of that one queue and
// answer its faults, and nothing else: the fd is not an iommufd object, does not hold the
// queue, and is useless once the queue is destroyed (end of file).

/// A fault queue or vEVENTQ of an owner. Only touched under the broker's lock.
final class QueueRecord {
    enum Kind: String { case fault, veventq }
    let id: ObjectID
    let owner: String
    let kind: Kind
    let viommu: ObjectID?
    let type: UInt32?
    let depth: UInt32?
    /// The backend's fd, readable while records are queued (the backend closes it on destroy).
    let pollFD: Int32
    /// The daemon's end of the socket pair whose other end was handed out; nil when none is.
    var relayFD: Int32?
    var relayed: UInt64 = 0
    var undelivered: UInt64 = 0
    var lostEvents: UInt64 = 0
    /// Cookies of fault groups read and not answered yet.
    var awaiting = Set<UInt32>()

    init(id: ObjectID, owner: String, kind: Kind, viommu: ObjectID?, type: UInt32?, depth: UInt32?, pollFD: Int32) {
        self.id = id
        self.owner = owner
        self.kind = kind
        self.viommu = viommu
        self.type = type
        self.depth = depth
        self.pollFD = pollFD
    }

    deinit {
        if let relayFD { _ = close(relayFD) }
    }

    /// The data length of one vEVENT of this queue's type, when known.
    var eventDataLength: Int? {
        switch type {
        case VEventQueueType.selftest: EventQueueABI.selftestEventSize
        case VEventQueueType.armSMMUv3: 32
        case VEventQueueType.tegra241CMDQV: 16
        default: nil
        }
    }
}

extension Broker {
    static let defaultVEventQueueDepth: UInt32 = 1024

    func queueInfo(_ q: QueueRecord) -> QueueInfo {
        QueueInfo(
            queue: q.id, owner: q.owner, kind: q.kind.rawValue, viommu: q.viommu, type: q.type, depth: q.depth,
            hwpts: hwptTable.values.filter { $0.faultQueue == q.id }.map(\.id).sorted(),
            connected: q.relayFD.map(Self.holderConnected) ?? false, relayed: q.relayed, undelivered: q.undelivered, lostEvents: q.lostEvents,
            awaitingResponse: q.awaiting.count)
    }

    /// A queue the caller may see (and, with `write`, change); absent and another manager's
    /// get the same NotFound.
    func queue(_ caller: Caller, _ id: ObjectID, kind: QueueRecord.Kind? = nil, write what: String? = nil) throws -> QueueRecord {
        let noun = kind == .fault ? "fault queue" : kind == .veventq ? "vEVENTQ" : "queue"
        let absent = "no \(noun) \(id); see queue.list"
        guard let record = queueTable[id], kind == nil || record.kind == kind, canSee(caller, owner: record.owner) else {
            throw BrokerError.notFound(absent)
        }
        markOwnerChanged(record.owner)  // ownerjournal
        if let what { try requireWriter(caller, what) }
        return record
    }

    /// A new socket pair for `record`: keeps one end, returns the other (close-on-exec) for the
    /// reply. A previous holder's end reaches end of file.
    func connectRelay(_ record: QueueRecord) throws -> Int32 {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            let err = Errno.current
            throw BrokerError(.io, "creating the socket pair of queue \(record.id) failed with \(err.name) (\(err.message)); the daemon may be out of file descriptors")
        }
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        if let old = record.relayFD { _ = close(old) }
        record.relayFD = ends[0]
        return ends[1]
    }

    // MARK: Methods

    /// `fault.create`.
    public func faultCreate(_ caller: Caller, _ params: FaultCreateParams) throws -> WithFDs<QueueFDResult> {
        try locked {
            let owner = try writableOwner(caller, params.owner, "fault.create")
            guard backend.features.contains(.faultQueue) else {
                throw BrokerError(.unsupported, "this kernel has no fault queues (IOMMU_FAULT_QUEUE_ALLOC, Linux >= 6.11)")
            }
            let q = try kcall("allocating a fault queue for owner '\(owner.name)'") { try backend.allocFaultQueue() }
            let record = QueueRecord(id: q.id, owner: owner.name, kind: .fault, viommu: nil, type: nil, depth: nil, pollFD: q.fd)
            return try registerQueue(record)
        }
    }

    /// `veventq.create`.
    public func veventqCreate(_ caller: Caller, _ params: VEventQCreateParams) throws -> WithFDs<QueueFDResult> {
        try locked {
            let v = try viommu(caller, params.viommu, write: "veventq.create")
            guard backend.features.contains(.veventq) else {
                throw BrokerError(.unsupported, "this kernel has no vIOMMU event queues (IOMMU_VEVENTQ_ALLOC, Linux >= 6.15)")
            }
            let depth = params.depth ?? Self.defaultVEventQueueDepth
            guard depth >= 1 && depth <= EventQueueABI.maxVEventDepth else {
                throw BrokerError.invalid("veventq.create: depth \(depth) is out of range; it must be 1 ... \(EventQueueABI.maxVEventDepth) (VEVENTQ_MAX_DEPTH)")
            }
            let hwInfoType = devices[v.device]?.hwInfo?.type
            let implied: UInt32? =
                switch hwInfoType {
                case HWInfoType.armSMMUv3, HWInfoType.tegra241CMDQV: VEventQueueType.armSMMUv3
                case HWInfoType.selftest: VEventQueueType.selftest
                default: nil
                }
            guard let type = params.type ?? implied else {
                throw BrokerError.invalid("veventq.create: no vEVENTQ type is known for vIOMMU \(v.id) (its IOMMU's hw_info type is \(hwInfoType ?? 0)); pass 'type' (enum iommu_veventq_type)")
            }
            guard type != VEventQueueType.default else {
                throw BrokerError.invalid("veventq.create: type 0 is IOMMU_VEVENTQ_TYPE_DEFAULT, which is reserved; pass a type of enum iommu_veventq_type (ARM SMMUv3: 1)")
            }
            if let other = queueTable.values.first(where: { $0.viommu == v.id && $0.type == type }) {
                throw BrokerError(.conflict, "vIOMMU \(v.id) already has vEVENTQ \(other.id) of type \(type) (one per type); use it, or destroy it first")
            }
            let q = try kcall("allocating a vEVENTQ (type \(type), depth \(depth)) on vIOMMU \(v.id)") {
                try backend.allocVEventQueue(viommu: v.id, type: type, depth: depth)
            }
            let record = QueueRecord(id: q.id, owner: v.owner, kind: .veventq, viommu: v.id, type: type, depth: depth, pollFD: q.fd)
            return try registerQueue(record)
        }
    }

    private func registerQueue(_ record: QueueRecord) throws -> WithFDs<QueueFDResult> {
        let clientFD: Int32
        do {
            clientFD = try connectRelay(record)
        } catch {
            try? backend.destroy(record.id)
            throw error
        }
        queueTable[record.id] = record
        storeQueueFDs(record)
        queuePump.watch(self, queue: record.id, fds: [record.pollFD], relay: record.relayFD)
        emit(.objectCreated(owner: record.owner, kind: record.kind == .fault ? .fault : .veventq, id: record.id))
        return WithFDs(result: QueueFDResult(queue: queueInfo(record), fd: FDRef(fd: 0)), fds: [clientFD])
    }

    /// `fault.destroy`: Busy while HWPTs deliver to it.
    public func faultDestroy(_ caller: Caller, _ params: QueueParams) throws -> QueueDestroyResult {
        try locked {
            let record = try queue(caller, params.queue, kind: .fault, write: "fault.destroy")
            try destroyQueue(record)
            return QueueDestroyResult(queue: record.id)
        }
    }

    /// `veventq.destroy`.
    public func veventqDestroy(_ caller: Caller, _ params: QueueParams) throws -> QueueDestroyResult {
        try locked {
            let record = try queue(caller, params.queue, kind: .veventq, write: "veventq.destroy")
            try destroyQueue(record)
            return QueueDestroyResult(queue: record.id)
        }
    }

    func destroyQueue(_ record: QueueRecord) throws {
        let users = hwptTable.values.filter { $0.faultQueue == record.id }.map(\.id).sorted()
        guard users.isEmpty else {
            throw BrokerError(.busy, "fault queue \(record.id) is used by HWPTs \(users) (their I/O page faults go to it); destroy them first")
        }
        queuePump.unwatch(queue: record.id)
        // Every open copy of the kernel's queue fd holds the object: the fd store's copy goes
        // first. systemd closes it when it handles FDSTOREREMOVE, a moment later, so EBUSY is
        // retried for up to two seconds while a store holds one.
        let stored = journal != nil
        forgetQueueFDs(record.id)
        do {
            try kcall("destroying \(record.kind == .fault ? "fault queue" : "vEVENTQ") \(record.id)") {
                var attempt = 0
                while true {
                    do {
                        return try backend.destroy(record.id)
                    } catch let error as IommuError where error.errno == .EBUSY && stored && attempt < 200 {
                        attempt += 1
                        usleep(10_000)
                    }
                }
            }
        } catch {
            storeQueueFDs(record)
            queuePump.watch(self, queue: record.id, fds: [], relay: record.relayFD)
            throw error
        }
        if let fd = record.relayFD { _ = close(fd) }
        record.relayFD = nil
        queueTable[record.id] = nil
        markOwnerChanged(record.owner)  // ownerjournal
        emit(.objectDestroyed(owner: record.owner, kind: record.kind == .fault ? .fault : .veventq, id: record.id))
    }

    /// `queue.fd`: a new fd for a queue's records; the previous holder's fd reaches end of file.
    public func queueFD(_ caller: Caller, _ params: QueueParams) throws -> WithFDs<QueueFDResult> {
        try locked {
            let record = try queue(caller, params.queue, write: "queue.fd")
            let clientFD = try connectRelay(record)
            forgetQueueRelay(record.id)
            if let relay = record.relayFD { journal?.store.store(relay, name: StoredFDName.queueRelay(record.id)) }
            queuePump.watch(self, queue: record.id, fds: [record.pollFD], relay: record.relayFD)
            return WithFDs(result: QueueFDResult(queue: queueInfo(record), fd: FDRef(fd: 0)), fds: [clientFD])
        }
    }

    /// `queue.list`.
    public func queueList(_ caller: Caller, _ params: QueueListParams) throws -> QueueListResult {
        try reading {
            if let name = params.owner { _ = try readableOwner(caller, name) }
            if let id = params.viommu { _ = try viommu(caller, id) }
            let list = queueTable.values
                .filter { q in
                    (params.owner == nil || q.owner == params.owner) && (params.viommu == nil || q.viommu == params.viommu)
                        && canSee(caller, owner: q.owner)
                }
                .sorted { $0.id < $1.id }
                .map(queueInfo)
            return QueueListResult(queues: list)
        }
    }

    // MARK: Policy hooks

    /// The fault queue `hwpt.alloc fault_queue` names, which must be the IOAS owner's.
    func faultQueueForHWPT(_ caller: Caller, _ id: ObjectID, owner: OwnerRecord) throws -> QueueRecord {
        let record = try queue(caller, id, kind: .fault, write: "hwpt.alloc")
        guard record.owner == owner.name else {
            throw BrokerError.invalid("fault queue \(id) belongs to owner '\(record.owner)', not '\(owner.name)'; an HWPT can only deliver faults to its own owner's queue")
        }
        return record
    }

    /// `viommu.destroy` refuses a vIOMMU with vEVENTQs (the kernel would answer EBUSY).
    func checkNoQueues(viommu id: ObjectID) throws {
        let queues = queueTable.values.filter { $0.viommu == id }.map(\.id).sorted()
        if !queues.isEmpty {
            throw BrokerError(.busy, "vIOMMU \(id) still has vEVENTQs \(queues); destroy them first (veventq.destroy)")
        }
    }

    /// `owner.release`, first step: the owner's vEVENTQs (before its vDevices and vIOMMUs).
    func releaseVEventQueues(of owner: String, destroyed: inout [String: Int], failures: inout [String]) {
        for q in queueTable.values.filter({ $0.owner == owner && $0.kind == .veventq }).sorted(by: { $0.id < $1.id }) {
            do {
                try destroyQueue(q)
                destroyed["veventq", default: 0] += 1
            } catch { failures.append("\(error)") }
        }
    }

    /// `owner.release`, after the HWPTs: the owner's fault queues (an HWPT holds its queue).
    func releaseFaultQueues(of owner: String, destroyed: inout [String: Int], failures: inout [String]) {
        for q in queueTable.values.filter({ $0.owner == owner && $0.kind == .fault }).sorted(by: { $0.id < $1.id }) {
            do {
                try destroyQueue(q)
                destroyed["fault", default: 0] += 1
            } catch { failures.append("\(error)") }
        }
    }

    // MARK: The pump's side (QueuePump thread)

    /// Reads what `queue` has queued and relays it. False when the queue should no longer be
    /// watched (gone, or its fd fails).
    func pumpQueue(_ id: ObjectID) -> Bool {
        (try? locked { () -> Bool in
            guard let record = queueTable[id] else { return false }
            let size = record.kind == .fault ? EventQueueABI.pageFaultSize * 1024 : 1 << 16
            var buffer = [UInt8](repeating: 0, count: size)
            for _ in 0..<64 {
                let n: Int
                do {
                    n = try buffer.withUnsafeMutableBytes { try backend.readEventQueue(id, into: $0) }
                } catch {
                    logger.error("reading queue failed; no longer relaying it", metadata: ["queue": "\(id)", "error": "\(error)"])
                    return false
                }
                if n == 0 { break }
                relay(record, Array(buffer[0..<n]))
            }
            return true
        }) ?? false
    }

    private func relay(_ record: QueueRecord, _ bytes: [UInt8]) {
        switch record.kind {
        case .veventq:
            guard let length = record.eventDataLength else {
                // An unknown type: its records cannot be split; relayed as one message.
                send(record, bytes)
                emit(.queueRecord(owner: record.owner, queue: record.id, notice: .vevent(VEvent(flags: 0, sequence: 0, data: bytes))))
                return
            }
            for event in VEvent.parse(bytes, dataLength: length) {
                if event.lostEvents { record.lostEvents += 1 }
                send(record, event.bytes)
                emit(.queueRecord(owner: record.owner, queue: record.id, notice: .vevent(event)))
            }
        case .fault:
            markOwnerChanged(record.owner)  // ownerjournal: its `awaiting` cookies
            for fault in PageFault.parse(bytes) {
                if fault.flags & PageFault.lastPage != 0 { record.awaiting.insert(fault.cookie) }
                send(record, fault.bytes)
                let device = devices.values.first { $0.bound?.id == fault.deviceID && $0.owner == record.owner }?.name
                emit(.queueRecord(owner: record.owner, queue: record.id, notice: .fault(fault, device: device)))
            }
        }
    }

    /// One record to the holder, without blocking: a full socket buffer or no holder counts as
    /// undelivered (the notification still goes out).
    private func send(_ record: QueueRecord, _ bytes: [UInt8]) {
        record.relayed += 1
        guard let fd = record.relayFD else {
            record.undelivered += 1
            return
        }
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
        if n < 0 { record.undelivered += 1 }
    }

    /// The holder wrote (fault responses) or hung up.
    func pumpRelay(_ id: ObjectID) {
        _ = try? locked {
            guard let record = queueTable[id], let fd = record.relayFD else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    // End of file: the holder closed its fd. The queue stays; queue.fd reconnects.
                    _ = close(fd)
                    record.relayFD = nil
                    forgetQueueRelay(id)
                    queuePump.watch(self, queue: id, fds: [record.pollFD], relay: nil)
                    return
                }
                if n < 0 { return }
                answer(record, Array(buffer[0..<n]))
            }
        }
    }

    /// Fault responses from the holder: only for cookies this queue handed out, one record at a
    /// time, so a bad one cannot hide the rest. Anything else is dropped and logged.
    private func answer(_ record: QueueRecord, _ bytes: [UInt8]) {
        guard record.kind == .fault, bytes.count % EventQueueABI.pageResponseSize == 0 else {
            logger.warning("dropped a message from a queue holder: a vEVENTQ takes none, a fault queue takes 8-byte struct iommu_hwpt_page_response records", metadata: ["queue": "\(record.id)", "bytes": "\(bytes.count)"])
            return
        }
        markOwnerChanged(record.owner)  // ownerjournal: its `awaiting` cookies
        for response in PageResponse.parse(bytes) {
            guard record.awaiting.contains(response.cookie) else {
                logger.warning("dropped a fault response for a cookie this queue has not handed out (or already answered)", metadata: ["queue": "\(record.id)", "cookie": "\(response.cookie)"])
                continue
            }
            do {
                _ = try response.bytes.withUnsafeBytes { try backend.respondToFaults(record.id, $0) }
                record.awaiting.remove(response.cookie)
            } catch {
                logger.warning("the kernel refused a fault response", metadata: ["queue": "\(record.id)", "cookie": "\(response.cookie)", "error": "\(error)"])
            }
        }
    }
}

/// One thread that polls every queue's backend fd and every holder's socket, and calls the
/// broker when one is readable. The broker registers and unregisters fds under its lock; the
/// thread calls back without holding the pump's lock.
final class QueuePump: @unchecked Sendable {
    private enum Role { case queue, relay }
    private let lock = NSCondition()
    /// Bumped by every change of `entries`; `pollingGeneration` is the one the thread's current
    /// `poll` was built from, nil while it is not in `poll`.
    private var generation: UInt64 = 0
    private var pollingGeneration: UInt64?
    private var entries: [Int32: (queue: ObjectID, role: Role)] = [:]
    private weak var broker: Broker?
    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1
    private var started = false
    private var stopped = false

    /// Watches `fds` (the queue's backend fd) and `relay` (the holder's socket) for `queue`,
    /// replacing what was watched for it.
    func watch(_ broker: Broker, queue: ObjectID, fds: [Int32], relay: Int32?) {
        lock.withLock {
            entries = entries.filter { $0.value.queue != queue }
            for fd in fds where fd >= 0 { entries[fd] = (queue, .queue) }
            if let relay { entries[relay] = (queue, .relay) }
            generation += 1
            self.broker = broker
            startLocked()
        }
        wake()
    }

    /// Ends the thread (the broker is going away).
    func stop() {
        lock.withLock {
            stopped = true
            entries = [:]
        }
        wake()
    }

    /// Stops watching `queue`'s fds and returns once the thread is no longer in a `poll` that
    /// has them: a polled fd holds its file, and an iommufd queue's file holds the queue object
    /// (IOMMU_DESTROY would be EBUSY). The thread may be waiting for the broker's lock, which the
    /// caller holds: that is not in `poll`, so this never waits for it.
    func unwatch(queue: ObjectID) {
        let wanted: UInt64 = lock.withLock {
            entries = entries.filter { $0.value.queue != queue }
            generation += 1
            return generation
        }
        wake()
        lock.lock()
        while let polling = pollingGeneration, polling < wanted { lock.wait() }
        lock.unlock()
    }

    private func startLocked() {
        guard !started else { return }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
        started = true
        let thread = Thread { [self] in run() }
        thread.name = "iommufdd-queues"
        thread.start()
    }

    private func wake() {
        let fd = lock.withLock { wakeWrite }
        guard fd >= 0 else { return }
        var one: UInt8 = 1
        _ = write(fd, &one, 1)
    }

    private func run() {
        while true {
            let (snapshot, wakeFD, stop) = lock.withLock { () -> ([Int32: (queue: ObjectID, role: Role)], Int32, Bool) in
                if !stopped { pollingGeneration = generation }
                return (entries, wakeRead, stopped)
            }
            if stop {
                lock.withLock {
                    _ = close(wakeRead)
                    _ = close(wakeWrite)
                    wakeRead = -1
                    wakeWrite = -1
                }
                return
            }
            var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            for fd in snapshot.keys { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), -1)
            lock.withLock {
                pollingGeneration = nil
                lock.broadcast()
            }
            if n < 0 {
                if errno == EINTR { continue }
                usleep(10_000)
                continue
            }
            if fds[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeFD, &drain, drain.count) > 0 {}
            }
            guard let broker = lock.withLock({ self.broker }) else { return }
            for p in fds.dropFirst() where p.revents != 0 {
                guard let entry = snapshot[p.fd] else { continue }
                let current = lock.withLock { entries[p.fd].map { $0.queue == entry.queue && $0.role == entry.role } ?? false }
                guard current else { continue }
                switch entry.role {
                case .queue:
                    if p.revents & Int16(POLLNVAL) != 0 || !broker.pumpQueue(entry.queue) {
                        lock.withLock { if entries[p.fd]?.queue == entry.queue { entries[p.fd] = nil } }
                    }
                case .relay:
                    if p.revents & Int16(POLLNVAL) != 0 {
                        lock.withLock { if entries[p.fd]?.queue == entry.queue { entries[p.fd] = nil } }
                    } else {
                        broker.pumpRelay(entry.queue)
                    }
                }
            }
        }
    }
}
