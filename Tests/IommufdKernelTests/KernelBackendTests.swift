import CIommufd
import Foundation
import IommufdCore
import Testing
@testable import IommufdKernel

/// A selftest kernel behind the fake syscall layer: allocates IDs, remembers the selftest
/// commands it received.
final class FakeSelftestKernel: @unchecked Sendable {
    let kernel: FakeKernel
    private let state = LockedBox((nextID: UInt32(1), commands: [ifd_test_cmd](), destroyed: [UInt32](), bitmaps: [[UInt8]]()))

    init(selftest: Bool = true) {
        kernel = FakeKernel(known: selftest ? FakeKernel.iommufdRequests.union([IFD_IOMMU_TEST_CMD]) : FakeKernel.iommufdRequests)
        kernel.setRespond { [state] request, argument in
            func allocate() -> UInt32 {
                var id: UInt32 = 0
                state.mutate { id = $0.nextID; $0.nextID += 1 }
                return id
            }
            switch request {
            case IFD_IOMMU_IOAS_ALLOC:
                withArgument(argument, as: ifd_ioas_alloc.self) { $0.out_ioas_id = allocate() }
            case IFD_IOMMU_DESTROY:
                withArgument(argument, as: ifd_destroy.self) { cmd in state.mutate { $0.destroyed.append(cmd.id) } }
            case IFD_IOMMU_TEST_CMD:
                withArgument(argument, as: ifd_test_cmd.self) { cmd in
                    state.mutate { $0.commands.append(cmd) }
                    switch Int(cmd.op) {
                    case Int(IFD_TEST_OP_MOCK_DOMAIN_FLAGS):
                        cmd.mock_domain_flags.out_stdev_id = allocate()
                        cmd.mock_domain_flags.out_hwpt_id = allocate()
                        cmd.mock_domain_flags.out_idev_id = allocate()
                    case Int(IFD_TEST_OP_MOCK_DOMAIN_REPLACE):
                        cmd.mock_domain_replace.pt_id = 1000 + cmd.mock_domain_replace.pt_id  // "auto-domain"
                    case Int(IFD_TEST_OP_DIRTY):
                        let pages = Int(cmd.dirty.length / cmd.dirty.page_size)
                        let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(cmd.dirty.uptr)), count: (pages + 7) / 8)
                        state.mutate { $0.bitmaps.append(Array(bytes)) }
                        cmd.dirty.out_nr_dirty = UInt64(pages)
                    default: break
                    }
                }
            default: break
            }
            return nil
        }
    }

    var commands: [ifd_test_cmd] { state.value.commands }
    var destroyed: [UInt32] { state.value.destroyed }
    var bitmaps: [[UInt8]] { state.value.bitmaps }
}

@Suite struct KernelBackendTests {
    static let noRoot = "/nonexistent-\(UUID().uuidString)"

    static func options(mocks: [MockDeviceSpec] = []) -> KernelBackendOptions {
        KernelBackendOptions(iommuPath: "/dev/iommu", sysfsRoot: noRoot, devRoot: noRoot, mockDevices: mocks)
    }

    @Test func defaultOptions() {
        let options = KernelBackendOptions()
        #expect(options.iommuPath == "/dev/iommu")
        #expect(options.sysfsRoot == "/sys")
        #expect(options.devRoot == "/dev")
        #expect(options.mockDevices.isEmpty)
    }

