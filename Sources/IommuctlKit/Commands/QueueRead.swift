#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ArgumentParser
import IommufdContract
import IommufdCore
import IommufdRPC

// MARK: i14audit

/// `iommuctl queue read QUEUE [--count N] [--wait S]`: takes the queue's fd (`queue.fd`) and
/// prints the records that come out of it, as a VMM holding that fd would read them.
struct QueueRead: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Take a queue's fd (queue.fd) and print the records read from it.",
        discussion: """
            Calls queue.fd, which hands out a new fd for the queue's records (a SOCK_SEQPACKET \
            socket, one record per message: docs/queues.md); a previous holder's fd (a VMM's) \
            reads end of file from then on, so do not use this on a queue a running VMM reads. \
            Prints one line per record: a vEVENTQ's events (sequence, flags, data; a \
            lost-events record when the kernel queue overflowed), a fault queue's page faults. \
            Faults are not answered (the daemon keeps them awaiting a response). With --json, \
            one compact JSON object per record, the fields of an event.queue notification. A \
            line on stderr (also with --json) says when the fd is held: records reported after it are \
            read.

            Example:
              $ iommuctl queue read 18 --count 1
              reading vEVENTQ 18 of owner vm3 (type selftest); waiting for 1 record
              vEVENTQ 18: event 0: flags 0x0, 4 bytes 20000000 (selftest: virtual ID 0x20)
            """)

    @Argument(help: "The fault queue or vEVENTQ id.")
    var queue: UInt32

    @Option(help: "Exit after this many records. (default: read until interrupted or the queue is gone)")
    var count: Int?

    @Option(name: .customLong("wait"), help: ArgumentHelp("Give up when no record came for this many seconds. (default: wait as long as it takes)", valueName: "seconds"))
    var wait: Double?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let wait, !(wait > 0) { throw ValidationError("--wait must be more than 0 seconds") }
    }

    func execute(_ context: CommandContext) throws {
        let (json, fds) = try context.callWithFDs("queue.fd", context.encode(QueueParams(queue: queue)))
        guard let fd = fds.first else {
            context.closeAll(fds)
            throw CtlError(.failure, "queue.fd answered without an fd for queue \(queue); `iommuctl call queue.fd` shows the answer")
        }
        defer { context.closeAll(fds) }
        let info = try context.decode(QueueFDResult.self, from: json).queue
        let what = info.kind == "fault" ? "fault queue" : "vEVENTQ"
        // On stderr even with --json (stdout has the records only): from here on, what the queue
        // reports is read.
        let type = info.kind == "fault" ? "" : " (type \(VEventQCreate.typeName(info.type)))"
        let target = count.map { "waiting for \(Words.count($0, "record"))" } ?? "waiting for records"
        context.terminal.printError("reading \(what) \(info.queue) of owner \(info.owner)\(type); \(target)")
        var seen = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while count.map({ seen < $0 }) ?? true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let waitMS = wait.map { Int32(min($0 * 1000, Double(Int32.max))) } ?? -1
            let ready = poll(&p, 1, waitMS)
            if ready < 0 {
                if errno == EINTR { continue }
                throw CtlError(.failure, "waiting for \(what) \(info.queue)'s records failed: \(String(cString: strerror(errno)))")
            }
            if ready == 0 {
                throw CtlError(.failure, "no record came out of \(what) \(info.queue) within \(Self.seconds(wait ?? 0)) (\(seen) read); wait longer with --wait, or check what should report one")
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw CtlError(.failure, "reading \(what) \(info.queue) failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw CtlError(.failure, "\(what) \(info.queue) reached end of file after \(Words.count(seen, "record")): it was destroyed, or another holder took its fd (queue.fd)")
            }
            let record = Array(buffer[0..<n])
            for line in try Self.render(record, info: info, json: context.options.jsonOutput) {
                context.terminal.print(line)
                seen += 1
            }
        }
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }

    /// The lines one message of the queue's socket gives: a vEVENT (header and data), or the
    /// page faults it holds.
    static func render(_ record: [UInt8], info: QueueInfo, json: Bool) throws -> [String] {
        let what = info.kind == "fault" ? "fault queue" : "vEVENTQ"
        if info.kind == "fault" {
            let faults = PageFault.parse(record)
            guard !faults.isEmpty, record.count % EventQueueABI.pageFaultSize == 0 else {
                throw CtlError(.failure, "fault queue \(info.queue) sent a \(record.count)-byte record, not whole 40-byte struct iommu_hwpt_pgfault records")
            }
            return faults.map { f in
                if json {
                    return JSONValue.object([
                        "queue": .int(Int64(info.queue)), "kind": "fault", "device_id": .int(Int64(f.deviceID)),
                        "pasid": .int(Int64(f.pasid)), "group": .int(Int64(f.groupID)), "perm": .int(Int64(f.perm)),
                        "address": .uint(f.address), "cookie": .int(Int64(f.cookie)), "flags": .int(Int64(f.flags)),
                        "last_page": .bool(f.flags & PageFault.lastPage != 0),
                    ]).description
                }
                let pasid = f.flags & PageFault.pasidValid != 0 ? "PASID \(f.pasid)" : "no PASID"
                return "\(what) \(info.queue): fault of device id \(f.deviceID), \(pasid), group \(f.groupID), \(permissions(f.perm)) at \(Units.hex(f.address)), cookie \(f.cookie)"
                    + (f.flags & PageFault.lastPage != 0 ? ", last page of its group" : "")
            }
        }
        guard record.count >= EventQueueABI.veventHeaderSize else {
            throw CtlError(.failure, "vEVENTQ \(info.queue) sent a \(record.count)-byte record, shorter than struct iommufd_vevent_header")
        }
        let event = VEvent.parse(record, dataLength: record.count - EventQueueABI.veventHeaderSize)[0]
        let hex = Self.hex(event.data)
        if json {
            return [
                JSONValue.object([
                    "queue": .int(Int64(info.queue)), "kind": "veventq", "sequence": .int(Int64(event.sequence)),
                    "flags": .int(Int64(event.flags)), "lost_events": .bool(event.lostEvents), "data": .string(hex),
                ]).description
            ]
        }
        if event.lostEvents {
            return ["\(what) \(info.queue): events lost before sequence \(event.sequence) (the kernel queue overflowed: more than its depth unread)"]
        }
        var line = "\(what) \(info.queue): event \(event.sequence): flags \(Units.hex(UInt64(event.flags))), \(Words.count(event.data.count, "byte")) \(hex.isEmpty ? "-" : hex)"
        if info.type == VEventQueueType.selftest, event.data.count == EventQueueABI.selftestEventSize {
            let virtualID = event.data.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            line += " (selftest: virtual ID \(Units.hex(virtualID)))"
        }
        return [line]
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// `IOMMU_PGFAULT_PERM_*` as words: "read", "read-write", "read-exec-priv".
    static func permissions(_ perm: UInt32) -> String {
        let names: [(UInt32, String)] = [(1, "read"), (2, "write"), (4, "exec"), (8, "priv")]
        let words = names.filter { perm & $0.0 != 0 }.map(\.1)
        return words.isEmpty ? "no access" : words.joined(separator: "-")
    }
}
