import Foundation
import Logging
import TOMLKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Turns a parsed TOML table into a `DaemonConfig`, collecting every problem (with its line)
/// instead of stopping at the first: a person fixing a file wants the whole list.
struct ConfigDecoder {
    let file: String
    let locator: TOMLKeyLocator
    /// Resolves user and group names; replaceable so tests do not depend on /etc/passwd.
    let names: NameResolver
    private(set) var issues: [ConfigIssue] = []
    /// Every key a table reader looked up, as `table.key` (`[n]` of arrays of tables left out,
    /// top-level tables as their name): what the decoder knows, for the schema tests.
    var consulted: Set<String> = []

    init(file: String, source: String, names: NameResolver) {
        self.file = file
        self.locator = TOMLKeyLocator(source: source)
        self.names = names
    }

    mutating func fail(_ path: String, _ reason: String) {
        let position = locator.position(of: path)
        issues.append(
            ConfigIssue(file: file, line: position?.line, column: position?.column, key: path, reason: reason))
    }

    mutating func decode(_ root: TOMLTable) -> DaemonConfig {
        var config = DaemonConfig()
        var top = TableReader(root, path: [])
        if let t = top.table("daemon", &self) { config.daemon = decodeDaemon(t) }
        if let t = top.table("limits", &self) { config.limits = decodeLimits(t) }
        if let t = top.table("policy", &self) { config.policy = decodePolicy(t) }
        if let t = top.table("devices", &self) { config.devices = decodeDevices(t) }
        if let rules = top.tableArray("access", &self) { config.access = decodeAccessList(rules) }
        if let t = top.table("kernel", &self) { config.kernel = decodeKernel(t) }
        if let t = top.table("sim", &self) { config.sim = decodeSim(t) }
        top.finish(&self)
        return config
    }

    // MARK: sections

    mutating func decodeDaemon(_ r: TableReader) -> DaemonConfig.Daemon {
        var r = r
        var d = DaemonConfig.Daemon()
        if let path = r.string("socket_path", &self) {
            if let problem = SocketPathCheck.problem(path) { fail(r.path("socket_path"), problem) } else { d.socketPath = path }
        }
        if let mode = r.string("socket_mode", &self) {
            if let m = parseMode(mode) { d.socketMode = m } else {
                fail(r.path("socket_mode"), "\"\(mode)\" is not an octal permission mode such as \"0660\"")
            }
        }
        if let v = r.value("socket_group") {
            if let g = resolveGroup(v, r.path("socket_group")) { d.socketGroup = g }
        }
        if let b = r.enumValue("backend", Backend.self, &self) { d.backend = b }
        if let l = r.enumValue("log_level", LogLevelName.self, &self) { d.logLevel = l.level }
        r.finish(&self)
        return d
    }

    mutating func decodeLimits(_ r: TableReader) -> DaemonConfig.Limits {
        var r = r
        var l = DaemonConfig.Limits()
        if let v = r.int("max_message_bytes", min: 1024, max: 1 << 30, &self) { l.maxMessageBytes = v }
        if let v = r.int("max_clients", min: 1, max: 1 << 20, &self) { l.maxClients = v }
        if let v = r.int("max_fds_per_message", min: 0, max: 253, &self) { l.maxFDsPerMessage = v }
        if let v = r.seconds("idle_timeout_sec", allowZero: true, &self) { l.idleTimeout = v == .zero ? nil : v }
        if let v = r.seconds("partial_message_timeout_sec", allowZero: false, &self) { l.partialMessageTimeout = v }
        if let v = r.int("max_output_buffer_bytes", min: 4096, max: 1 << 34, &self) { l.maxOutputBufferBytes = v }
        if let v = r.int("channel_busy_poll_us", min: 0, max: 1000, &self) { l.channelBusyPollMicroseconds = UInt32(v) }  // kinval
        if let v = r.int("rpc_linger_us", min: 0, max: 10_000, &self) { l.rpcLingerMicroseconds = v }
        if let v = r.int("rpc_spin_us", min: 0, max: 1000, &self) { l.rpcSpinMicroseconds = v }
        r.finish(&self)
        return l
    }

    mutating func decodePolicy(_ r: TableReader) -> DaemonConfig.Policy {
        var r = r
        var p = DaemonConfig.Policy()
        if let v = r.enumValue("dirty_tracking", DirtyTrackingPolicy.self, &self) { p.dirtyTracking = v }
        if let v = r.bool("huge_pages", &self) { p.hugePages = v }
        if let v = r.bool("unmap_tolerate_missing", &self) { p.unmapTolerateMissing = v }
        if let v = r.quota("owner_pinned_bytes_quota", &self) { p.ownerPinnedBytesQuota = v }
        r.finish(&self)
        return p
    }

