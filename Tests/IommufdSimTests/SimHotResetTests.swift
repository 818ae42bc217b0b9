import IommufdCore
import Testing

@testable import IommufdSim

/// The simulator's model of a PCI hot reset (SimBackend+HotReset.swift): a reset covers every
/// device on the same `segment:bus`, reports which of them are bound to this iommufd, and runs
/// only when all are (the kernel's rule for a cdev with an empty group-fd array).
@Suite("Simulator: PCI hot reset")
struct SimHotResetTests {
    static let topology = SimTopology(
        iommus: [.init(name: "vtd0", dirtyTracking: false, nesting: false)],
        devices: [
            .init(name: "a", iommu: "vtd0", pciAddress: "0000:00:02.0"),
            .init(name: "b", iommu: "vtd0", pciAddress: "0000:00:03.0"),
            .init(name: "c", iommu: "vtd0", pciAddress: "0000:01:00.0"),
            .init(name: "nobus", iommu: "vtd0"),
            .init(name: "mdev", iommu: nil),
        ])

    @Test func resetCoversTheBusAndNeedsEveryDeviceOnItBound() throws {
        let backend = try SimBackend(topology: Self.topology)
        let devices = try backend.discoverDevices()
        func named(_ n: String) throws -> DeviceDescriptor { try #require(devices.first { $0.name == n }) }
        let a = try backend.bind(named("a"))
        #expect(try backend.hotResetTargets(deviceID: a.id) == [
            HotResetTarget(pciAddress: "0000:00:02.0", deviceID: a.id),
            HotResetTarget(pciAddress: "0000:00:03.0", deviceID: nil),
        ])
        let unowned = #expect(throws: IommuError.self) { try backend.hotReset(deviceID: a.id) }
        #expect(unowned?.errno == .EPERM && unowned?.operation == "VFIO_DEVICE_PCI_HOT_RESET")
        #expect(backend.hotResetCount == 0)

        let b = try backend.bind(named("b"))
        #expect(try backend.hotResetTargets(deviceID: a.id).map(\.deviceID) == [a.id, b.id])
        try backend.hotReset(deviceID: b.id)
        #expect(backend.hotResetCount == 1)
        // Another bus is another reset: c alone.
        let c = try backend.bind(named("c"))
        #expect(try backend.hotResetTargets(deviceID: c.id) == [HotResetTarget(pciAddress: "0000:01:00.0", deviceID: c.id)])
        try backend.hotReset(deviceID: c.id)
        #expect(backend.hotResetCount == 2)
        // Unbinding b makes bus 00 unowned again.
        try backend.unbind(deviceID: b.id)
        #expect(throws: IommuError.self) { try backend.hotReset(deviceID: a.id) }
    }

    @Test func noPCIAddressOrNoPCIAtAll() throws {
        let backend = try SimBackend(topology: Self.topology)
        let devices = try backend.discoverDevices()
        let nobus = try backend.bind(try #require(devices.first { $0.name == "nobus" }))
        let mdev = try backend.bind(try #require(devices.first { $0.name == "mdev" }))
        #expect((#expect(throws: IommuError.self) { try backend.hotResetTargets(deviceID: nobus.id) })?.errno == .ENODEV)
        #expect((#expect(throws: IommuError.self) { try backend.hotReset(deviceID: mdev.id) })?.errno == .ENOTTY)
        #expect((#expect(throws: IommuError.self) { try backend.hotReset(deviceID: 999) })?.errno == .ENOENT)
    }

    @Test func kernelAddressFormat() {
        #expect(HotResetTarget.address(segment: 0, bus: 0x3a, devfn: (0x1f << 3) | 7) == "0000:3a:1f.7")
        #expect(HotResetTarget.address(segment: 0x10, bus: 1, devfn: 0) == "0010:01:00.0")
    }
}
