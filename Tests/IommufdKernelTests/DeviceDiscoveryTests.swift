import Foundation
import IommufdCore
import Testing
@testable import IommufdKernel

/// A throwaway sysfs tree laid out as the kernel lays it out: real directories under
/// `devices/`, and `class/`, `device`, `iommu_group`, `iommu`, `driver` as relative symlinks.
final class FakeSysfs {
    let root: String
    private let files = FileManager.default

    init() throws {
        root = NSTemporaryDirectory() + "iommufd-sysfs-" + UUID().uuidString
        try files.createDirectory(atPath: root + "/class/vfio-dev", withIntermediateDirectories: true)
    }

    deinit { try? files.removeItem(atPath: root) }

    func mkdir(_ path: String) throws {
        try files.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
    }

    func link(_ path: String, to target: String) throws {
        try files.createSymbolicLink(atPath: root + "/" + path, withDestinationPath: target)
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
    }

    /// A PCI function at `devices/pci0000:00/<address>` with vendor/device files, a group
    /// link, a driver link, and an `iommu` link when `iommu` is given.
    func addPCIFunction(_ address: String, vendor: String, device: String, group: Int, iommu: String?, driver: String) throws {
        let dir = "devices/pci0000:00/" + address
        try mkdir(dir)
        try write(dir + "/vendor", "0x\(vendor)\n")
        try write(dir + "/device", "0x\(device)\n")
        try mkdir("kernel/iommu_groups/\(group)")
        try link(dir + "/iommu_group", to: "../../../kernel/iommu_groups/\(group)")
        try mkdir("bus/pci/drivers/" + driver)
        try link(dir + "/driver", to: "../../../bus/pci/drivers/" + driver)
        if let iommu {
            try mkdir("devices/virtual/iommu/" + iommu)
            try link(dir + "/iommu", to: "../../virtual/iommu/" + iommu)
        }
    }

    /// The VFIO cdev class entry of the device directory `deviceDir` (relative to `devices/`).
    func addVFIODev(_ name: String, deviceDir: String) throws {
        let node = "devices/" + deviceDir + "/vfio-dev/" + name
        try mkdir(node)
        // From <dev>/vfio-dev/vfioN, "../../../<basename>" is <dev> again, as the kernel writes it.
        try link(node + "/device", to: "../../../" + (deviceDir as NSString).lastPathComponent)
        try link("class/vfio-dev/" + name, to: "../../" + node)
    }

    /// An mdev `uuid` under the PCI function `parent`, of driver `driver`, in group `group`.
    func addMdev(_ uuid: String, parent: String, group: Int, driver: String) throws {
        let dir = "devices/pci0000:00/\(parent)/\(uuid)"
        try mkdir(dir)
        try mkdir("devices/pci0000:00/\(parent)/mdev_supported_types/i915-GVTg_V5_4")
        try link(dir + "/mdev_type", to: "../mdev_supported_types/i915-GVTg_V5_4")
        try mkdir("kernel/iommu_groups/\(group)")
        try link(dir + "/iommu_group", to: "../../../../kernel/iommu_groups/\(group)")
        try mkdir("bus/mdev/drivers/" + driver)
        try link(dir + "/driver", to: "../../../../bus/mdev/drivers/" + driver)
    }
}