    mutating func decodeDevices(_ r: TableReader) -> DaemonConfig.Devices {
        var r = r
        var d = DaemonConfig.Devices()
        if let list = r.stringArray("allow", &self) {
            var seen: Set<String> = []
            for (n, entry) in list.enumerated() {
                let path = r.path("allow") + "[\(n)]"
                let match: DeviceMatch
                if entry.contains(":") {
                    guard let address = PCIAddress.parse(entry) else {
                        fail(path, "\"\(entry)\" is not a PCI address (domain:bus:device.function, e.g. 0000:03:00.0)")
                        continue
                    }
                    match = .pciAddress(address)
                } else {
                    let name = entry.hasPrefix("/dev/vfio/devices/") ? String(entry.dropFirst(18)) : entry
                    guard isValidName(name) else {
                        fail(path, "\"\(entry)\" is neither a PCI address nor a device name (vfioN, a simulated or mock device name)")
                        continue
                    }
                    match = .name(name)
                }
                if !seen.insert(match.description).inserted {
                    fail(path, "\"\(entry)\" is listed twice")
                    continue
                }
                d.allow.append(match)
            }
        }
        r.finish(&self)
        return d
    }

    /// First match wins at connect time, so a second entry for the same user or group would
    /// be silently dead: refuse it.
    mutating func decodeAccessList(_ tables: [TableReader]) -> [AccessRule] {
        var rules: [AccessRule] = []
        var firstEntry: [String: String] = [:]
        for table in tables {
            guard let rule = decodeAccess(table) else { continue }
            let subject: String
            switch rule.subject {
            case .user(let id, _): subject = "user \(id)"
            case .group(let id, _): subject = "group \(id)"
            }
            if let earlier = firstEntry[subject] {
                let line = locator.position(of: earlier).map { " (line \($0.line))" } ?? ""
                fail(table.path(""), "\(subject) already has an [[access]] entry\(line); merge them")
                continue
            }
            firstEntry[subject] = table.path("")
            rules.append(rule)
        }
        return rules
    }

