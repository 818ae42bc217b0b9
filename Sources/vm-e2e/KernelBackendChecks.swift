import IommufdCore
import IommufdKernel

/// The kernel backend against the test VM's real VT-d and edu devices: discovery, feature
/// probing, bind/attach with automatic domains, and DMA by a real device through IOAS mappings
/// — landing while mapped, blocked once unmapped, detached or replaced, and never crossing
/// from one IOAS to another.
struct KernelBackendChecks {
    let backend: KernelBackend
    let edus: [DeviceDescriptor]
    let run: CheckRunner

    /// IOVAs below the edu engine's 28-bit mask, clear of its buffer address.
    static let iova: UInt64 = 0x100000
    static let mib: UInt64 = 1 << 20

    init(run: CheckRunner) throws {
        self.run = run
        backend = try KernelBackend()
        edus = try backend.discoverDevices().filter { $0.vendorDevice == "1234:11e8" }
    }

    func runAll() {
        run.check("features") { try features() }
        run.check("discovery") { try discovery() }
        run.check("hw-info-vtd") { try hwInfo() }
        run.check("vtd-no-dirty-no-nesting") { try vtdNoDirtyNoNesting() }
        run.check("auto-domain-shared") { try autoDomainShared() }
        run.check("dma-map-file-then-unmap") { try dmaMapFileThenUnmap() }
        run.check("dma-user-address") { try dmaUserAddress() }
        run.check("dma-hugetlb-memfd") { try dmaHugeTLB() }
        run.check("dma-isolation-two-ioas") { try dmaIsolation() }
        run.check("dma-replace") { try dmaReplace() }
        run.check("dma-detach-blocks") { try dmaDetachBlocks() }
        run.check("msi-window-reserved") { try msiWindowReserved() }
        run.check("huge-pages-option") { try hugePagesOption() }
        run.check("unbind-then-rebind") { try unbindThenRebind() }
        run.check("vfio-pasid-on-a-device-without-pasid") { try vfioPASIDOnADeviceWithoutPASID() }  // pasid
    }

    // MARK: What the kernel reports

    func features() throws {
        print("      features: \(backend.features.map(\.rawValue).sorted().joined(separator: " "))")
        let needed: Set<Feature> = [.iommufd, .vfioDeviceCdev, .hwptAlloc, .hwInfo, .dirtyTracking, .ioasMapFile, .viommu, .vdevice, .selftest]
        try expect(needed.isSubset(of: backend.features), "Linux 7.3 with CONFIG_IOMMUFD_TEST lacks \(needed.subtracting(backend.features).map(\.rawValue).sorted())")
        try expect(backend.unexpectedProbeAnswers.isEmpty, "unexpected probe answers: \(backend.unexpectedProbeAnswers)")
    }

    func discovery() throws {
        for device in edus {
            print("      \(device.name): \(device.pciAddress ?? "-") group \(device.iommuGroup.map(String.init) ?? "-") \(device.iommuInstance ?? "-") \(device.driver ?? "-") \(device.cdevPath ?? "-")")
        }
        try expect(edus.count >= 2, "found \(edus.count) edu devices, the VM has 2")
        for device in edus {
            try expect(device.kind == .pci, "\(device.name) is \(device.kind), not pci")
            try expect(device.driver == "vfio-pci", "\(device.name) driver \(device.driver ?? "none")")
            try expect(device.iommuInstance == "dmar0", "\(device.name) is behind \(device.iommuInstance ?? "no IOMMU"), not dmar0")
            try expect(device.cdevPath == "/dev/vfio/devices/\(device.name)", "\(device.name) cdev \(device.cdevPath ?? "none")")
        }
        try expect(edus.first?.pciAddress == "0000:00:02.0", "first edu at \(edus.first?.pciAddress ?? "none"), QEMU puts it at 0000:00:02.0")
        try expect(Set(edus.compactMap(\.iommuGroup)).count == edus.count, "edu devices share IOMMU groups")
    }

    func hwInfo() throws {
        let device = try backend.bind(try edu(0))
        defer { try? backend.unbind(deviceID: device.id) }
        let info = try backend.hwInfo(deviceID: device.id)
        try expect(info.type == HWInfoType.intelVTd, "hw info type \(info.type), expected Intel VT-d (1)")
    }