@Suite struct DeviceDiscoveryTests {
    @Test func findsPCIDeviceMdevAndDeviceWithoutIOMMU() throws {
        let sysfs = try FakeSysfs()
        try sysfs.addPCIFunction("0000:00:02.0", vendor: "8086", device: "3e92", group: 1, iommu: "dmar0", driver: "vfio-pci")
        try sysfs.addPCIFunction("0000:00:03.0", vendor: "1234", device: "11e8", group: 7, iommu: nil, driver: "vfio-pci")
        try sysfs.addMdev("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", parent: "0000:00:02.0", group: 12, driver: "vfio_mdev")
        try sysfs.addVFIODev("vfio0", deviceDir: "pci0000:00/0000:00:02.0")
        try sysfs.addVFIODev("vfio10", deviceDir: "pci0000:00/0000:00:03.0")
        try sysfs.addVFIODev("vfio2", deviceDir: "pci0000:00/0000:00:02.0/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001")

        let devices = DeviceDiscovery(sysfsRoot: sysfs.root, devRoot: "/dev").devices()

        #expect(devices.map(\.name) == ["vfio0", "vfio2", "vfio10"])
        let pci = try #require(devices.first { $0.name == "vfio0" })
        #expect(pci == DeviceDescriptor(
            name: "vfio0", kind: .pci, cdevPath: "/dev/vfio/devices/vfio0", pciAddress: "0000:00:02.0",
            iommuGroup: 1, iommuInstance: "dmar0", driver: "vfio-pci", vendorDevice: "8086:3e92"))

        let mdev = try #require(devices.first { $0.name == "vfio2" })
        #expect(mdev.kind == .mdev)
        #expect(mdev.isMdev)
        #expect(mdev.pciAddress == "0000:00:02.0")
        #expect(mdev.iommuGroup == 12)
        #expect(mdev.iommuInstance == nil)
        #expect(mdev.driver == "vfio_mdev")
        #expect(mdev.vendorDevice == "8086:3e92")
        #expect(mdev.cdevPath == "/dev/vfio/devices/vfio2")

        let noIOMMU = try #require(devices.first { $0.name == "vfio10" })
        #expect(noIOMMU.kind == .pci)
        #expect(noIOMMU.iommuInstance == nil)
        #expect(noIOMMU.pciAddress == "0000:00:03.0")
        #expect(noIOMMU.iommuGroup == 7)
        #expect(noIOMMU.vendorDevice == "1234:11e8")
    }

    @Test func devRootIsAParameter() throws {
        let sysfs = try FakeSysfs()
        try sysfs.addPCIFunction("0000:01:00.0", vendor: "10de", device: "2330", group: 3, iommu: "smmu3.0x0000000009050000", driver: "vfio-pci")
        try sysfs.addVFIODev("vfio0", deviceDir: "pci0000:00/0000:01:00.0")
        let devices = DeviceDiscovery(sysfsRoot: sysfs.root, devRoot: "/tmp/dev").devices()
        #expect(devices.map(\.cdevPath) == ["/tmp/dev/vfio/devices/vfio0"])
        #expect(devices.map(\.iommuInstance) == ["smmu3.0x0000000009050000"])
    }

    @Test func missingClassDirectoryIsNoDevices() {
        let devices = DeviceDiscovery(sysfsRoot: "/nonexistent-\(UUID().uuidString)", devRoot: "/dev").devices()
        #expect(devices.isEmpty)
    }

    @Test func entryWithoutDeviceLinkIsSkipped() throws {
        let sysfs = try FakeSysfs()
        try sysfs.addPCIFunction("0000:00:04.0", vendor: "1af4", device: "1041", group: 2, iommu: "dmar1", driver: "vfio-pci")
        try sysfs.addVFIODev("vfio1", deviceDir: "pci0000:00/0000:00:04.0")
        try sysfs.mkdir("class/vfio-dev/vfio5")
        try sysfs.mkdir("class/vfio-dev/notvfio")
        let devices = DeviceDiscovery(sysfsRoot: sysfs.root, devRoot: "/dev").devices()
        #expect(devices.map(\.name) == ["vfio1"])
    }

    @Test func pciAddressShape() {
        #expect(DeviceDiscovery.looksLikePCIAddress("0000:00:02.0"))
        #expect(DeviceDiscovery.looksLikePCIAddress("0001:af:1f.7"))
        #expect(!DeviceDiscovery.looksLikePCIAddress("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"))
        #expect(!DeviceDiscovery.looksLikePCIAddress("pci0000:00"))
    }
}
