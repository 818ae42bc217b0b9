import ArgumentParser
import Foundation
import IommufdCore
import IommufdRPC

/// `iommuctl watch`: `events.subscribe`, then one line per notification until interrupted.
struct Watch: DaemonCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream the daemon's events (object lifecycle, attachments, dirty tracking) until interrupted.",
        discussion: """
            Subscribes with events.subscribe and prints one line per event, with the time it \
            arrived (UTC). With --json, each event is one compact JSON object per line \
            ({"method": ..., "params": ...}), ready for jq. Stop with Ctrl-C, or --count.

            Example:
              $ iommuctl watch --owner vm1
              00:41:07  vm1: IOAS 1 created
              00:41:09  vm1: vfio3 attached to HWPT 2 of IOAS 1
              00:41:12  vm1: dirty tracking started on IOAS 1
            """)

    @Option(help: "Only this owner's events (and daemon-wide ones).")
    var owner: String?

    @Option(help: "Exit after this many events.")
    var count: Int?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func execute(_ context: CommandContext) throws {
        var params: [String: JSONValue] = [:]
        if let owner { params["owner"] = .string(owner) }
        let subscription = try context.call("events.subscribe", .object(params))
        if !context.options.jsonOutput {
            let id = subscription["subscription"].map(Status.scalar) ?? "?"
            context.terminal.printError("watching events on \(context.socketPath) (subscription \(id)); Ctrl-C to stop")
        }
        let client = try context.connection()
        var seen = 0
        while count.map({ seen < $0 }) ?? true {
            guard let event = try client.nextNotification(timeout: nil) else { continue }
            context.closeAll(event.fds)
            seen += 1
            if context.options.jsonOutput {
                var line: [String: JSONValue] = ["method": .string(event.method)]
                if let p = event.params { line["params"] = p }
                context.terminal.print(JSONValue.object(line).description)
            } else {
                context.terminal.print(Self.timestamp() + "  " + Self.render(method: event.method, params: event.params))
            }
        }
    }

    static func timestamp() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    static func kindWord(_ kind: String?) -> String {
        switch kind {
        case "ioas": "IOAS"
        case "hwpt": "HWPT"
        case "viommu": "vIOMMU"
        case "vdevice": "vDevice"
        case "hw_queue": "HW queue"  // hwqueue3
        case let other?: other
        case nil: "object"
        }
    }

    /// One event as a sentence: `vm1: IOAS 3 created`.
    static func render(method: String, params: JSONValue?) -> String {
        let p = params ?? .null
        let owner = p["owner"]?.stringValue
        let prefix = owner.map { "\($0): " } ?? ""
        func id(_ key: String) -> String { p[key].map(Status.scalar) ?? "?" }
        switch method {
        case "event.owner_created":
            return "owner \(owner ?? "?") created"
        case "event.owner_released":
            return "owner \(owner ?? "?") released" + (p["complete"]?.boolValue == false ? " (partly: some objects remain)" : "")
        case "event.object_created":
            return prefix + "\(kindWord(p["kind"]?.stringValue)) \(id("id")) created"
        case "event.object_destroyed":
            return prefix + "\(kindWord(p["kind"]?.stringValue)) \(id("id")) destroyed"
        case "event.device_attached":
            let target = id("pt") == id("ioas") ? "IOAS \(id("ioas")) directly" : "HWPT \(id("pt")) of IOAS \(id("ioas"))"
            return prefix + "\(id("device")) attached to \(target)"
        case "event.device_detached":
            return prefix + "\(id("device")) detached from page table \(id("pt"))"
        case "event.device_released":
            return prefix + "\(id("device")) released"
        case "event.dirty_tracking_started":
            return prefix + "dirty tracking started on IOAS \(id("ioas"))"
        case "event.dirty_tracking_stopped":
            return prefix + "dirty tracking stopped on IOAS \(id("ioas"))"
        case "event.config_reloaded":
            return "daemon configuration reloaded"
        case "event.queue":  // MARK: i14audit
            return prefix + queueRecord(p)
        case "event.dmabuf_revoked":
            let range: String
            if let iova = p["iova"]?.uint64Value, let length = p["length"]?.uint64Value, length > 0 {
                range = "IOVA " + Units.hexRange(start: iova, last: iova &+ length &- 1)
            } else {
                range = "IOVA \(id("iova"))"
            }
            return prefix + "the exporter revoked the dma-buf mapped at \(range) of IOAS \(id("ioas")) (it stays dead until unmapped and mapped again)"
        default:
            return method + (params.map { " " + $0.description } ?? "")
        }
    }
}

extension Watch {
    // MARK: i14audit
    /// An `event.queue` record (docs/queues.md) as words: a vEVENT or an I/O page fault.
    static func queueRecord(_ p: JSONValue) -> String {
        func id(_ key: String) -> String { p[key].map(Status.scalar) ?? "?" }
        if p["kind"]?.stringValue == "fault" {
            let device = p["device"]?.stringValue ?? "device id \(id("device_id"))"
            let pasidValid = (p["flags"]?.uint64Value ?? 0) & UInt64(PageFault.pasidValid) != 0
            let address = p["address"]?.uint64Value.map(Units.hex) ?? id("address")
            return "fault queue \(id("queue")): \(device) faulted (\(pasidValid ? "PASID \(id("pasid"))" : "no PASID"), group \(id("group")), "
                + "\(QueueRead.permissions(UInt32(truncatingIfNeeded: p["perm"]?.uint64Value ?? 0))) at \(address), cookie \(id("cookie")))"
        }
        if p["lost_events"]?.boolValue == true {
            return "vEVENTQ \(id("queue")): events lost before sequence \(id("sequence")) (the kernel queue overflowed)"
        }
        let data = p["data"]?.stringValue ?? ""
        return "vEVENTQ \(id("queue")): event \(id("sequence")), \(Words.count(data.count / 2, "byte")) \(data.isEmpty ? "-" : data)"
    }
}
