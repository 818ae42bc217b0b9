import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// The daemon end to end on the kernel backend: `iommufdd --backend kernel` on the test VM's
/// real /dev/iommu, driven over its socket as a VM manager and a VMM would. The edu devices
/// (VFIO cdevs behind the emulated VT-d) show discovery, the auto-domain policy, memfd
/// mappings and real DMA through a device fd handed out by the daemon; the kernel's mock
/// devices show dirty tracking and vIOMMU/vDevice, which the emulated VT-d lacks.
struct DaemonChecks {
    let daemon: DaemonProcess
    let client: DaemonClient
    let run: CheckRunner

    static let mib: UInt64 = 1 << 20
    /// Below the edu engine's 28-bit DMA mask, clear of its buffer address.
    static let iova: UInt64 = 0x100000
    /// Where mock devices can translate: their domains' aperture starts at 16 MiB
    /// (MOCK_APERTURE_START), and attaching one to an IOAS mapped below is EADDRINUSE.
    static let mockIOVA: UInt64 = 0x100_0000
    static let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    static func runAll(run: CheckRunner) -> Bool {
        DaemonProcess.withDaemon(run: run) { daemon, client, _ in
            DaemonChecks(daemon: daemon, client: client, run: run).runChecks()
        }
    }

    func runChecks() {
        run.check("ping") { try ping() }
        run.check("info-kernel-features") { try infoFeatures() }
        run.check("device-discovery") { try deviceDiscovery() }
        run.check("attach-auto-domain") { try attachAutoDomain() }
        run.check("map-memfd-unmap") { try mapMemfdUnmap() }
        run.check("huge-pages-option") { try hugePagesOption() }
        run.check("dirty-tracking-mock") { try dirtyTrackingMock() }
        run.check("dirty-resume-mock") { try dirtyResumeMock() }
        run.check("viommu-vdevice-mock") { try viommuVDeviceMock() }
        run.check("device-info-vendor-data") { try deviceInfoVendorData() }  // i14audit
        run.check("vmm-dma-through-daemon") { try vmmDMAThroughDaemon() }
        run.check("two-owners-isolated") { try twoOwnersIsolated() }
        run.check("manager-without-trusted-vmm") { try managerWithoutTrustedVMM() }
        run.check("owner-release-leaves-nothing") { try ownerReleaseLeavesNothing() }
    }

    // MARK: daemon.*

    func ping() throws {
        let (result, _) = try client.json("daemon.ping")
        try expect(result.stringValue == "pong", "daemon.ping answered \(result)")
    }

    /// daemon.info lists every feature the daemon knows, each supported exactly when this
    /// kernel has it: by its version (`uname -r`) against the first release with the feature,
    /// and the selftest because this is the CONFIG_IOMMUFD_TEST kernel the mock devices need.
    func infoFeatures() throws {
        let (info, _) = try client.json("daemon.info")
        try expect(info["backend"]?.stringValue == "kernel", "backend \(info["backend"] ?? nil)")
        guard let features = info["features"]?.arrayValue else { throw CheckFailure(description: "daemon.info has no features: \(info)") }
        let release = Self.kernelRelease()
        print("      kernel \(release.text); daemon.info features:")
        var seen = Set<String>()
        for entry in features {
            guard let name = entry["name"]?.stringValue, let supported = entry["supported"]?.boolValue,
                let since = entry["since"]?.stringValue
            else { throw CheckFailure(description: "malformed feature entry \(entry)") }
            seen.insert(name)
            let expected: Bool
            if let version = Self.version(since) {
                expected = (release.major, release.minor) >= version
            } else {
                expected = true  // CONFIG_IOMMUFD_TEST: mock devices are configured and the daemon started
            }
            print("        \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) since \(since.padding(toLength: 20, withPad: " ", startingAt: 0)) \(supported ? "supported" : "not supported")")
            try expect(supported == expected, "feature \(name) (since \(since)) reported \(supported ? "supported" : "unsupported") on Linux \(release.text)")
        }
        let known = Set(Feature.allCases.map(\.rawValue))
        try expect(seen == known, "daemon.info features \(seen.sorted()) are not every known feature \(known.sorted())")
        let counts = info["counts"]
        try expect(counts?["devices_known"]?.int64Value == 7, "devices_known \(counts?["devices_known"] ?? nil), expected 2 edu + 5 mock")
        try expect(counts?["devices_allowed"]?.int64Value == 6, "devices_allowed \(counts?["devices_allowed"] ?? nil), expected 6")
        let warnings = info["warnings"]?.arrayValue?.compactMap(\.stringValue) ?? []
        try expect(warnings.contains { $0.contains("[kernel] test_hooks") }, "daemon.info does not warn that test hooks are on: \(warnings)")
    }

