import Foundation
import IommufdCore
import Logging
import Testing

@testable import IommufdDaemon

#if canImport(Glibc)
import Glibc
#endif

/// Names resolved without /etc/passwd, so the tests mean the same on every machine.
private let testNames = NameResolver(
    uid: { ["root": 0, "qemu": 107][$0] },
    gid: { ["root": 0, "libvirt": 992, "kvm": 993][$0] })

private func parse(_ text: String) -> Result<DaemonConfig, ConfigError> {
    DaemonConfig.parse(text, file: "test.toml", names: testNames)
}

/// The problems a bad file gives; fails the test if the file was accepted.
private func issues(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigIssue] {
    switch parse(text) {
    case .success:
        Issue.record("the configuration was accepted", sourceLocation: sourceLocation)
        return []
    case .failure(let error):
        return error.issues
    }
}

/// The one problem a bad file gives.
private func issue(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConfigIssue {
    let all = issues(text, sourceLocation: sourceLocation)
    try #require(all.count == 1, "expected one problem, got: \(all)", sourceLocation: sourceLocation)
    return all[0]
}

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

@Suite("Config: defaults and the example file")
struct ConfigDefaultsTests {
    @Test func builtInDefaults() {
        let c = DaemonConfig.defaults
        #expect(c.daemon.socketPath == "/run/iommufdd/control.sock")
        #expect(c.daemon.socketMode == 0o660)
        #expect(c.daemon.socketGroup == nil)
        #expect(c.daemon.backend == .auto)
        #expect(c.daemon.logLevel == .info)
        #expect(c.limits.maxMessageBytes == 1_048_576)
        #expect(c.limits.maxClients == 512)
        #expect(c.limits.maxFDsPerMessage == 16)
        #expect(c.limits.idleTimeout == nil)
        #expect(c.limits.partialMessageTimeout == .seconds(10))
        #expect(c.limits.maxOutputBufferBytes == 16_777_216)
        #expect(c.policy.dirtyTracking == .off)
        #expect(c.policy.hugePages)
        #expect(!c.policy.unmapTolerateMissing)
        #expect(c.policy.ownerPinnedBytesQuota == .unlimited)
        #expect(c.devices.allow.isEmpty)
        #expect(c.access == [AccessRule(subject: .user(id: 0, name: nil), role: .admin)])
        #expect(!c.kernel.allowMockDevices)
        #expect(c.kernel.mockDevices.isEmpty)
    }

    /// The default simulated topology is what the brief asks for: IOMMU instances some
    /// dirty-capable and one not, PCI devices on each, one mdev-like device; and one instance of
    /// the selftest mock driver, the one whose nested HWPTs the simulator models.
    @Test func defaultSimTopology() {
        let sim = DaemonConfig.defaults.sim
        #expect(sim.iommus.count == 3)
        #expect(sim.iommus.filter(\.dirtyTracking).map(\.name) == ["sim-iommu0", "sim-iommu2"])
        #expect(sim.devices.filter { $0.iommu == sim.iommus[0].name }.count == 2)
        #expect(sim.devices.filter { $0.iommu == sim.iommus[1].name }.count == 1)
        #expect(sim.iommus[2].driver == .selftestMock && sim.iommus[2].nesting)
        #expect(sim.devices.filter { $0.iommu == sim.iommus[2].name }.map(\.name) == ["sim-pci3"])
        let mdevs = sim.devices.filter(\.mdev)
        #expect(mdevs.count == 1 && mdevs[0].iommu == nil && mdevs[0].pciAddress == nil)
    }

    @Test func emptyFileIsTheDefaults() throws {
        #expect(try parse("").get() == DaemonConfig.defaults)
        #expect(try parse("# nothing but a comment\n\n[daemon]\n").get() == DaemonConfig.defaults)
    }

    @Test func exampleFileEqualsTheDefaults() throws {
        let path = repositoryRoot + "/config/iommufdd.toml"
        let config = try DaemonConfig.load(contentsOf: path, names: testNames).get()
        #expect(config == DaemonConfig.defaults)
    }

    /// Every key the decoder reads appears (set) in the example file: the file documents all.
    @Test func exampleFileShowsEveryKey() throws {
        let text = try String(contentsOfFile: repositoryRoot + "/config/iommufdd.toml", encoding: .utf8)
        let keys = [
            "socket_path", "socket_mode", "socket_group", "backend", "log_level", "max_message_bytes", "max_clients",
            "max_fds_per_message", "idle_timeout_sec", "partial_message_timeout_sec", "max_output_buffer_bytes",
            "dirty_tracking", "huge_pages", "unmap_tolerate_missing", "owner_pinned_bytes_quota", "allow", "user",
            "group", "role", "trusted_vmm", "pinned_bytes_quota", "allow_mock_devices", "mock_devices", "no_dirty",
            "name", "driver", "nesting", "iommu", "pci_address", "mdev", "test_hooks", "pin_ns_per_page",
            "channel_busy_poll_us", "rpc_linger_us", "rpc_spin_us",
        ]
        for key in keys {
            #expect(text.contains("\(key) =") || text.contains("\(key) "), "example file lacks \(key)")
        }
    }
}

@Suite("Config: values")
struct ConfigValueTests {
    @Test func everySectionParses() throws {
        let c = try parse(
            """
            [daemon]
            socket_path = "/run/test/iommufdd.sock"
            socket_mode = "0600"
            socket_group = "libvirt"
            backend = "sim"
            log_level = "debug"

            [limits]
            max_message_bytes = 65536
            max_clients = 8
            max_fds_per_message = 4
            idle_timeout_sec = 300
            partial_message_timeout_sec = 2.5
            max_output_buffer_bytes = 1048576

            [policy]
            dirty_tracking = "preferred"
            huge_pages = false
            unmap_tolerate_missing = true
            owner_pinned_bytes_quota = "64GiB"

            [devices]
            allow = ["0000:03:00.0", "03:00.1", "vfio7", "/dev/vfio/devices/vfio8", "sim-pci0"]

            [[access]]
            group = "libvirt"
            role = "manager"
            pinned_bytes_quota = "unlimited"

            [[access]]
            user = "qemu"
            role = "manager"
            trusted_vmm = true
            pinned_bytes_quota = 1073741824

            [[access]]
            group = 1000
            role = "reader"

            [kernel]
            allow_mock_devices = true
            mock_devices = [{ name = "mock0" }, { name = "mock1", no_dirty = true }]

            [[sim.iommu]]
            name = "smmu0"
            dirty_tracking = true

            [[sim.device]]
            name = "gpu"
            iommu = "smmu0"
            pci_address = "0000:41:00.0"
            dirty_tracking = false
            """
        ).get()
        #expect(c.daemon.socketPath == "/run/test/iommufdd.sock")
        #expect(c.daemon.socketMode == 0o600)
        #expect(c.daemon.socketGroup == GroupRef(gid: 992, name: "libvirt"))
        #expect(c.daemon.backend == .sim)
        #expect(c.daemon.logLevel == .debug)
        #expect(c.limits.maxMessageBytes == 65536)
        #expect(c.limits.maxClients == 8)
        #expect(c.limits.maxFDsPerMessage == 4)
        #expect(c.limits.idleTimeout == .seconds(300))
        #expect(c.limits.partialMessageTimeout == .milliseconds(2500))
        #expect(c.limits.maxOutputBufferBytes == 1_048_576)
        #expect(c.policy.dirtyTracking == .preferred)
        #expect(!c.policy.hugePages)
        #expect(c.policy.unmapTolerateMissing)
        #expect(c.policy.ownerPinnedBytesQuota == .bytes(64 << 30))
        #expect(
            c.devices.allow == [
                .pciAddress("0000:03:00.0"), .pciAddress("0000:03:00.1"), .name("vfio7"), .name("vfio8"),
                .name("sim-pci0"),
            ])
        #expect(
            c.access == [
                AccessRule(subject: .group(id: 992, name: "libvirt"), role: .manager, pinnedBytesQuota: .unlimited),
                AccessRule(subject: .user(id: 107, name: "qemu"), role: .manager, trustedVMM: true, pinnedBytesQuota: .bytes(1 << 30)),
                AccessRule(subject: .group(id: 1000, name: nil), role: .reader),
            ])
        #expect(c.kernel.allowMockDevices)
        #expect(c.kernel.mockDevices == [MockDevice(name: "mock0"), MockDevice(name: "mock1", noDirty: true)])
        #expect(c.sim.iommus == [SimIOMMU(name: "smmu0", dirtyTracking: true, nesting: false)])
        #expect(
            c.sim.devices == [SimDevice(name: "gpu", iommu: "smmu0", pciAddress: "0000:41:00.0", dirtyTracking: false)])
    }

    @Test func mockDevicesAsArrayOfTables() throws {
        let c = try parse(
            """
            [kernel]
            allow_mock_devices = true
            [[kernel.mock_devices]]
            name = "m0"
            [[kernel.mock_devices]]
            name = "m1"
            no_dirty = true
            """
        ).get()
        #expect(c.kernel.mockDevices == [MockDevice(name: "m0"), MockDevice(name: "m1", noDirty: true)])
    }

    @Test(arguments: [
        ("4096", UInt64(4096)), ("4K", 4096), ("4KiB", 4096), ("512M", 512 << 20), ("512MB", 512 << 20),
        ("64GiB", 64 << 30), ("1T", 1 << 40), ("2 GiB", 2 << 30),
    ])
    func byteSizes(text: String, bytes: UInt64) throws {
        let c = try parse("[policy]\nowner_pinned_bytes_quota = \"\(text)\"").get()
        #expect(c.policy.ownerPinnedBytesQuota == .bytes(bytes))
    }

    @Test func quotaAdmission() {
        #expect(ByteQuota.bytes(100).admits(100))
        #expect(!ByteQuota.bytes(100).admits(101))
        #expect(ByteQuota.unlimited.admits(.max))
    }

    @Test func accessRuleLookup() throws {
        let c = try parse(
            """
            [[access]]
            group = "kvm"
            role = "reader"
            [[access]]
            group = "libvirt"
            role = "manager"
            [[access]]
            user = "qemu"
            role = "admin"
            pinned_bytes_quota = "1G"
            [policy]
            owner_pinned_bytes_quota = "8G"
            """
        ).get()
        // A user entry wins over group entries, even when listed after them.
        let qemu = try #require(c.accessRule(uid: 107, gid: 992))
        #expect(qemu.role == .admin)
        #expect(c.pinnedBytesQuota(for: qemu) == .bytes(1 << 30))
        // Groups in file order; a supplementary group counts.
        #expect(c.accessRule(uid: 1000, gid: 1000, supplementaryGroups: [992, 993])?.role == .reader)
        let manager = try #require(c.accessRule(uid: 1000, gid: 992))
        #expect(manager.role == .manager)
        #expect(c.pinnedBytesQuota(for: manager) == .bytes(8 << 30))
        // Root is not implicitly admin once [[access]] is given.
        #expect(c.accessRule(uid: 0, gid: 0) == nil)
        #expect(DaemonConfig.defaults.accessRule(uid: 0, gid: 0)?.role == .admin)
        #expect(DaemonConfig.defaults.accessRule(uid: 1000, gid: 1000) == nil)
    }

    @Test func allowListMatching() throws {
        let c = try parse(#"[devices]\#nallow = ["0000:03:00.0", "vfio7", "sim-mdev0"]"#).get()
        let byAddress = DeviceDescriptor(name: "vfio2", kind: .pci, cdevPath: "/dev/vfio/devices/vfio2", pciAddress: "0000:03:00.0")
        let byCdev = DeviceDescriptor(name: "vfio7", kind: .pci, cdevPath: "/dev/vfio/devices/vfio7", pciAddress: "0000:04:00.0")
        let bySimName = DeviceDescriptor(name: "sim-mdev0", kind: .mdev)
        let other = DeviceDescriptor(name: "vfio3", kind: .pci, cdevPath: "/dev/vfio/devices/vfio3", pciAddress: "0000:03:00.1")
        #expect(c.devices.allows(byAddress))
        #expect(c.devices.allows(byCdev))
        #expect(c.devices.allows(bySimName))
        #expect(!c.devices.allows(other))
        #expect(!DaemonConfig.defaults.devices.allows(byAddress), "the default allow-list admits nothing")
    }

    @Test func roleOrder() {
        #expect(Role.reader < Role.manager && Role.manager < Role.admin)
    }
}