    @Test func mockDevicesWithoutSelftestKernelIsAClearError() {
        let fake = FakeSelftestKernel(selftest: false)
        let error = #expect(throws: IommuError.self) {
            try KernelBackend(options: Self.options(mocks: [MockDeviceSpec(name: "mock0")]), syscalls: fake.kernel.syscalls)
        }
        #expect(error?.errno == .ENOTTY)
        #expect(error?.operation == "IOMMU_TEST_CMD")
        #expect(error?.detail?.contains("CONFIG_IOMMUFD_TEST") == true)
    }

    @Test func mockDevicesAreOnlyListedWhenConfigured() throws {
        let fake = FakeSelftestKernel()
        let plain = try KernelBackend(options: Self.options(), syscalls: fake.kernel.syscalls)
        #expect(plain.features.contains(.selftest))
        #expect(try plain.discoverDevices().isEmpty)
        let error = try #require(throws: IommuError.self) {
            try plain.addReservedIOVA(ioas: 1, range: IOVARange(start: 0x1000, length: 0x1000))
        }
        #expect(error.errno == .ENOTTY)

        let mocked = try KernelBackend(
            options: Self.options(mocks: [MockDeviceSpec(name: "mock0"), MockDeviceSpec(name: "mock1", noDirty: true)]),
            syscalls: fake.kernel.syscalls)
        #expect(try mocked.discoverDevices() == [
            DeviceDescriptor(name: "mock0", kind: .mock, iommuInstance: "mock-iommu"),
            DeviceDescriptor(name: "mock1", kind: .mock, iommuInstance: "mock-iommu"),
        ])
    }

    @Test func mockLifecycleUsesAParkingIOAS() throws {
        let fake = FakeSelftestKernel()
        let backend = try KernelBackend(
            options: Self.options(mocks: [MockDeviceSpec(name: "mock0", noDirty: true)]), syscalls: fake.kernel.syscalls)
        let descriptor = try #require(try backend.discoverDevices().first)

        let bound = try backend.bind(descriptor)
        // IOAS 1 is the parking IOAS; the mock got stdev 2, hwpt 3, idev 4.
        #expect(bound.id == 4)
        #expect(bound.fd == nil)
        let create = try #require(fake.commands.last)
        #expect(Int(create.op) == Int(IFD_TEST_OP_MOCK_DOMAIN_FLAGS))
        #expect(create.id == 1)
        #expect(create.mock_domain_flags.dev_flags == UInt32(IFD_MOCK_FLAGS_DEVICE_NO_DIRTY))

        let again = try #require(throws: IommuError.self) { try backend.bind(descriptor) }
        #expect(again.errno == .EBUSY)

        #expect(try backend.attach(deviceID: bound.id, to: 42) == 1042)
        let replace = try #require(fake.commands.last)
        #expect(Int(replace.op) == Int(IFD_TEST_OP_MOCK_DOMAIN_REPLACE))
        #expect(replace.id == 2)
        #expect(replace.mock_domain_replace.pt_id == 42)

        try backend.detach(deviceID: bound.id)
        #expect(fake.commands.last?.mock_domain_replace.pt_id == 1, "detach parks the device")

        let parkingDestroy = try #require(throws: IommuError.self) { try backend.destroy(1) }
        #expect(parkingDestroy.errno == .ENOENT)

        try backend.unbind(deviceID: bound.id)
        #expect(fake.destroyed == [2], "unbind destroys the selftest object")
        let gone = try #require(throws: IommuError.self) { try backend.attach(deviceID: bound.id, to: 42) }
        #expect(gone.errno == .ENOENT)
    }

    @Test func mockDeviceIsTakenBackAfterARestart() throws {
        let fake = FakeSelftestKernel()
        let options = Self.options(mocks: [MockDeviceSpec(name: "mock0")])
        let first = try KernelBackend(options: options, syscalls: fake.kernel.syscalls)
        let descriptor = try #require(try first.discoverDevices().first)
        let bound = try first.bind(descriptor)
        // IOAS 1 is the parking IOAS; the mock got stdev 2, hwpt 3, idev 4.
        let objects = first.restartObjects(ofDevice: bound.id)
        #expect(objects == [KernelBackend.selftestObjectName: 2, KernelBackend.parkingIOASName: 1])
        #expect(first.restartObjects(ofDevice: 99).isEmpty)

        // A new daemon over the same iommufd.
        let second = try KernelBackend(options: options, syscalls: fake.kernel.syscalls, adoptingIommufd: first.iommufd.fd)
        let missing = try #require(throws: IommuError.self) {
            try second.adoptBoundDevice(descriptor, id: bound.id, fd: nil, objects: [:])
        }
        #expect(missing.errno == .ENOENT)
        #expect(missing.detail?.contains("does not record") == true)

        let adopted = try second.adoptBoundDevice(descriptor, id: bound.id, fd: nil, objects: objects)
        #expect(adopted == BoundDevice(descriptor: descriptor, id: 4, fd: nil))
        let check = try #require(fake.commands.last)
        #expect(Int(check.op) == Int(IFD_TEST_OP_PASID_CHECK_HWPT))
        #expect(check.id == 2)
        #expect(check.pasid_check.hwpt_id == 0)
        #expect(fake.kernel.requests.last == IFD_IOMMU_OPTION, "the parking IOAS is checked")
        #expect(second.restartObjects(ofDevice: 4) == objects)

        let twice = try #require(throws: IommuError.self) {
            try second.adoptBoundDevice(descriptor, id: bound.id, fd: nil, objects: objects)
        }
        #expect(twice.errno == .EBUSY)

        // Detach goes back to the journaled parking IOAS (no new one), unbind destroys the stdev.
        let allocations = fake.kernel.requests.filter { $0 == IFD_IOMMU_IOAS_ALLOC }.count
        try second.detach(deviceID: 4)
        #expect(Int(fake.commands.last?.op ?? 0) == Int(IFD_TEST_OP_MOCK_DOMAIN_REPLACE))
        #expect(fake.commands.last?.mock_domain_replace.pt_id == 1)
        #expect(fake.kernel.requests.filter { $0 == IFD_IOMMU_IOAS_ALLOC }.count == allocations)
        try second.unbind(deviceID: 4)
        #expect(fake.destroyed == [2])
        #expect(second.restartObjects(ofDevice: 4).isEmpty)
    }

    @Test func mockDeviceThatIsGoneOrUnconfiguredIsNotTakenBack() throws {
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests.union([IFD_IOMMU_TEST_CMD])) { request, argument in
            guard request == IFD_IOMMU_TEST_CMD else { return nil }
            let op = argument.load(fromByteOffset: 4, as: UInt32.self)
            return op == UInt32(IFD_TEST_OP_PASID_CHECK_HWPT) ? .ENOENT : nil
        }
        let backend = try KernelBackend(options: Self.options(mocks: [MockDeviceSpec(name: "mock0")]), syscalls: kernel.syscalls)
        let objects = [KernelBackend.selftestObjectName: ObjectID(2), KernelBackend.parkingIOASName: 1]
        let mock0 = DeviceDescriptor(name: "mock0", kind: .mock, iommuInstance: "mock-iommu")
        let gone = try #require(throws: IommuError.self) {
            try backend.adoptBoundDevice(mock0, id: 4, fd: nil, objects: objects)
        }
        #expect(gone.errno == .ENOENT)
        #expect(gone.operation == "IOMMU_TEST_OP_PASID_CHECK_HWPT")
        let unknown = try #require(throws: IommuError.self) { try backend.detach(deviceID: 4) }
        #expect(unknown.errno == .ENOENT)

        let mock1 = DeviceDescriptor(name: "mock1", kind: .mock, iommuInstance: "mock-iommu")
        let unconfigured = try #require(throws: IommuError.self) {
            try backend.adoptBoundDevice(mock1, id: 4, fd: nil, objects: objects)
        }
        #expect(unconfigured.errno == .ENODEV)
    }

    @Test func simulatedWriteSetsEveryPage() throws {
        let fake = FakeSelftestKernel()
        let backend = try KernelBackend(options: Self.options(mocks: [MockDeviceSpec(name: "mock0")]), syscalls: fake.kernel.syscalls)
        try backend.simulateDeviceWrite(hwpt: 9, iova: 0x100_0000, length: 10 * 2048, pageSize: 2048)
        let command = try #require(fake.commands.last)
        #expect(Int(command.op) == Int(IFD_TEST_OP_DIRTY))
        #expect(command.id == 9)
        #expect(fake.bitmaps == [[0xff, 0x03]])
    }

    @Test func addReservedPassesStartAndLength() throws {
        let fake = FakeSelftestKernel()
        let backend = try KernelBackend(options: Self.options(mocks: [MockDeviceSpec(name: "mock0")]), syscalls: fake.kernel.syscalls)
        try backend.addReservedIOVA(ioas: 5, range: IOVARange(start: 0x2000, last: 0x2fff))
        let command = try #require(fake.commands.last)
        #expect(Int(command.op) == Int(IFD_TEST_OP_ADD_RESERVED))
        #expect(command.id == 5)
        #expect(command.add_reserved.start == 0x2000)
        #expect(command.add_reserved.length == 0x1000)
    }

    @Test func mapFileWithoutKernelSupportIsENOTTY() throws {
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests.subtracting([IFD_IOMMU_IOAS_MAP_FILE]))
        let backend = try KernelBackend(options: Self.options(), syscalls: kernel.syscalls)
        #expect(!backend.features.contains(.ioasMapFile))
        let error = try #require(throws: IommuError.self) {
            try backend.map(ioas: 1, source: .file(fd: 5, offset: 0), length: 4096, iova: 0, flags: .readWrite)
        }
        #expect(error == IommuError(.ENOTTY, "IOMMU_IOAS_MAP_FILE", detail: "needs Linux 6.13"))
    }

    @Test func vfioDeviceBindAttachDetachUnbind() throws {
        let seenIommufd = LockedBox<Int32>(-1)
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests.union([
            IFD_VFIO_DEVICE_BIND_IOMMUFD, IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT,
        ])) { request, argument in
            switch request {
            case IFD_VFIO_DEVICE_BIND_IOMMUFD:
                withArgument(argument, as: ifd_vfio_device_bind_iommufd.self) { cmd in
                    seenIommufd.mutate { $0 = cmd.iommufd }
                    cmd.out_devid = 11
                }
            case IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT:
                withArgument(argument, as: ifd_vfio_device_attach_iommufd_pt.self) { $0.pt_id = 12 }
            default: break
            }
            return nil
        }
        let backend = try KernelBackend(options: Self.options(), syscalls: kernel.syscalls)
        let descriptor = DeviceDescriptor(name: "vfio3", kind: .pci, cdevPath: "/dev/vfio/devices/vfio3")
        let bound = try backend.bind(descriptor)
        #expect(bound.id == 11)
        #expect(kernel.opened == ["/dev/iommu", "/dev/vfio/devices/vfio3"])
        #expect(seenIommufd.value == backend.iommufd.fd)
        let deviceFD = try #require(bound.fd)

        #expect(try backend.attach(deviceID: 11, to: 2) == 12, "attach returns the auto-domain the kernel wrote back")
        try backend.detach(deviceID: 11)
        #expect(kernel.requests.suffix(3) == [
            IFD_VFIO_DEVICE_BIND_IOMMUFD, IFD_VFIO_DEVICE_ATTACH_IOMMUFD_PT, IFD_VFIO_DEVICE_DETACH_IOMMUFD_PT,
        ])

        try backend.unbind(deviceID: 11)
        #expect(kernel.closed == [deviceFD], "unbind closes the cdev")
        let error = try #require(throws: IommuError.self) { try backend.unbind(deviceID: 11) }
        #expect(error.errno == .ENOENT)
    }

    @Test func failedBindClosesTheCdev() throws {
        let kernel = FakeKernel(known: FakeKernel.iommufdRequests.union([IFD_VFIO_DEVICE_BIND_IOMMUFD])) { _, _ in .EBUSY }
        let backend = try KernelBackend(options: Self.options(), syscalls: kernel.syscalls)
        let error = try #require(throws: IommuError.self) {
            try backend.bind(DeviceDescriptor(name: "vfio0", kind: .pci, cdevPath: "/dev/vfio/devices/vfio0"))
        }
        #expect(error.errno == .EBUSY)
        #expect(error.operation == "VFIO_DEVICE_BIND_IOMMUFD")
        #expect(kernel.closed.count == 1)
    }
}