    static func kernelRelease() -> (text: String, major: Int, minor: Int) {
        var name = utsname()
        uname(&name)
        let text = withUnsafeBytes(of: name.release) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = text.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return (text, numbers.first ?? 0, numbers.count > 1 ? numbers[1] : 0)
    }

    static func version(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: ".").compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    // MARK: Devices

    /// device.list against sysfs, read here independently of the daemon's discovery.
    func deviceDiscovery() throws {
        let list: DeviceListResult = try client.call("device.list", DeviceListParams())
        for d in list.devices {
            print("      \(d.name): \(d.kind.rawValue) \(d.pciAddress ?? "-") group \(d.iommuGroup.map(String.init) ?? "-") \(d.iommuInstance ?? "-") \(d.driver ?? "-") \(d.vendorDevice ?? "-") allowed=\(d.allowed)")
        }
        let classDir = "/sys/class/vfio-dev"
        let cdevs = try FileManager.default.contentsOfDirectory(atPath: classDir).filter { $0.hasPrefix("vfio") }.sorted()
        try expect(cdevs == ["vfio0", "vfio1"], "sysfs has VFIO cdevs \(cdevs), the VM has two edu devices")
        for name in cdevs {
            guard let d = list.devices.first(where: { $0.name == name }) else { throw CheckFailure(description: "device.list lacks \(name)") }
            let deviceDir = try Self.resolve("\(classDir)/\(name)/device")
            let bdf = (deviceDir as NSString).lastPathComponent
            let group = try Self.linkBase(deviceDir + "/iommu_group")
            let unit = try Self.linkBase(deviceDir + "/iommu")
            try expect(d.kind == .pci, "\(name) kind \(d.kind)")
            try expect(d.pciAddress == bdf, "\(name) PCI address \(d.pciAddress ?? "none"), sysfs says \(bdf)")
            try expect(d.iommuGroup.map(String.init) == group, "\(name) IOMMU group \(d.iommuGroup.map(String.init) ?? "none"), sysfs says \(group)")
            try expect(d.iommuInstance == unit && unit == "dmar0", "\(name) IOMMU \(d.iommuInstance ?? "none"), sysfs says \(unit), the VM has dmar0")
            try expect(d.vendorDevice == "1234:11e8" && d.driver == "vfio-pci", "\(name) is \(d.vendorDevice ?? "-") on \(d.driver ?? "-")")
            try expect(d.allowed && !d.leased, "\(name) allowed=\(d.allowed) leased=\(d.leased)")
        }
        try expect(list.devices.first { $0.name == "vfio0" }?.pciAddress == "0000:00:02.0", "vfio0 is not QEMU's first slot 0000:00:02.0")
        let mocks = list.devices.filter { $0.kind == .mock }
        try expect(Set(mocks.map(\.name)) == ["mock0", "mock1", "mock-nodirty", "mock-unlisted", "mock-pasid"], "mock devices \(mocks.map(\.name))")
        try expect(mocks.allSatisfy { $0.allowed == ($0.name != "mock-unlisted") }, "mock allow-list state \(mocks.map { "\($0.name)=\($0.allowed)" })")
        // By PCI address too.
        let byAddress: DeviceInfo = try client.call("device.info", DeviceInfoParams(device: "0000:00:02.0"))
        try expect(byAddress.name == "vfio0", "device.info 0000:00:02.0 is \(byAddress.name)")
    }

