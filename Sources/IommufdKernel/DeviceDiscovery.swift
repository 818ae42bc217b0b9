import Foundation
import IommufdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Finds the VFIO device cdevs of a machine in sysfs.
///
/// The layout it reads (Linux >= 6.6, CONFIG_VFIO_DEVICE_CDEV):
///
///     /sys/class/vfio-dev/vfio0 -> ../../devices/pci0000:00/0000:00:02.0/vfio-dev/vfio0
///         device -> ../../../0000:00:02.0              the PCI function (basename: its address)
///     /sys/devices/pci0000:00/0000:00:02.0/
///         vendor, device                                "0x1234\n", "0x11e8\n"
///         iommu_group -> ../../../kernel/iommu_groups/5 the group number
///         iommu -> ../../virtual/iommu/dmar0            the IOMMU instance (absent: no IOMMU)
///         driver -> ../../../bus/pci/drivers/vfio-pci
///
/// A mediated device's `device` link leads to a directory with an `mdev_type` link, under its
/// parent (the physical function). An mdev does its DMA through iommufd "access" on an IOAS,
/// never through an IOMMU page table of its own, so it reports no IOMMU instance.
/// The roots are parameters so tests can point them at a fake tree.
public struct DeviceDiscovery: Sendable {
    public var sysfsRoot: String
    public var devRoot: String

    public init(sysfsRoot: String = "/sys", devRoot: String = "/dev") {
        self.sysfsRoot = sysfsRoot
        self.devRoot = devRoot
    }

    /// Every `vfioN` in `<sysfs>/class/vfio-dev`, sorted by N. A missing class directory (no
    /// VFIO cdev support, or no device bound to a VFIO driver) is an empty list; an entry that
    /// cannot be read is skipped rather than hiding the others.
    public func devices() -> [DeviceDescriptor] {
        let classDir = sysfsRoot + "/class/vfio-dev"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: classDir) else { return [] }
        return names
            .compactMap { name -> (Int, String)? in
                guard name.hasPrefix("vfio"), let n = Int(name.dropFirst(4)) else { return nil }
                return (n, name)
            }
            .sorted { $0.0 < $1.0 }
            .compactMap { describe(name: $0.1, entry: classDir + "/" + $0.1) }
    }

    /// The descriptor of one `class/vfio-dev/vfioN` entry, nil if it has no `device` link.
    func describe(name: String, entry: String) -> DeviceDescriptor? {
        guard let deviceDir = Self.resolve(entry + "/device") else { return nil }
        let isMdev = Self.isLink(deviceDir + "/mdev_type")
        // An mdev's parent directory is the physical device it is carved from.
        let physicalDir = isMdev ? (deviceDir as NSString).deletingLastPathComponent : deviceDir
        let physicalName = (physicalDir as NSString).lastPathComponent
        let isPCI = Self.looksLikePCIAddress(physicalName)
        return DeviceDescriptor(
            name: name,
            kind: isMdev ? .mdev : .pci,
            cdevPath: devRoot + "/vfio/devices/" + name,
            pciAddress: isPCI ? physicalName : nil,
            iommuGroup: Self.linkBasename(deviceDir + "/iommu_group").flatMap { Int($0) },
            iommuInstance: isMdev ? nil : Self.linkBasename(physicalDir + "/iommu"),
            driver: Self.linkBasename(deviceDir + "/driver"),
            vendorDevice: Self.vendorDevice(physicalDir)
        )
    }

    /// `"1234:11e8"` from the `vendor` and `device` files (`"0x1234\n"`).
    static func vendorDevice(_ dir: String) -> String? {
        func id(_ file: String) -> String? {
            guard let text = try? String(contentsOfFile: dir + "/" + file, encoding: .utf8) else { return nil }
            var value = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            if value.hasPrefix("0x") { value.removeFirst(2) }
            guard !value.isEmpty, value.allSatisfy(\.isHexDigit) else { return nil }
            return value
        }
        guard let vendor = id("vendor"), let device = id("device") else { return nil }
        return vendor + ":" + device
    }

    /// `dddd:bb:dd.f`.
    static func looksLikePCIAddress(_ name: String) -> Bool {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2 else { return false }
        let slot = parts[2].split(separator: ".", omittingEmptySubsequences: false)
        guard slot.count == 2, slot[0].count == 2, slot[1].count == 1 else { return false }
        return (parts[0] + parts[1] + slot[0] + slot[1]).allSatisfy(\.isHexDigit)
    }

    /// The canonical path `path` leads to, following every symlink; nil if it leads nowhere.
    static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    /// The last component of a symlink's target (`iommu -> ../../virtual/iommu/dmar0` →
    /// `"dmar0"`); nil when `path` is not a symlink.
    static func linkBasename(_ path: String) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { return nil }
        let base = (target as NSString).lastPathComponent
        return base.isEmpty ? nil : base
    }
}