@Suite("Config: bad files give the line and the reason")
struct ConfigErrorTests {
    @Test func syntaxErrorHasLineAndColumn() throws {
        let i = try issue("[daemon]\nbackend = \"sim\"\nlog_level = \n")
        #expect(i.file == "test.toml")
        #expect(i.line == 3)
        #expect(i.column != nil)
        #expect(i.reason.hasPrefix("TOML syntax"))
        #expect(i.description.hasPrefix("test.toml:3:"))
    }

    @Test func unknownKeyWithSuggestion() throws {
        let i = try issue("[daemon]\nbackend = \"sim\"\n\n  sokcet_path = \"/run/x.sock\"\n")
        #expect(i.line == 4)
        #expect(i.column == 3)
        #expect(i.key == "daemon.sokcet_path")
        #expect(i.reason.contains("unknown key `sokcet_path`"))
        #expect(i.reason.contains("did you mean `socket_path`?"))
        #expect(i.description == "test.toml:4:3: daemon.sokcet_path: \(i.reason)")
    }

    @Test func unknownSectionAndUnknownKeyFarFromAnyKnownOne() throws {
        let i = try issue("[daemon]\n[limit]\nmax_clients = 3\n")
        #expect(i.line == 2)
        #expect(i.key == "limit")
        #expect(i.reason.contains("did you mean `limits`?"))
        let j = try issue("[policy]\nwhatever = 1\n")
        #expect(j.line == 2)
        #expect(j.reason.contains("known here: dirty_tracking"))
    }