    /// Both edu devices sit behind dmar0: the first attach allocates an HWPT, the second joins
    /// it; the last device out takes the daemon-made HWPT with it. The emulated VT-d has no
    /// dirty tracking, so dirty=required is refused; an unlisted device is refused.
    func attachAutoDomain() throws {
        let owner = "vm-auto"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        try client.expectError("iommufdd.PolicyRefused", "dirty=required on the emulated VT-d") {
            _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas, dirty: .required), as: DeviceAttachResult.self)
        }
        try client.expectError("iommufdd.PermissionDenied", "a device off the allow-list") {
            _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock-unlisted", ioas: ioas.ioas), as: DeviceAttachResult.self)
        }
        let first: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas))
        print("      vfio0: device_id \(first.deviceID) pt \(first.pt) created \(first.hwptCreated)")
        try expect(first.hwptCreated && first.pt != ioas.ioas && !first.dirtyTracking, "first attach: \(first)")
        let second: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "0000:00:03.0", ioas: ioas.ioas))
        print("      vfio1: device_id \(second.deviceID) pt \(second.pt) created \(second.hwptCreated)")
        try expect(!second.hwptCreated && second.pt == first.pt, "second device behind dmar0 did not share HWPT \(first.pt): \(second)")
        let hwpts: HWPTListResult = try client.call("hwpt.list", HWPTListParams(owner: owner))
        try expect(hwpts.hwpts.count == 1 && hwpts.hwpts[0].auto && Set(hwpts.hwpts[0].devices) == ["vfio0", "vfio1"] && hwpts.hwpts[0].iommuInstance == "dmar0", "hwpt.list: \(hwpts.hwpts)")
        try client.expectError("iommufdd.Busy", "ioas.destroy with devices attached") {
            _ = try client.call("ioas.destroy", IOASDestroyParams(ioas: ioas.ioas), as: IOASDestroyResult.self)
        }
        let d1: DeviceDetachResult = try client.call("device.detach", DeviceDetachParams(device: "vfio1"))
        try expect(d1.destroyedHWPTs.isEmpty, "detaching one of two devices destroyed \(d1.destroyedHWPTs)")
        let d0: DeviceDetachResult = try client.call("device.detach", DeviceDetachParams(device: "vfio0"))
        try expect(d0.destroyedHWPTs == [first.pt], "the last device out destroyed \(d0.destroyedHWPTs), expected [\(first.pt)]")
        let after: HWPTListResult = try client.call("hwpt.list", HWPTListParams(owner: owner))
        try expect(after.hwpts.isEmpty, "HWPTs left: \(after.hwpts)")
    }

    // MARK: IOAS

    /// A memfd mapped with IOMMU_IOAS_MAP_FILE (this kernel has it), at a fixed IOVA and at one
    /// the kernel picks; unmapped whole; a hole is NotFound unless tolerated.
    func mapMemfdUnmap() throws {
        let owner = "vm-map"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas), as: DeviceAttachResult.self)
        let memory = try GuestMemory(size: 4 * Self.mib)
        let fixed = try client.map(ioas: ioas.ioas, memory: memory, length: Self.mib, iova: Self.iova)
        try expect(fixed.iova == Self.iova && fixed.ownerPinnedBytes == Self.mib, "fixed map: \(fixed)")
        let params = IOASMapParams(ioas: ioas.ioas, fd: FDRef(fd: 0), offset: Self.mib, length: 2 * Self.mib, iova: nil)
        let (raw, fds) = try client.json("ioas.map", try JSONValueEncoder().encode(params), fds: [memory.fd])
        for fd in fds { close(fd) }
        let chosen: IOASMapResult = try client.decode(raw)
        print("      kernel-chosen IOVA 0x\(String(chosen.iova, radix: 16))")
        try expect(chosen.iova % Self.page == 0 && (chosen.iova >= Self.iova + Self.mib || chosen.iova + 2 * Self.mib <= Self.iova), "kernel-chosen IOVA 0x\(String(chosen.iova, radix: 16)) overlaps the fixed mapping")
        let info: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: ioas.ioas))
        try expect(info.mappingCount == 2 && info.mappings.allSatisfy { $0.source == "file" && $0.readable && $0.writeable }, "ioas.info mappings: \(info.mappings)")
        try expect(info.pinnedBytes == 3 * Self.mib, "pinned \(info.pinnedBytes), expected 3 MiB")
        try client.expectError("iommufdd.InvalidParams", "unmapping half a mapping") {
            _ = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, iova: Self.iova, length: Self.mib / 2), as: IOASUnmapResult.self)
        }
        let unmapped: IOASUnmapResult = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, iova: Self.iova, length: Self.mib))
        try expect(unmapped.unmappedBytes == Self.mib && unmapped.mappings == 1 && unmapped.ownerPinnedBytes == 2 * Self.mib, "unmap: \(unmapped)")
        try client.expectError("iommufdd.NotFound", "unmapping a hole") {
            _ = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, iova: Self.iova, length: Self.mib), as: IOASUnmapResult.self)
        }
        let tolerated: IOASUnmapResult = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, iova: Self.iova, length: Self.mib, tolerateMissing: true))
        try expect(tolerated.unmappedBytes == 0, "tolerated hole unmapped \(tolerated.unmappedBytes) bytes")
        let all: IOASUnmapResult = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, all: true))
        try expect(all.unmappedBytes == 2 * Self.mib && all.ownerPinnedBytes == 0, "unmap all: \(all)")
    }

    /// IOMMU_OPTION_HUGE_PAGES per IOAS: from the request, from the owner's policy, changed
    /// later; the kernel refuses turning it off once a domain holds mappings (EINVAL), and the
    /// daemon's record stays as it was.
    func hugePagesOption() throws {
        let owner = "vm-huge"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner, hugePages: false), as: OwnerInfo.self)
        let byPolicy: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        try expect(!byPolicy.hugePages, "owner policy huge_pages=false gave \(byPolicy)")
        let explicit: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner, hugePages: true))
        try expect(explicit.hugePages, "huge_pages=true gave \(explicit)")
        let set: IOASSetOptionResult = try client.call("ioas.set_option", IOASSetOptionParams(ioas: byPolicy.ioas, hugePages: true))
        try expect(set.hugePages, "set_option: \(set)")
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: explicit.ioas), as: DeviceAttachResult.self)
        let memory = try GuestMemory(size: 2 * Self.mib, flags: GuestMemory.hugeTLB | GuestMemory.huge2MB)
        _ = try client.map(ioas: explicit.ioas, memory: memory, iova: 2 * Self.mib)
        try client.expectError("iommufdd.Kernel", errno: "EINVAL", "huge pages off with a domain holding mappings") {
            _ = try client.call("ioas.set_option", IOASSetOptionParams(ioas: explicit.ioas, hugePages: false), as: IOASSetOptionResult.self)
        }
        let info: IOASInfo = try client.call("ioas.info", IOASInfoParams(ioas: explicit.ioas))
        try expect(info.hugePages, "ioas.info says huge_pages=false after the kernel refused")
    }

    // MARK: Mock devices

    /// Dirty tracking on a mock domain: required policy, start, simulated device writes
    /// (IOMMU_TEST_OP_DIRTY through the sim.dma test hook), read without and with clear, as runs
    /// and as a bitmap memfd, stop; a no-dirty mock device is refused under `required`.
    func dirtyTrackingMock() throws {
        let owner = "vm-dirty"
        let p = Self.page
        let base = Self.mockIOVA
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false))
        let memory = try GuestMemory(size: 64 * p)
        _ = try client.map(ioas: ioas.ioas, memory: memory, iova: base)
        try client.expectError("iommufdd.PolicyRefused", "dirty=required for a no-dirty mock device") {
            _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock-nodirty", ioas: ioas.ioas, dirty: .required), as: DeviceAttachResult.self)
        }
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock0", ioas: ioas.ioas, dirty: .required))
        try expect(attached.dirtyTracking && attached.hwptCreated, "mock0 attach: \(attached)")
        let write = { (first: UInt64, pages: UInt64) throws -> JSONValue in
            try client.json("sim.dma", .object(["device": .string("mock0"), "iova": .unsigned(base + first * p), "length": .unsigned(pages * p)])).result
        }
        try client.expectError("iommufdd.Kernel", errno: "EINVAL", "a device write with tracking off (IOMMU_TEST_OP_DIRTY)") { _ = try write(0, 1) }
        let started: DirtyStatusResult = try client.call("dirty.start", DirtyParams(ioas: ioas.ioas))
        try expect(started.enabled && started.trackingHWPTs == [attached.pt] && started.untrackedDevices.isEmpty, "dirty.start: \(started)")
        try client.expectError("iommufdd.PolicyRefused", "a no-dirty device joining a tracked IOAS") {
            _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock-nodirty", ioas: ioas.ioas, dirty: .preferred), as: DeviceAttachResult.self)
        }
        _ = try write(1, 2)
        _ = try write(10, 1)
        let expected = [DirtyRun(iova: base + p, length: 2 * p), DirtyRun(iova: base + 10 * p, length: p)]
        let peek: DirtyReadResult = try client.call("dirty.read", DirtyReadParams(ioas: ioas.ioas, iova: base, length: 64 * p, clear: false))
        try expect(peek.runs == expected && peek.dirtyPages == 3 && !peek.cleared, "NO_CLEAR read: \(peek)")
        let read: DirtyReadResult = try client.call("dirty.read", DirtyReadParams(ioas: ioas.ioas, iova: base, length: 64 * p))
        try expect(read.runs == expected && read.cleared, "read-and-clear: \(read)")
        let empty: DirtyReadResult = try client.call("dirty.read", DirtyReadParams(ioas: ioas.ioas, iova: base, length: 64 * p))
        try expect(empty.runs == [] && empty.dirtyPages == 0, "read after clear: \(empty)")
        // The raw bitmap in a memfd: bit (iova - base) / page of u64 words.
        _ = try write(5, 1)
        _ = try write(63, 1)
        let (raw, fds) = try client.json("dirty.read", try JSONValueEncoder().encode(DirtyReadParams(ioas: ioas.ioas, iova: base, length: 64 * p, format: .bitmap)))
        defer { for fd in fds { close(fd) } }
        let bitmap: DirtyReadResult = try client.decode(raw)
        guard let index = bitmap.bitmap?.fd, index < fds.count else { throw CheckFailure(description: "dirty.read bitmap sent no memfd: \(bitmap), \(fds.count) fds") }
        var word: UInt64 = 0
        try expect(pread(fds[index], &word, 8, 0) == 8, "reading the bitmap memfd failed")
        try expect(word == (1 << 5) | (1 << 63) && bitmap.dirtyPages == 2, "bitmap word 0x\(String(word, radix: 16)) (\(bitmap.dirtyPages) pages), expected bits 5 and 63")
        let stopped: DirtyStatusResult = try client.call("dirty.stop", DirtyParams(ioas: ioas.ioas))
        try expect(!stopped.enabled && stopped.trackingHWPTs.isEmpty, "dirty.stop: \(stopped)")
        try client.expectError("iommufdd.Kernel", errno: "EINVAL", "a device write after dirty.stop") { _ = try write(0, 1) }
    }

    /// A dirty harvest cut short and resumed loses nothing on the real kernel: two mappings
    /// with a hole between them (the kernel's own read stops silently at a hole), every third
    /// page written, read with small `max_runs` (and at twice the page size, from inside the
    /// hole) until `resume_iova` runs out. Every page comes back exactly once.
    func dirtyResumeMock() throws {
        let owner = "vm-resume"
        let p = Self.page
        let base = Self.mockIOVA
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false))
        let low = try GuestMemory(size: 128 * p), high = try GuestMemory(size: 64 * p)
        _ = try client.map(ioas: ioas.ioas, memory: low, iova: base)
        _ = try client.map(ioas: ioas.ioas, memory: high, iova: base + 192 * p)
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock0", ioas: ioas.ioas, dirty: .required))
        _ = try client.call("dirty.start", DirtyParams(ioas: ioas.ioas), as: DirtyStatusResult.self)
        let mapped = (0..<UInt64(128)).map { $0 } + (192..<UInt64(256)).map { $0 }
        let end = base + 256 * p
        func writeEveryThird() throws -> Set<UInt64> {
            var written = Set<UInt64>()
            for page in mapped where page % 3 == 0 {
                _ = try client.json("sim.dma", .object(["device": .string("mock0"), "iova": .unsigned(base + page * p), "length": .unsigned(p)]))
                written.insert(base + page * p)
            }
            return written
        }
        func harvest(from start: UInt64, pageSize: UInt64, maxRuns: Int) throws -> (pages: [UInt64], reads: Int) {
            var pages: [UInt64] = []
            var iova = start
            var reads = 0
            while reads < 1000 {
                let r: DirtyReadResult = try client.call("dirty.read", DirtyReadParams(ioas: ioas.ioas, iova: iova, length: end - iova, pageSize: pageSize, maxRuns: maxRuns))
                reads += 1
                try expect(r.clearFailures == nil, "a clearing read failed: \(r)")
                for run in r.runs ?? [] { pages += stride(from: run.iova, to: run.iova + run.length, by: Int(pageSize)).map { $0 } }
                guard let resume = r.resumeIOVA else { break }
                try expect(resume > iova && resume % pageSize == 0, "resume_iova 0x\(String(resume, radix: 16)) after 0x\(String(iova, radix: 16))")
                iova = resume
            }
            return (pages, reads)
        }
        let written = try writeEveryThird()
        let first = try harvest(from: base, pageSize: p, maxRuns: 5)
        try expect(first.pages.count == written.count && Set(first.pages) == written,
                   "max_runs 5 at \(p) B: \(first.pages.count) pages in \(first.reads) reads for \(written.count) written (\(written.subtracting(first.pages).count) missing)")
        try expect(first.reads > 1, "the harvest was cut short (\(first.reads) read)")
        // Again at twice the page size, from inside the hole: the first mapping's pages stay
        // dirty, the second's come back once each as 2-page granules.
        let again = try writeEveryThird()
        let fromHole = try harvest(from: base + 160 * p, pageSize: 2 * p, maxRuns: 2)
        let expectedGranules = Set(again.filter { $0 >= base + 192 * p }.map { $0 / (2 * p) * (2 * p) })
        try expect(fromHole.pages.count == expectedGranules.count && Set(fromHole.pages) == expectedGranules,
                   "max_runs 2 at \(2 * p) B from the hole: \(fromHole.pages.count) granules in \(fromHole.reads) reads, expected \(expectedGranules.count)")
        let rest = try harvest(from: base, pageSize: p, maxRuns: 1 << 16)
        let expectedRest = again.filter { $0 < base + 128 * p }
        try expect(Set(rest.pages) == expectedRest && rest.pages.count == expectedRest.count,
                   "the first mapping's pages, still dirty: \(rest.pages.count) of \(expectedRest.count)")
        _ = attached
    }

    /// vIOMMU + vDevice over a mock device: the daemon allocates the nest parent, moves the
    /// device onto it and infers the vIOMMU type from the mock IOMMU's hw_info. The emulated
    /// VT-d has no vIOMMU type and cannot nest (EOPNOTSUPP), and a refusal leaves nothing behind.
    func viommuVDeviceMock() throws {
        let owner = "vm-nest"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock1", ioas: ioas.ioas))
        let viommu: VIOMMUCreateResult = try client.call("viommu.create", VIOMMUCreateParams(device: "mock1"))
        print("      vIOMMU \(viommu.viommu) over nest parent \(viommu.nestParent) on \(viommu.iommuInstance ?? "-"), moved from \(viommu.movedFrom.map(String.init) ?? "-")")
        try expect(viommu.nestParentCreated && viommu.movedFrom == attached.pt && viommu.iommuInstance == "mock-iommu", "viommu.create: \(viommu)")
        let vdev: VDeviceCreateResult = try client.call("vdevice.create", VDeviceCreateParams(viommu: viommu.viommu, device: "mock1", virtualID: 0x42))
        try expect(vdev.virtualID == 0x42 && vdev.device == "mock1", "vdevice.create: \(vdev)")
        let info: OwnerInfo = try client.call("owner.info", OwnerInfoParams(name: owner))
        try expect(info.viommus == [viommu.viommu] && info.vdevices == [vdev.vdevice], "owner.info: viommus \(info.viommus) vdevices \(info.vdevices)")
        let listed: VIOMMUListResult = try client.call("viommu.list", VIOMMUListParams(ioas: ioas.ioas))
        try expect(
            listed.viommus.map(\.viommu) == [viommu.viommu] && listed.viommus[0].nestParent == viommu.nestParent
                && listed.viommus[0].iommuInstance == "mock-iommu" && listed.viommus[0].vdevices.map(\.vdevice) == [vdev.vdevice],
            "viommu.list: \(listed.viommus)")
        try client.expectError("iommufdd.Busy", "viommu.destroy with a vDevice") {
            _ = try client.call("viommu.destroy", VIOMMUDestroyParams(viommu: viommu.viommu), as: VIOMMUDestroyResult.self)
        }
        try client.expectError("iommufdd.Busy", "device.detach with a vDevice") {
            _ = try client.call("device.detach", DeviceDetachParams(device: "mock1"), as: DeviceDetachResult.self)
        }
        _ = try client.call("vdevice.destroy", VDeviceDestroyParams(vdevice: vdev.vdevice), as: VDeviceDestroyResult.self)
        _ = try client.call("viommu.destroy", VIOMMUDestroyParams(viommu: viommu.viommu), as: VIOMMUDestroyResult.self)
        // The emulated VT-d: Linux 7.3 has no vIOMMU for VT-d (the daemon says so, Unsupported,
        // before touching the kernel), and with a type named anyway the kernel refuses the nest parent.
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas), as: DeviceAttachResult.self)
        try client.expectError("iommufdd.Unsupported", "viommu.create on the emulated VT-d") {
            _ = try client.call("viommu.create", VIOMMUCreateParams(device: "vfio0"), as: VIOMMUCreateResult.self)
        }
        try client.expectError("iommufdd.Kernel", errno: "EOPNOTSUPP", "viommu.create on the emulated VT-d with type ARM SMMUv3") {
            _ = try client.call("viommu.create", VIOMMUCreateParams(device: "vfio0", type: 1), as: VIOMMUCreateResult.self)
        }
        let hwpts: HWPTListResult = try client.call("hwpt.list", HWPTListParams(owner: owner))
        try expect(!hwpts.hwpts.contains { $0.nestParent && $0.iommuInstance == "dmar0" }, "a refused viommu.create left a nest parent: \(hwpts.hwpts)")
    }

    // MARK: Real DMA

    /// A VMM with trusted_vmm: attach through the daemon, take the device fd, map guest memory
    /// through the daemon, and make the edu device DMA. Lands while mapped; after ioas.unmap
    /// through the daemon the next DMA does not.
    func vmmDMAThroughDaemon() throws {
        let owner = "vm-dma"
        defer { _ = try? client.release(owner) }
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        let attached: DeviceAttachResult = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas))
        let (fdResult, fd) = try client.deviceFD("vfio0")
        defer { close(fd) }
        try expect(fdResult.deviceID == attached.deviceID, "device.fd device_id \(fdResult.deviceID), attach said \(attached.deviceID)")
        let edu = try EduDevice(fd: fd)
        let memory = try GuestMemory(size: Self.mib)
        _ = try client.map(ioas: ioas.ioas, memory: memory, iova: Self.iova)
        try Self.expectRoundTrip(edu, memory, iova: Self.iova, seed: 0x5a)
        let unmapped: IOASUnmapResult = try client.call("ioas.unmap", IOASUnmapParams(ioas: ioas.ioas, iova: Self.iova, length: Self.mib))
        try expect(unmapped.unmappedBytes == Self.mib, "unmap: \(unmapped)")
        try Self.expectBlocked(edu, memory, iova: Self.iova, offset: 0x2000)
        // Mapped again, DMA lands again: the device itself is fine, only the mapping was gone.
        _ = try client.map(ioas: ioas.ioas, memory: memory, iova: Self.iova)
        try Self.expectRoundTrip(edu, memory, iova: Self.iova, seed: 0x3c)
    }

    /// Two owners, each with its own edu device, IOAS and memory at the same IOVA: each device
    /// reaches its own owner's memory only, and an IOVA mapped only for the other owner is
    /// blocked. The daemon keeps each owner to its own devices and IOAS.
    func twoOwnersIsolated() throws {
        defer {
            _ = try? client.release("vm-a")
            _ = try? client.release("vm-b")
        }
        _ = try client.call("owner.create", OwnerCreateParams(name: "vm-a"), as: OwnerInfo.self)
        _ = try client.call("owner.create", OwnerCreateParams(name: "vm-b"), as: OwnerInfo.self)
        let ioasA: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: "vm-a"))
        let ioasB: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: "vm-b"))
        _ = try client.call("device.attach", DeviceAttachParams(owner: "vm-a", device: "vfio0", ioas: ioasA.ioas), as: DeviceAttachResult.self)
        _ = try client.call("device.attach", DeviceAttachParams(owner: "vm-b", device: "vfio1", ioas: ioasB.ioas), as: DeviceAttachResult.self)
        try client.expectError("iommufdd.Conflict", "vm-a taking vm-b's device") {
            _ = try client.call("device.attach", DeviceAttachParams(owner: "vm-a", device: "vfio1", ioas: ioasA.ioas), as: DeviceAttachResult.self)
        }
        try client.expectError("iommufdd.InvalidParams", "vm-a's device onto vm-b's IOAS") {
            _ = try client.call("device.replace", DeviceReplaceParams(device: "vfio0", ioas: ioasB.ioas), as: DeviceAttachResult.self)
        }
        let (_, fdA) = try client.deviceFD("vfio0")
        defer { close(fdA) }
        let (_, fdB) = try client.deviceFD("vfio1")
        defer { close(fdB) }
        let eduA = try EduDevice(fd: fdA)
        let eduB = try EduDevice(fd: fdB)
        let memoryA = try GuestMemory(size: Self.mib)
        let memoryB = try GuestMemory(size: 2 * Self.mib)
        _ = try client.map(ioas: ioasA.ioas, memory: memoryA, iova: Self.iova)
        _ = try client.map(ioas: ioasB.ioas, memory: memoryB, iova: Self.iova)
        try Self.expectRoundTrip(eduA, memoryA, iova: Self.iova, seed: 0x11)
        try expect(memoryB.read(256, at: 0x1000).allSatisfy { $0 == 0 }, "vm-a's device wrote into vm-b's memory")
        try Self.expectRoundTrip(eduB, memoryB, iova: Self.iova, seed: 0x22)
        try expect(memoryA.read(256, at: 0x1000) == Self.pattern(0x11), "vm-b's device changed vm-a's memory")
        // [iova + 1 MiB, +1 MiB) is mapped in vm-b's IOAS only.
        try Self.expectBlocked(eduA, memoryB, iova: Self.iova, offset: Self.mib + 0x3000)
    }

    /// uid 1000 is a manager without trusted_vmm: it gets no device fd, and cannot see or touch
    /// the owners root created.
    func managerWithoutTrustedVMM() throws {
        let manager = try DaemonClient.connect(path: daemon.socketPath, asUID: 1000)
        defer { manager.rpc.close() }
        defer {
            _ = try? client.release("vm-root")
            _ = try? manager.release("vm-m")
        }
        _ = try client.call("owner.create", OwnerCreateParams(name: "vm-root"), as: OwnerInfo.self)
        let rootIOAS: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: "vm-root"))
        _ = try manager.call("owner.create", OwnerCreateParams(name: "vm-m"), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try manager.call("ioas.create", IOASCreateParams(owner: "vm-m"))
        _ = try manager.call("device.attach", DeviceAttachParams(owner: "vm-m", device: "vfio1", ioas: ioas.ioas), as: DeviceAttachResult.self)
        try manager.expectError("iommufdd.PermissionDenied", "device.fd without trusted_vmm") { _ = try manager.deviceFD("vfio1") }
        try manager.expectError("iommufdd.NotFound", "another identity's IOAS") {
            _ = try manager.call("ioas.info", IOASInfoParams(ioas: rootIOAS.ioas), as: IOASInfo.self)
        }
        try manager.expectError("iommufdd.NotFound", "releasing another identity's owner") { try manager.release("vm-root") }
    }

    /// One owner with everything (mappings, edu devices on an auto HWPT, a dirty-tracked mock
    /// domain, a vIOMMU with a vDevice) released in one call: the daemon counts nothing left, and
    /// the kernel let go of the devices (another owner binds and attaches them at once).
    func ownerReleaseLeavesNothing() throws {
        let owner = "vm-full"
        defer { _ = try? client.release(owner) }  // if a step fails before the release under test
        _ = try client.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        let ioas: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false))
        let memory = try GuestMemory(size: 4 * Self.mib)
        _ = try client.map(ioas: ioas.ioas, memory: memory, iova: Self.iova)
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas.ioas), as: DeviceAttachResult.self)
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio1", ioas: ioas.ioas), as: DeviceAttachResult.self)
        try client.expectError("iommufdd.PolicyRefused", "dirty.start on an IOAS with VT-d devices (no dirty tracking)") {
            _ = try client.call("dirty.start", DirtyParams(ioas: ioas.ioas), as: DirtyStatusResult.self)
        }
        let tracked: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false))
        let trackedMemory = try GuestMemory(size: Self.mib)
        _ = try client.map(ioas: tracked.ioas, memory: trackedMemory, iova: Self.mockIOVA)
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock0", ioas: tracked.ioas, dirty: .required), as: DeviceAttachResult.self)
        _ = try client.call("dirty.start", DirtyParams(ioas: tracked.ioas), as: DirtyStatusResult.self)
        let second: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: owner))
        _ = try client.call("device.attach", DeviceAttachParams(owner: owner, device: "mock1", ioas: second.ioas), as: DeviceAttachResult.self)
        let viommu: VIOMMUCreateResult = try client.call("viommu.create", VIOMMUCreateParams(device: "mock1"))
        _ = try client.call("vdevice.create", VDeviceCreateParams(viommu: viommu.viommu, device: "mock1", virtualID: 7), as: VDeviceCreateResult.self)
        let (before, _) = try client.json("daemon.info")
        print("      before release: \(before["counts"] ?? nil)")

        let released = try client.release(owner)
        print("      owner.release: destroyed \(released.destroyed.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")), refunded \(released.refundedBytes) bytes")
        try expect(released.refundedBytes == 5 * Self.mib, "refunded \(released.refundedBytes) bytes, mapped 5 MiB")
        let owners: OwnerListResult = try client.call("owner.list", NoParams())
        try expect(owners.owners.isEmpty, "owners left: \(owners.owners.map(\.name))")
        let (info, _) = try client.json("daemon.info")
        guard let counts = info["counts"] else { throw CheckFailure(description: "daemon.info has no counts") }
        for key in ["owners", "ioas", "hwpts", "viommus", "vdevices", "mappings", "pinned_bytes", "devices_leased", "devices_attached", "dirty_tracking_ioas"] {
            try expect(counts[key]?.int64Value == 0, "after owner.release, \(key) = \(counts[key] ?? nil)")
        }
        // The kernel side: every device can be bound and attached again by another owner.
        defer { _ = try? client.release("vm-next") }
        _ = try client.call("owner.create", OwnerCreateParams(name: "vm-next"), as: OwnerInfo.self)
        let next: IOASCreateResult = try client.call("ioas.create", IOASCreateParams(owner: "vm-next"))
        for device in ["vfio0", "vfio1", "mock0", "mock1"] {
            _ = try client.call("device.attach", DeviceAttachParams(owner: "vm-next", device: device, ioas: next.ioas), as: DeviceAttachResult.self)
        }
    }

    // MARK: DMA helpers

    static func pattern(_ seed: UInt8) -> [UInt8] {
        (0..<256).map { UInt8(truncatingIfNeeded: $0) ^ seed }
    }

    /// RAM(iova) -> device buffer -> RAM(iova + 4 KiB): the bytes arrive intact.
    static func expectRoundTrip(_ edu: EduDevice, _ memory: GuestMemory, iova: UInt64, seed: UInt8) throws {
        let bytes = pattern(seed)
        memory.write(bytes, at: 0)
        memory.write([UInt8](repeating: 0, count: 256), at: 0x1000)
        try edu.dma(from: iova, to: EduDevice.bufferAddress, count: 256, toRAM: false)
        try edu.dma(from: EduDevice.bufferAddress, to: iova + 0x1000, count: 256, toRAM: true)
        try expect(memory.read(256, at: 0x1000) == bytes, "DMA through IOVA 0x\(String(iova, radix: 16)) did not land")
        print("      DMA through IOVA 0x\(String(iova, radix: 16)) landed")
    }

    /// The device writes its buffer to `iova + offset`, which it must not reach.
    static func expectBlocked(_ edu: EduDevice, _ memory: GuestMemory, iova: UInt64, offset: UInt64) throws {
        memory.write([UInt8](repeating: 0, count: 256), at: offset)
        try edu.dma(from: EduDevice.bufferAddress, to: iova + offset, count: 256, toRAM: true)
        try expect(memory.read(256, at: offset).allSatisfy { $0 == 0 }, "DMA to IOVA 0x\(String(iova + offset, radix: 16)) landed; the IOMMU should have blocked it")
        print("      DMA to IOVA 0x\(String(iova + offset, radix: 16)) blocked")
    }

    // MARK: sysfs

    static func resolve(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else { throw IommuError(.current, "realpath", detail: path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func linkBase(_ path: String) throws -> String {
        (try FileManager.default.destinationOfSymbolicLink(atPath: path) as NSString).lastPathComponent
    }
}