    mutating func decodeAccess(_ r: TableReader) -> AccessRule? {
        var r = r
        let user = r.value("user")
        let group = r.value("group")
        let role = r.enumValue("role", Role.self, &self)
        let trusted = r.bool("trusted_vmm", &self) ?? false
        let quota = r.quota("pinned_bytes_quota", &self)
        r.finish(&self)
        let entry = r.path("")
        var subject: AccessRule.Subject?
        switch (user, group) {
        case (nil, nil):
            fail(entry, "an [[access]] entry needs `user` or `group` (a name or a number)")
        case (.some, .some):
            fail(r.path("group"), "an [[access]] entry names `user` or `group`, not both; write two entries")
        case (let u?, nil):
            if let id = resolveUser(u, r.path("user")) { subject = .user(id: id.id, name: id.name) }
        case (nil, let g?):
            if let id = resolveGroup(g, r.path("group")) { subject = .group(id: id.gid, name: id.name) }
        }
        if role == nil && !r.has("role") {
            fail(entry, "an [[access]] entry needs `role` (one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if trusted, let role, role == .reader {
            fail(r.path("trusted_vmm"), "a reader cannot be a trusted VMM: device.fd needs the manager or admin role")
        }
        guard let subject, let role else { return nil }
        return AccessRule(subject: subject, role: role, trustedVMM: trusted, pinnedBytesQuota: quota)
    }

    mutating func decodeKernel(_ r: TableReader) -> DaemonConfig.Kernel {
        var r = r
        var k = DaemonConfig.Kernel()
        if let v = r.bool("allow_mock_devices", &self) { k.allowMockDevices = v }
        if let v = r.bool("test_hooks", &self) { k.testHooks = v }
        if let list = r.tableArray("mock_devices", &self) {
            var seen: Set<String> = []
            for var m in list {
                guard let name = m.string("name", &self) else {
                    if !m.has("name") { fail(m.path(""), "a mock device needs a `name`") }
                    m.finish(&self)
                    continue
                }
                let noDirty = m.bool("no_dirty", &self) ?? false
                let pasid = m.bool("pasid", &self) ?? false  // pasid: MOCK_FLAGS_DEVICE_PASID
                m.finish(&self)
                if !isValidName(name) {
                    fail(m.path("name"), "\"\(name)\" is not a valid device name (letters, digits, '-', '_', '.')")
                } else if !seen.insert(name).inserted {
                    fail(m.path("name"), "mock device \"\(name)\" is defined twice")
                } else {
                    k.mockDevices.append(MockDevice(name: name, noDirty: noDirty, pasid: pasid))
                }
            }
        }
        r.finish(&self)
        if !k.allowMockDevices && !k.mockDevices.isEmpty {
            fail(
                r.path("mock_devices"),
                "mock devices are listed but allow_mock_devices is false; set it to true (CONFIG_IOMMUFD_TEST kernels only)")
        }
        if k.testHooks && !k.allowMockDevices {
            fail(
                r.path("test_hooks"),
                "test hooks drive the kernel's selftest (IOMMU_TEST_CMD) and need allow_mock_devices = true (CONFIG_IOMMUFD_TEST kernels only)")
        }
        return k
    }

    mutating func decodeSim(_ r: TableReader) -> DaemonConfig.Sim {
        var r = r
        var s = DaemonConfig.Sim()
        let iommuTables = r.tableArray("iommu", &self)
        let deviceTables = r.tableArray("device", &self)
        s.testHooks = r.bool("test_hooks", &self) ?? false
        if let v = r.int("pin_ns_per_page", min: 0, max: 1_000_000_000, &self) { s.pinNsPerPage = UInt64(v) }
        r.finish(&self)
        guard iommuTables != nil || deviceTables != nil else { return s }
        s.iommus = []
        s.devices = []
        var iommuNames: Set<String> = []
        for var t in iommuTables ?? [] {
            let name = t.string("name", &self)
            let driver = t.enumValue("driver", SimIOMMUDriver.self, &self) ?? .intelVTd
            let dirty = t.bool("dirty_tracking", &self) ?? false
            let nesting = t.bool("nesting", &self) ?? false
            let shares = t.bool("shares_nest_parent", &self)  // nestedgaps
            t.finish(&self)
            guard let name else {
                if !t.has("name") { fail(t.path(""), "a [[sim.iommu]] needs a `name`") }
                continue
            }
            if !isValidName(name) {
                fail(t.path("name"), "\"\(name)\" is not a valid name (letters, digits, '-', '_', '.')")
            } else if !iommuNames.insert(name).inserted {
                fail(t.path("name"), "IOMMU \"\(name)\" is defined twice")
            } else {
                var iommu = SimIOMMU(name: name, driver: driver, dirtyTracking: dirty, nesting: nesting)
                iommu.sharesNestParent = shares
                s.iommus.append(iommu)
            }
        }
        var deviceNames: Set<String> = []
        var addresses: Set<String> = []
        for var t in deviceTables ?? [] {
            let name = t.string("name", &self)
            let iommu = t.string("iommu", &self)
            let address = t.string("pci_address", &self)
            let mdev = t.bool("mdev", &self) ?? false
            let dirty = t.bool("dirty_tracking", &self) ?? !mdev
            let pasidWidth = t.int("pasid_width", min: 0, max: 20, &self)  // pasid
            t.finish(&self)
            guard let name else {
                if !t.has("name") { fail(t.path(""), "a [[sim.device]] needs a `name`") }
                continue
            }
            var ok = true
            if !isValidName(name) {
                fail(t.path("name"), "\"\(name)\" is not a valid name (letters, digits, '-', '_', '.')")
                ok = false
            } else if !deviceNames.insert(name).inserted {
                fail(t.path("name"), "device \"\(name)\" is defined twice")
                ok = false
            }
            if mdev {
                if iommu != nil {
                    fail(t.path("iommu"), "an mdev-like device has no IOMMU of its own; remove `iommu`")
                    ok = false
                }
                if address != nil {
                    fail(t.path("pci_address"), "an mdev-like device is not a PCI function; remove `pci_address`")
                    ok = false
                }
                if dirty {
                    fail(t.path("dirty_tracking"), "an mdev-like device has no HWPT, so no dirty tracking")
                    ok = false
                }
                if let w = pasidWidth, w > 0 {
                    fail(t.path("pasid_width"), "an mdev-like device has no IOMMU, so no PASIDs; remove `pasid_width`")
                    ok = false
                }
            } else if let iommu {
                if !iommuNames.contains(iommu) {
                    fail(t.path("iommu"), "no [[sim.iommu]] is named \"\(iommu)\"")
                    ok = false
                }
            } else if !t.has("iommu") {
                fail(t.path(""), "device \"\(name)\" needs `iommu` (the [[sim.iommu]] it sits behind) or `mdev = true`")
                ok = false
            }
            var canonical: String?
            if let address {
                if let a = PCIAddress.parse(address) {
                    canonical = a
                    if !addresses.insert(a).inserted {
                        fail(t.path("pci_address"), "PCI address \(a) is used by two devices")
                        ok = false
                    }
                } else {
                    fail(t.path("pci_address"), "\"\(address)\" is not a PCI address (domain:bus:device.function, e.g. 0000:00:02.0)")
                    ok = false
                }
            }
            if ok {
                s.devices.append(
                    SimDevice(name: name, iommu: mdev ? nil : iommu, pciAddress: canonical, mdev: mdev, dirtyTracking: dirty, pasidWidth: UInt8(pasidWidth ?? 0)))
            }
        }
        return s
    }

    // MARK: values

    func parseMode(_ text: String) -> mode_t? {
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard (1...4).contains(digits.count), digits.allSatisfy({ ("0"..."7").contains($0) }),
            let v = mode_t(digits, radix: 8), v <= 0o777
        else { return nil }
        return v
    }

    func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    mutating func resolveUser(_ v: TOMLValueConvertible, _ path: String) -> (id: uid_t, name: String?)? {
        if let n = v.int {
            guard n >= 0, n < Int(UInt32.max) else { fail(path, "\(n) is not a valid uid"); return nil }
            return (uid_t(n), nil)
        }
        if let name = v.string {
            guard let id = names.uid(name) else {
                fail(path, "no user is named \"\(name)\" (checked with getpwnam); create it or give a number")
                return nil
            }
            return (id, name)
        }
        fail(path, "expected a user name or number, found \(describe(v))")
        return nil
    }

    mutating func resolveGroup(_ v: TOMLValueConvertible, _ path: String) -> GroupRef? {
        if let n = v.int {
            guard n >= 0, n < Int(UInt32.max) else { fail(path, "\(n) is not a valid gid"); return nil }
            return GroupRef(gid: gid_t(n))
        }
        if let name = v.string {
            guard let id = names.gid(name) else {
                fail(path, "no group is named \"\(name)\" (checked with getgrnam); create it or give a number")
                return nil
            }
            return GroupRef(gid: id, name: name)
        }
        fail(path, "expected a group name or number, found \(describe(v))")
        return nil
    }
}

/// swift-log's level names, spelled as in the file.
enum LogLevelName: String, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}