    @Test func unknownKeyInTheSecondAccessEntry() throws {
        let i = try issue(
            """
            [[access]]
            user = 0
            role = "admin"

            [[access]]
            group = "libvirt"
            role = "manager"
            trusted_vm = true
            """)
        #expect(i.line == 8)
        #expect(i.key == "access[1].trusted_vm")
        #expect(i.reason.contains("did you mean `trusted_vmm`?"))
    }

    @Test func unknownKeyInsideAnInlineTable() throws {
        let i = try issue(
            """
            [kernel]
            allow_mock_devices = true
            mock_devices = [
                { name = "mock0" },
                { name = "mock1", nodirty = true },
            ]
            """)
        #expect(i.line == 5)
        #expect(i.column == 23)
        #expect(i.key == "kernel.mock_devices[1].nodirty")
    }

    @Test func keysInsideMultilineStringsAreNotKeys() throws {
        // The locator must not take text inside a string for a key.
        let i = try issue(
            #"""
            [daemon]
            socket_path = """/run/a
            backend = "x"
            """
            bakend = "sim"
            """#)
        #expect(i.line == 5)
        #expect(i.key == "daemon.bakend")
    }

    @Test func dottedAndQuotedKeysAreLocated() throws {
        let dotted = try issue("# top\ndaemon.backend = \"sim\"\ndaemon.bakend = \"sim\"\n")
        #expect(dotted.line == 3)
        #expect(dotted.column == 8)
        #expect(dotted.key == "daemon.bakend")
        let quoted = try issue("[limits]\n\"max-clients\" = 3\n")
        #expect(quoted.line == 2)
        #expect(quoted.key == "limits.max-clients")
        // A `#` inside a string is not a comment, and `[` inside a string is not a header.
        let strings = try issue("[daemon]\nsocket_path = \"/run/#[x]/a.sock\" # c\nlog = 1\n")
        #expect(strings.line == 3)
    }

    @Test(arguments: ["0999", "rw-rw----", "660 ", "01777", "", "7777"])
    func socketModeMustBeOctal(mode: String) throws {
        let i = try issue("[daemon]\n\nsocket_mode = \"\(mode)\"\n")
        #expect(i.line == 3)
        #expect(i.key == "daemon.socket_mode")
        #expect(i.reason.contains("octal"))
    }

    @Test func socketModeMustBeAString() throws {
        // 0660 as a TOML integer is not valid TOML (leading zero) and 432 is ambiguous: insist on text.
        let i = try issue("[daemon]\nsocket_mode = 432\n")
        #expect(i.line == 2)
        #expect(i.reason == "expected a string, found an integer (432)")
    }

    @Test func unknownRole() throws {
        let i = try issue("[[access]]\nuser = 0\nrole = \"superuser\"\n")
        #expect(i.line == 3)
        #expect(i.key == "access[0].role")
        #expect(i.reason == #""superuser" is not one of "reader", "manager", "admin""#)
    }

    @Test func accessEntryNeedsExactlyOneSubjectAndARole() throws {
        let none = try issue("[daemon]\n[[access]]\nrole = \"reader\"\n")
        #expect(none.line == 2)
        #expect(none.reason.contains("needs `user` or `group`"))
        let both = try issue("[[access]]\nuser = 0\ngroup = 0\nrole = \"reader\"\n")
        #expect(both.line == 3)
        #expect(both.reason.contains("not both"))
        let noRole = try issue("[[access]]\nuser = 0\n")
        #expect(noRole.line == 1)
        #expect(noRole.reason.contains("needs `role`"))
        let readerVMM = try issue("[[access]]\nuser = 0\nrole = \"reader\"\ntrusted_vmm = true\n")
        #expect(readerVMM.line == 4)
    }

    @Test func sameSubjectTwiceIsRefused() throws {
        let i = try issue("[[access]]\ngroup = \"libvirt\"\nrole = \"reader\"\n[[access]]\ngroup = 992\nrole = \"manager\"\n")
        #expect(i.line == 4)
        #expect(i.reason == "group 992 already has an [[access]] entry (line 1); merge them")
    }

    @Test func unknownUserAndGroupNames() throws {
        let user = try issue("[[access]]\nuser = \"nobody-here\"\nrole = \"reader\"\n")
        #expect(user.line == 2)
        #expect(user.reason.contains("no user is named \"nobody-here\""))
        let group = try issue("[daemon]\nsocket_group = \"no-such-group\"\n")
        #expect(group.line == 2)
        #expect(group.reason.contains("no group is named"))
    }

    @Test func wrongTypesAndRanges() throws {
        let type = try issue("[limits]\nmax_clients = \"many\"\n")
        #expect(type.line == 2)
        #expect(type.reason == #"expected an integer, found a string ("many")"#)
        let range = try issue("[limits]\nmax_fds_per_message = 300\n")
        #expect(range.reason == "300 is out of range (0 to 253)")
        let zero = try issue("[limits]\npartial_message_timeout_sec = 0\n")
        #expect(zero.key == "limits.partial_message_timeout_sec")
        let section = try issue("daemon = 3\n")
        #expect(section.line == 1)
        #expect(section.reason.contains("expected a table"))
        let bool = try issue("[policy]\nhuge_pages = \"yes\"\n")
        #expect(bool.reason.contains("expected true or false"))
        let quota = try issue("[policy]\nowner_pinned_bytes_quota = \"lots\"\n")
        #expect(quota.reason.contains("not a size"))
    }

    @Test func socketPathProblems() throws {
        #expect(try issue("[daemon]\nsocket_path = \"control.sock\"\n").reason.contains("not an absolute path"))
        let long = "/" + String(repeating: "a", count: 120)
        #expect(try issue("[daemon]\nsocket_path = \"\(long)\"\n").reason.contains("at most 107"))
    }

    @Test func badEnumsListTheChoices() throws {
        #expect(try issue("[daemon]\nbackend = \"qemu\"\n").reason == #""qemu" is not one of "auto", "kernel", "sim""#)
        #expect(try issue("[policy]\ndirty_tracking = \"on\"\n").reason.contains(#""preferred""#))
        #expect(try issue("[daemon]\nlog_level = \"verbose\"\n").reason.contains(#""debug""#))
        #expect(
            try issue("[[sim.iommu]]\nname = \"amd0\"\ndriver = \"amd-vi\"\n").reason
                == #""amd-vi" is not one of "intel-vtd", "arm-smmuv3", "selftest-mock""#)
    }

    /// `[[sim.iommu]] driver` picks the kernel driver an instance answers like; without it, an
    /// instance is Intel VT-d (what it was before the key existed).
    @Test func simIOMMUDriver() throws {
        let c = try parse(
            """
            [[sim.iommu]]
            name = "smmu0"
            driver = "arm-smmuv3"
            nesting = true
            [[sim.iommu]]
            name = "dmar0"
            dirty_tracking = true
            """
        ).get()
        #expect(
            c.sim.iommus == [
                SimIOMMU(name: "smmu0", driver: .armSMMUv3, dirtyTracking: false, nesting: true),
                SimIOMMU(name: "dmar0", driver: .intelVTd, dirtyTracking: true, nesting: false),
            ])
    }

    @Test func allowListEntries() throws {
        let bad = try issue("[devices]\nallow = [\n  \"vfio1\",\n  \"0000:zz:00.0\",\n]\n")
        #expect(bad.line == 4)
        #expect(bad.key == "devices.allow[1]")
        #expect(bad.reason.contains("not a PCI address"))
        let twice = try issue("[devices]\nallow = [\"0000:03:00.0\", \"03:00.0\"]\n")
        #expect(twice.reason.contains("listed twice"))
        let notString = try issue("[devices]\nallow = [\"vfio1\", 3]\n")
        #expect(notString.key == "devices.allow[1]")
    }

    @Test func mockDevicesNeedExplicitPermission() throws {
        let i = try issue("[kernel]\n\nmock_devices = [{ name = \"mock0\" }]\n")
        #expect(i.line == 3)
        #expect(i.reason.contains("allow_mock_devices is false"))
    }

    @Test func simTopologyIsChecked() throws {
        let all = issues(
            """
            [[sim.iommu]]
            name = "a"
            [[sim.iommu]]
            name = "a"
            [[sim.device]]
            name = "d0"
            iommu = "b"
            [[sim.device]]
            name = "d1"
            mdev = true
            iommu = "a"
            [[sim.device]]
            name = "d2"
            [[sim.device]]
            name = "d3"
            iommu = "a"
            pci_address = "0000:00:1f.9"
            """)
        let byLine = Dictionary(grouping: all, by: { $0.line ?? 0 })
        #expect(byLine[4]?.first?.reason == "IOMMU \"a\" is defined twice")
        #expect(byLine[7]?.first?.reason == "no [[sim.iommu]] is named \"b\"")
        #expect(byLine[11]?.first?.reason.contains("no IOMMU of its own") == true)
        #expect(byLine[12]?.first?.reason.contains("needs `iommu`") == true)
        #expect(byLine[17]?.first?.reason.contains("not a PCI address") == true)
        #expect(all.count == 5)
    }

    @Test func everyProblemIsReportedAtOnce() {
        let all = issues(
            """
            [daemon]
            backend = "kvm"
            socket_mode = "abc"
            [limits]
            max_clients = 0
            [[access]]
            user = 0
            role = "root"
            """)
        #expect(all.map(\.line) == [2, 3, 5, 8])
    }

    @Test func missingFileSaysSo() throws {
        let result = DaemonConfig.load(contentsOf: "/nonexistent/iommufdd.toml", names: testNames)
        guard case .failure(let error) = result else {
            Issue.record("a missing file was accepted")
            return
        }
        #expect(error.issues.count == 1)
        #expect(error.issues[0].file == "/nonexistent/iommufdd.toml")
        #expect(error.issues[0].reason.contains("ENOENT"))
    }
}

@Suite("Config: command-line overrides and reload")
struct ConfigOverrideTests {
    private func temporaryFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "iommufdd-config-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func flagsOverrideTheFile() throws {
        let path = try temporaryFile("[daemon]\nbackend = \"kernel\"\nlog_level = \"error\"\nsocket_path = \"/run/a.sock\"\n")
        defer { unlink(path) }
        let fromFile = try DaemonConfig.load(overrides: ConfigOverrides(configPath: path), names: testNames).get()
        #expect(fromFile.daemon.backend == .kernel)
        #expect(fromFile.daemon.logLevel == .error)
        #expect(fromFile.daemon.socketPath == "/run/a.sock")
        let overridden = try DaemonConfig.load(
            overrides: ConfigOverrides(configPath: path, socketPath: "/tmp/t.sock", backend: .sim, logLevel: .trace),
            names: testNames
        ).get()
        #expect(overridden.daemon.backend == .sim)
        #expect(overridden.daemon.logLevel == .trace)
        #expect(overridden.daemon.socketPath == "/tmp/t.sock")
    }

    @Test func badSocketOverrideIsAnError() throws {
        let result = DaemonConfig.defaults.applying(overrides: ConfigOverrides(socketPath: "relative.sock"))
        guard case .failure(let error) = result else {
            Issue.record("a relative --socket was accepted")
            return
        }
        #expect(error.issues == [ConfigIssue(file: "<command line>", key: "--socket", reason: "\"relative.sock\" is not an absolute path")])
    }

    @Test func explicitConfigMustExist() {
        let result = DaemonConfig.load(overrides: ConfigOverrides(configPath: "/nonexistent/x.toml"), names: testNames)
        #expect(throws: ConfigError.self) { try result.get() }
    }

    @Test func reloadKeepsTheOldConfigWhenTheNewOneIsBad() throws {
        let path = try temporaryFile("[policy]\ndirty_tracking = \"preferred\"\n")
        defer { unlink(path) }
        let overrides = ConfigOverrides(configPath: path, logLevel: .debug)
        let store = ConfigStore(
            initial: try DaemonConfig.load(overrides: overrides, names: testNames).get(), overrides: overrides,
            names: testNames)
        #expect(store.current.policy.dirtyTracking == .preferred)

        try "[policy]\ndirty_tracking = \"required\"\n[daemon]\nbackend = \"sim\"\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let (old, new) = try store.reload().get()
        #expect(old.policy.dirtyTracking == .preferred)
        #expect(new.policy.dirtyTracking == .required)
        #expect(store.current.policy.dirtyTracking == .required)
        #expect(store.current.daemon.logLevel == .debug, "flags keep overriding after a reload")
        #expect(new.changesNeedingRestart(from: old) == ["daemon.backend"])

        try "[policy]\ndirty_tracking = \"always\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        guard case .failure(let error) = store.reload() else {
            Issue.record("a bad file was accepted on reload")
            return
        }
        #expect(error.issues.first?.line == 2)
        #expect(store.current.policy.dirtyTracking == .required)
    }
}

@Suite("Logging: journald lines")
struct LoggingTests {
    @Test(arguments: [
        (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
    ])
    func priorityPrefix(level: Logger.Level, priority: Int) {
        let line = JournalLogHandler.format(level: level, label: "iommufdd", message: "m", metadata: [:], style: .journal)
        #expect(line == "<\(priority)>iommufdd: m\n")
    }

    @Test func metadataIsFlattenedSortedAndQuoted() {
        let line = JournalLogHandler.format(
            level: .warning, label: "iommufdd.rpc", message: "client refused\nsecond line",
            metadata: [
                "peer": ["uid": "1000", "pid": "42"],
                "reason": "not in [[access]]",
                "fds": [.string("3"), .string("4")],
                "empty": "",
                "quote": "say \"hi\"",
            ], style: .journal)
        #expect(
            line
                == #"<4>iommufdd.rpc: client refused\nsecond line empty="" fds=[3,4] peer.pid=42 peer.uid=1000 quote="say \"hi\"" reason="not in [[access]]""#
                + "\n")
        #expect(line.filter { $0 == "\n" }.count == 1)
    }

    @Test func terminalStyleSpellsTheLevel() {
        let line = JournalLogHandler.format(level: .error, label: "iommufdd", message: "m", metadata: ["k": "v"], style: .terminal)
        #expect(line == "error iommufdd: m k=v\n")
    }

    @Test func handlerFollowsTheSharedLevelAndMergesMetadata() {
        let lines = CapturedLines()
        let levels = LogLevelControl(.info)
        var logger = Logger(label: "test") { label in
            JournalLogHandler(label: label, style: .journal, output: LogOutput { lines.append($0) }, levels: levels)
        }
        logger[metadataKey: "owner"] = "vm-1"
        logger.debug("hidden")
        logger.info("shown", metadata: ["ioas": "3"])
        levels.level = .debug  // a reload lowering the level reaches existing loggers
        logger.debug("now shown")
        logger.logLevel = .error  // a level set on one logger is its own
        logger.warning("hidden again")
        #expect(lines.all == ["<6>test: shown ioas=3 owner=vm-1\n", "<7>test: now shown owner=vm-1\n"])
    }

    @Test func journalStreamDetection() {
        var st = stat()
        fstat(2, &st)
        #expect(DaemonLogging.detectStyle(environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"]) == .journal)
        #expect(DaemonLogging.detectStyle(environment: [:]) == (isatty(2) == 1 ? .terminal : .journal))
    }
}

private final class CapturedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }
    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}