    /// QEMU's VT-d has neither second-stage dirty tracking (SSADS) nor nesting: the kernel
    /// reports no dirty capability and refuses both HWPT kinds, so only the mock devices can
    /// exercise them here (the conformance suite's job).
    func vtdNoDirtyNoNesting() throws {
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        let device = try backend.bind(try edu(0))
        defer { try? backend.unbind(deviceID: device.id) }
        let info = try backend.hwInfo(deviceID: device.id)
        try expect(!info.capabilities.contains(.dirtyTracking), "emulated VT-d reports dirty tracking")
        try expectErrno(.EOPNOTSUPP, "dirty-tracking HWPT on emulated VT-d") {
            try backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .dirtyTracking)
        }
        try expectErrno(.EOPNOTSUPP, "nest-parent HWPT on emulated VT-d") {
            try backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
        }
    }

    // MARK: Attach and DMA

    /// Both edu devices sit behind dmar0: attached to one IOAS, they share one automatic HWPT.
    func autoDomainShared() throws {
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        let first = try backend.bind(try edu(0))
        defer { try? backend.unbind(deviceID: first.id) }
        let second = try backend.bind(try edu(1))
        defer { try? backend.unbind(deviceID: second.id) }
        let hwpt = try backend.attach(deviceID: first.id, to: ioas)
        try expect(hwpt != ioas, "attach to IOAS \(ioas) returned the IOAS, not an automatic HWPT")
        let hwpt2 = try backend.attach(deviceID: second.id, to: ioas)
        try expect(hwpt2 == hwpt, "second device got HWPT \(hwpt2), first got \(hwpt)")
        try expectErrno(.EBUSY, "destroying an IOAS with attached devices") { try backend.destroy(ioas) }
    }

    func dmaMapFileThenUnmap() throws {
        try withAttachedEdu(0) { device, ioas in
            let memory = try GuestMemory(size: Self.mib)
            _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
            try expectRoundTrip(device, memory, iova: Self.iova)
            let unmapped = try backend.unmap(ioas: ioas, iova: Self.iova, length: Self.mib)
            try expect(unmapped == Self.mib, "unmap returned \(unmapped) bytes, mapped \(Self.mib)")
            try expectBlocked(device, memory, iova: Self.iova, offset: 0x2000)
        }
    }

    func dmaUserAddress() throws {
        try withAttachedEdu(0) { device, ioas in
            let memory = try GuestMemory(size: Self.mib)
            let iova = try backend.map(ioas: ioas, source: .userAddress(UInt64(UInt(bitPattern: memory.bytes))), length: Self.mib, iova: 0, flags: .readWrite)
            try expect(iova + Self.mib <= 1 << 28, "kernel chose IOVA 0x\(String(iova, radix: 16)), beyond the edu's 28-bit reach")
            try expectRoundTrip(device, memory, iova: iova)
        }
    }

    /// 2 MiB hugetlb memfd (the VM boots with hugepages=256) through IOAS_MAP_FILE.
    func dmaHugeTLB() throws {
        try withAttachedEdu(0) { device, ioas in
            let size: UInt64 = 2 * Self.mib
            let memory = try GuestMemory(size: size, flags: GuestMemory.hugeTLB | GuestMemory.huge2MB)
            _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: size, iova: 2 * Self.mib, flags: [.fixedIOVA, .readWrite])
            try expectRoundTrip(device, memory, iova: 2 * Self.mib)
        }
    }

    /// Two owners' worth: each edu device in its own IOAS, the same IOVA backed by different
    /// memfds. Each device's writes land in its own memory only; an IOVA mapped only in the
    /// other IOAS is unreachable.
    func dmaIsolation() throws {
        try withAttachedEdu(0) { deviceA, ioasA in
            try withAttachedEdu(1) { deviceB, ioasB in
                let memoryA = try GuestMemory(size: Self.mib)
                let memoryB = try GuestMemory(size: 2 * Self.mib)
                _ = try backend.map(ioas: ioasA, source: .file(fd: memoryA.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
                _ = try backend.map(ioas: ioasB, source: .file(fd: memoryB.fd, offset: 0), length: 2 * Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
                try expectRoundTrip(deviceA, memoryA, iova: Self.iova, seed: 0x11)
                try expect(memoryB.read(256, at: 0x1000).allSatisfy { $0 == 0 }, "device A's DMA reached IOAS B's memory")
                try expectRoundTrip(deviceB, memoryB, iova: Self.iova, seed: 0x22)
                try expect(memoryA.read(256, at: 0x1000) == pattern(seed: 0x11), "device B's DMA changed IOAS A's memory")
                // IOAS B maps [iova + 1 MiB, +1 MiB); IOAS A does not: device A cannot get there.
                try expectBlocked(deviceA, memoryB, iova: Self.iova, offset: Self.mib + 0x3000)
            }
        }
    }

    /// Replacing the page table moves the device's DMA to the new IOAS's memory.
    func dmaReplace() throws {
        try withAttachedEdu(0) { device, ioas in
            let memory = try GuestMemory(size: Self.mib)
            _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
            let other = try backend.allocIOAS()
            defer { try? backend.destroy(other) }
            let otherMemory = try GuestMemory(size: Self.mib)
            _ = try backend.map(ioas: other, source: .file(fd: otherMemory.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
            _ = try backend.replace(deviceID: device.deviceID, with: other)
            try expectRoundTrip(device, otherMemory, iova: Self.iova)
            try expect(memory.read(256, at: 0x1000).allSatisfy { $0 == 0 }, "after replace, DMA still reached the old IOAS's memory")
            _ = try backend.replace(deviceID: device.deviceID, with: ioas)  // so the cleanup can destroy `other`
        }
    }

    func dmaDetachBlocks() throws {
        try withAttachedEdu(0) { device, ioas in
            let memory = try GuestMemory(size: Self.mib)
            _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: Self.iova, flags: [.fixedIOVA, .readWrite])
            try expectRoundTrip(device, memory, iova: Self.iova)
            try backend.detach(deviceID: device.deviceID)
            try expectBlocked(device, memory, iova: Self.iova, offset: 0x2000)
        }
    }

    /// VT-d reserves the MSI window 0xfee00000-0xfeefffff for its devices: an attached IOAS
    /// reports it as a hole, refuses to map there, and refuses an attach that would cover an
    /// existing mapping there.
    func msiWindowReserved() throws {
        let msi: UInt64 = 0xfee0_0000
        let memory = try GuestMemory(size: Self.mib)
        try withAttachedEdu(0) { _, ioas in
            let ranges = try backend.iovaRanges(ioas: ioas, capacity: 16).ranges
            try expect(!ranges.contains { $0.start <= msi && msi <= $0.last }, "usable ranges \(ranges) include the MSI window")
            try expectErrno(.EINVAL, "mapping at the MSI window") {
                try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: msi, flags: [.fixedIOVA, .readWrite])
            }
        }
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        _ = try backend.map(ioas: ioas, source: .file(fd: memory.fd, offset: 0), length: Self.mib, iova: msi, flags: [.fixedIOVA, .readWrite])
        let device = try backend.bind(try edu(0))
        defer { try? backend.unbind(deviceID: device.id) }
        try expectErrno(.EADDRINUSE, "attaching a VT-d device to an IOAS mapped over the MSI window") {
            try backend.attach(deviceID: device.id, to: ioas)
        }
    }

    func hugePagesOption() throws {
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        try expect(try backend.getOption(.hugePages, objectID: ioas) == 1, "a new IOAS does not default to huge pages on")
        try backend.setOption(.hugePages, objectID: ioas, value: 0)
        try expect(try backend.getOption(.hugePages, objectID: ioas) == 0, "huge pages still on after setting 0")
        try expectErrno(.EINVAL, "huge pages option 2") { try backend.setOption(.hugePages, objectID: ioas, value: 2) }
    }

    /// Unbinding closes the cdev and frees the device for the next owner.
    func unbindThenRebind() throws {
        let device = try backend.bind(try edu(1))
        try backend.unbind(deviceID: device.id)
        try expectErrno(.ENOENT, "unbinding twice") { try backend.unbind(deviceID: device.id) }
        let again = try backend.bind(try edu(1))
        try backend.unbind(deviceID: again.id)
    }

    // MARK: Helpers

    struct AttachedEdu {
        let deviceID: ObjectID
        let edu: EduDevice
    }

    func edu(_ index: Int) throws -> DeviceDescriptor {
        guard index < edus.count else { throw CheckFailure(description: "edu device \(index) not found (\(edus.count) discovered)") }
        return edus[index]
    }

    /// Binds edu `index`, attaches it to a fresh IOAS, runs `body`, then unbinds and destroys.
    func withAttachedEdu(_ index: Int, _ body: (AttachedEdu, ObjectID) throws -> Void) throws {
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        let bound = try backend.bind(try edu(index))
        defer { try? backend.unbind(deviceID: bound.id) }
        guard let fd = bound.fd else { throw CheckFailure(description: "bound edu device has no fd") }
        _ = try backend.attach(deviceID: bound.id, to: ioas)
        try body(AttachedEdu(deviceID: bound.id, edu: try EduDevice(fd: fd)), ioas)
    }

    func pattern(seed: UInt8) -> [UInt8] {
        (0..<256).map { UInt8(truncatingIfNeeded: $0) ^ seed }
    }

    /// RAM(iova) -> device buffer -> RAM(iova + 4 KiB): the bytes arrive intact.
    func expectRoundTrip(_ device: AttachedEdu, _ memory: GuestMemory, iova: UInt64, seed: UInt8 = 0x5a) throws {
        let bytes = pattern(seed: seed)
        memory.write(bytes, at: 0)
        memory.write([UInt8](repeating: 0, count: 256), at: 0x1000)
        try device.edu.dma(from: iova, to: EduDevice.bufferAddress, count: 256, toRAM: false)
        try device.edu.dma(from: EduDevice.bufferAddress, to: iova + 0x1000, count: 256, toRAM: true)
        try expect(memory.read(256, at: 0x1000) == bytes, "DMA through IOVA 0x\(String(iova, radix: 16)) did not land")
    }

    /// The device writes its buffer to `iova + offset`, which it must not reach: `memory` at
    /// `offset` stays zero.
    func expectBlocked(_ device: AttachedEdu, _ memory: GuestMemory, iova: UInt64, offset: UInt64) throws {
        memory.write([UInt8](repeating: 0, count: 256), at: offset)
        try device.edu.dma(from: EduDevice.bufferAddress, to: iova + offset, count: 256, toRAM: true)
        try expect(memory.read(256, at: offset).allSatisfy { $0 == 0 }, "DMA to IOVA 0x\(String(iova + offset, radix: 16)) landed; the IOMMU should have blocked it")
    }
}