func describe(_ v: TOMLValueConvertible) -> String {
    switch v.type {
    case .table: "a table"
    case .array: "an array"
    case .string: "a string (\"\(v.string ?? "")\")"
    case .int: "an integer (\(v.int ?? 0))"
    case .double: "a floating-point number"
    case .bool: "a boolean (\(v.bool ?? false))"
    case .date, .time, .dateTime: "a date/time"
    }
}

/// The keys of one TOML table, read once each; what is left at `finish` is unknown.
struct TableReader {
    let table: TOMLTable
    let components: [String]
    private var known: [String] = []

    init(_ table: TOMLTable, path: [String]) {
        self.table = table
        self.components = path
    }

    func path(_ key: String) -> String {
        key.isEmpty ? TOMLKeyLocator.join(components) : TOMLKeyLocator.join(components + [key])
    }

    func has(_ key: String) -> Bool { table.contains(key: key) }

    mutating func value(_ key: String) -> TOMLValueConvertible? {
        known.append(key)
        return table[key]
    }

    /// Reports the keys nobody read, with the nearest known key when one is close (a typo).
    mutating func finish(_ d: inout ConfigDecoder) {
        let prefix = components.filter { !$0.hasPrefix("[") }.joined(separator: ".")
        d.consulted.formUnion(known.map { prefix.isEmpty ? $0 : prefix + "." + $0 })
        for key in table.keys where !known.contains(key) {
            var reason = "unknown key `\(key)`"
            if let guess = known.min(by: { editDistance($0, key) < editDistance($1, key) }),
                editDistance(guess, key) <= 2
            {
                reason += "; did you mean `\(guess)`?"
            } else if !known.isEmpty {
                reason += " (known here: \(known.joined(separator: ", ")))"
            }
            d.fail(path(key), reason)
        }
    }

