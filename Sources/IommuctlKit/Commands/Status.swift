import ArgumentParser
import IommufdRPC

/// `iommuctl status`: `daemon.info` in a few lines.
struct Status: DaemonCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's version, backend, kernel features and object counts.",
        discussion: """
            Calls daemon.info. The first line says whether the daemon answers at all, which \
            makes `iommuctl status` the quick check that iommufdd is up (exit status 3 when it \
            is not).

            Example:
              $ iommuctl status
              iommufdd 0.1.0, backend sim, up 5m 02s, pid 4242
              socket    /run/iommufdd/control.sock
              config    /etc/iommufdd/iommufdd.toml
              features  iommufd, VFIO cdev, HWPT alloc, HW info, dirty tracking, ...
              objects   1 owner, 1 IOAS, 1 HWPT, 0 vIOMMUs, 0 vDevices, 1 mapping
              devices   4 known, 4 allowed, 1 leased, 1 attached
              pinned    1 GiB
              dirty     0 IOAS tracking
              clients   1 connected, 0 watching events
              restarts  keep every object (fd store)
            """)

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let info = try context.call("daemon.info")
        try context.emit(info) { Self.render(info, socket: context.socketPath) }
    }

    /// Renders what daemon.info answers. Known members get words; any other scalar member is
    /// shown as `name  value` so nothing the daemon reports is hidden.
    static func render(_ info: JSONValue, socket: String) -> String {
        guard case .object(var o) = info else { return JSONText.render(info, compact: true) }
        var head = "iommufdd"
        if let version = o.removeValue(forKey: "version")?.stringValue { head += " \(version)" }
        var facts: [String] = []
        if let backend = o.removeValue(forKey: "backend")?.stringValue { facts.append("backend \(backend)") }
        let uptime = o.removeValue(forKey: "uptime_seconds") ?? o.removeValue(forKey: "uptime")
        if let seconds = uptime?.doubleValue, seconds >= 0 {
            facts.append("up \(Units.duration(seconds: UInt64(seconds)))")
        }
        if let pid = o.removeValue(forKey: "pid")?.int64Value { facts.append("pid \(pid)") }
        o.removeValue(forKey: "started_at")  // the uptime says it
        if !facts.isEmpty { head += ", " + facts.joined(separator: ", ") }

        var fields = Fields()
        fields.add("socket", o.removeValue(forKey: "socket")?.stringValue ?? socket)
        if let config = o.removeValue(forKey: "config_file") {
            fields.add("config", config.stringValue ?? "built-in defaults")
        }
        for key in ["kernel", "kernel_version", "kernel_release"] {
            if let kernel = o.removeValue(forKey: key)?.stringValue { fields.add("kernel", kernel) }
        }
        if let features = o.removeValue(forKey: "features") {
            let (present, missing) = featureWords(features)
            fields.add("features", Words.list(present))
            if !missing.isEmpty { fields.add("missing", Words.list(missing)) }
        }
        if case .object(let counts)? = o.removeValue(forKey: "counts") {
            var rest = counts
            func take(_ key: String) -> Int? { rest.removeValue(forKey: key)?.int64Value.map { Int($0) } }
            var objects: [String] = []
            if let n = take("owners") { objects.append(Words.count(n, "owner")) }
            if let n = take("ioas") { objects.append("\(n) IOAS") }
            if let n = take("hwpts") { objects.append(Words.count(n, "HWPT")) }
            if let n = take("viommus") { objects.append(Words.count(n, "vIOMMU")) }
            if let n = take("vdevices") { objects.append(Words.count(n, "vDevice")) }
            if let n = take("mappings") { objects.append(Words.count(n, "mapping")) }
            if !objects.isEmpty { fields.add("objects", objects.joined(separator: ", ")) }
            var devices: [String] = []
            if let n = take("devices_known") { devices.append("\(n) known") }
            if let n = take("devices_allowed") { devices.append("\(n) allowed") }
            if let n = take("devices_leased") { devices.append("\(n) leased") }
            if let n = take("devices_attached") { devices.append("\(n) attached") }
            if !devices.isEmpty { fields.add("devices", devices.joined(separator: ", ")) }
            if let pinned = rest.removeValue(forKey: "pinned_bytes")?.uint64Value { fields.add("pinned", Units.bytes(pinned)) }
            if let n = take("dirty_tracking_ioas") { fields.add("dirty", "\(n) IOAS tracking") }
            var clients: [String] = []
            if let n = o.removeValue(forKey: "connections")?.int64Value { clients.append("\(n) connected") }
            if let n = take("subscribers") { clients.append("\(n) watching events") }
            if !clients.isEmpty { fields.add("clients", clients.joined(separator: ", ")) }
            for key in rest.keys.sorted() { fields.add(Words.splitWords(key), scalar(rest[key]!)) }
        }
        if let keeps = o.removeValue(forKey: "restart_keeps_objects")?.boolValue {
            fields.add("restarts", keeps ? "keep every object (fd store)" : "destroy every object (no fd store)")
        }
        if let warnings = o.removeValue(forKey: "warnings")?.arrayValue {
            for warning in warnings { fields.add("warning", scalar(warning)) }
        }
        for key in o.keys.sorted() { fields.add(Words.splitWords(key), scalar(o[key]!)) }
        return head + "\n" + fields.render()
    }

    /// `features` as the daemon sends it: a list of names or of `{name, supported, since}`
    /// objects, or an object name → bool. Missing ones say which kernel has them.
    static func featureWords(_ features: JSONValue) -> (present: [String], missing: [String]) {
        switch features {
        case .array(let items):
            // Names, or objects {"name": ..., "available"/"supported": bool}.
            var present: [String] = [], missing: [String] = []
            for item in items {
                guard let name = item.stringValue ?? item["name"]?.stringValue else { continue }
                let available = item["available"]?.boolValue ?? item["supported"]?.boolValue ?? true
                if available {
                    present.append(Words.feature(name))
                } else {
                    let since = item["since"]?.stringValue.map { $0.first?.isNumber == true ? " (Linux \($0))" : " (\($0))" } ?? ""
                    missing.append(Words.feature(name) + since)
                }
            }
            return (present, missing)
        case .object(let flags):
            let keys = flags.keys.sorted()
            return (keys.filter { flags[$0]?.boolValue == true }.map(Words.feature),
                    keys.filter { flags[$0]?.boolValue == false }.map(Words.feature))
        default:
            return ([scalar(features)], [])
        }
    }

    static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): s
        case .bool(let b): Words.yesNo(b)
        case .array(let a) where a.allSatisfy({ $0.stringValue != nil }): a.compactMap(\.stringValue).joined(separator: ", ")
        default: value.description
        }
    }
}

/// `iommuctl metrics`: the daemon's Prometheus text.
struct Metrics: DaemonCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the daemon's metrics in the Prometheus text format.",
        discussion: """
            Calls daemon.metrics: object counts, pinned bytes, requests and errors by code, \
            connections, a latency histogram per method \
            (iommufdd_request_duration_seconds), the time requests waited for the \
            broker's state lock (iommufdd_broker_lock_wait_seconds) and for an earlier request \
            of the same owner (iommufdd_broker_owner_wait_seconds); buckets from 10 microseconds to 10 seconds. \
            Handy with grep:
              iommuctl metrics | grep '^iommufdd_pinned'
              iommuctl metrics | grep '^iommufdd_request_duration_seconds_count'
            """)

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let metrics = try context.call("daemon.metrics")
        try context.emit(metrics) { Self.render(metrics) }
    }

    static func render(_ metrics: JSONValue) -> String {
        var text: String
        if let s = metrics.stringValue {
            text = s
        } else if let s = metrics["text"]?.stringValue ?? metrics["metrics"]?.stringValue {
            text = s
        } else {
            return JSONText.render(metrics, compact: false)
        }
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