    mutating func string(_ key: String, _ d: inout ConfigDecoder) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { d.fail(path(key), "expected a string, found \(describe(v))"); return nil }
        return s
    }

    mutating func bool(_ key: String, _ d: inout ConfigDecoder) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { d.fail(path(key), "expected true or false, found \(describe(v))"); return nil }
        return b
    }

    mutating func int(_ key: String, min: Int, max: Int, _ d: inout ConfigDecoder) -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = v.int else { d.fail(path(key), "expected an integer, found \(describe(v))"); return nil }
        guard n >= min, n <= max else { d.fail(path(key), "\(n) is out of range (\(min) to \(max))"); return nil }
        return n
    }

    /// Seconds as an integer or a decimal number.
    mutating func seconds(_ key: String, allowZero: Bool, _ d: inout ConfigDecoder) -> Duration? {
        guard let v = value(key) else { return nil }
        let seconds: Double
        if let n = v.int { seconds = Double(n) } else if let x = v.double { seconds = x } else {
            d.fail(path(key), "expected a number of seconds, found \(describe(v))")
            return nil
        }
        guard seconds.isFinite, seconds >= 0, seconds <= 86_400 * 365, allowZero || seconds > 0 else {
            d.fail(path(key), "\(seconds) s is out of range (\(allowZero ? "0 (never)" : "more than 0") to one year)")
            return nil
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    mutating func enumValue<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type, _ d: inout ConfigDecoder) -> E?
    where E.RawValue == String {
        guard let s = string(key, &d) else { return nil }
        guard let e = E(rawValue: s) else {
            d.fail(path(key), "\"\(s)\" is not one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
            return nil
        }
        return e
    }

    mutating func quota(_ key: String, _ d: inout ConfigDecoder) -> ByteQuota? {
        guard let v = value(key) else { return nil }
        if let n = v.int {
            guard n >= 0 else { d.fail(path(key), "a quota cannot be negative"); return nil }
            return .bytes(UInt64(n))
        }
        if let s = v.string {
            if s == "unlimited" { return .unlimited }
            if let n = parseByteSize(s) { return .bytes(n) }
            d.fail(path(key), "\"\(s)\" is not a size: bytes as an integer, a string such as \"64GiB\" or \"512M\", or \"unlimited\"")
            return nil
        }
        d.fail(path(key), "expected a size (an integer of bytes, \"64GiB\", or \"unlimited\"), found \(describe(v))")
        return nil
    }

    mutating func stringArray(_ key: String, _ d: inout ConfigDecoder) -> [String]? {
        guard let v = value(key) else { return nil }
        guard let array = v.array else { d.fail(path(key), "expected an array of strings, found \(describe(v))"); return nil }
        var out: [String] = []
        for (n, element) in array.enumerated() {
            if let s = element.string { out.append(s) } else {
                d.fail(path(key) + "[\(n)]", "expected a string, found \(describe(element))")
            }
        }
        return out
    }

    mutating func table(_ key: String, _ d: inout ConfigDecoder) -> TableReader? {
        guard let v = value(key) else { return nil }
        guard let t = v.table else { d.fail(path(key), "expected a table ([\(path(key))]), found \(describe(v))"); return nil }
        return TableReader(t, path: components + [key])
    }

    /// An array of tables: `[[key]]` sections or `key = [{...}, ...]`.
    mutating func tableArray(_ key: String, _ d: inout ConfigDecoder) -> [TableReader]? {
        guard let v = value(key) else { return nil }
        guard let array = v.array else {
            d.fail(path(key), "expected an array of tables ([[\(path(key))]]), found \(describe(v))")
            return nil
        }
        var out: [TableReader] = []
        for (n, element) in array.enumerated() {
            if let t = element.table { out.append(TableReader(t, path: components + [key, "[\(n)]"])) } else {
                d.fail(path(key) + "[\(n)]", "expected a table, found \(describe(element))")
            }
        }
        return out
    }
}

/// `"64GiB"`, `"512M"`, `"4096"`: binary units (K = KiB = 1024), optional `B`.
func parseByteSize(_ text: String) -> UInt64? {
    let s = text.trimmingCharacters(in: .whitespaces)
    let digits = s.prefix { $0.isASCII && $0.isNumber }
    guard !digits.isEmpty, let n = UInt64(digits) else { return nil }
    var unit = s.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()
    if unit.hasSuffix("IB") { unit.removeLast(2) } else if unit.hasSuffix("B") { unit.removeLast() }
    let shift: UInt64
    switch unit {
    case "": shift = 0
    case "K": shift = 10
    case "M": shift = 20
    case "G": shift = 30
    case "T": shift = 40
    case "P": shift = 50
    default: return nil
    }
    let (result, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : result
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var row = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = row
    }
    return a.isEmpty ? b.count : previous[b.count]
}
