import IommufdContract
import IommufdCore

/// The words iommuctl uses for flags, policies and capabilities, so that output reads as
/// sentences rather than as field names.
public enum Words {
    public static func yesNo(_ b: Bool) -> String { b ? "yes" : "no" }

    public static func onOff(_ b: Bool) -> String { b ? "on" : "off" }

    /// `rw`, `r-`, `-w`: the IOMMU_IOAS_MAP_READABLE / _WRITEABLE of a mapping.
    public static func permissions(readable: Bool, writeable: Bool) -> String {
        (readable ? "r" : "-") + (writeable ? "w" : "-")
    }

    public static func dirtyPolicy(_ p: DirtyPolicy) -> String {
        switch p {
        case .off: "off"
        case .preferred: "preferred (track where the IOMMU can)"
        case .required: "required (refuse devices that cannot be tracked)"
        }
    }

    /// One line summary of an owner's policy.
    public static func policy(_ p: OwnerPolicy) -> String {
        [
            "dirty \(p.dirty.rawValue)",
            "huge pages \(onOff(p.hugePages))",
            p.tolerateMissing ? "unmap of a hole succeeds" : "unmap of a hole fails",
        ].joined(separator: ", ")
    }

    /// `enum iommu_hw_info_type` by name.
    public static func hwInfoType(_ type: UInt32) -> String {
        switch type {
        case HWInfoType.none: "none"
        case HWInfoType.intelVTd: "Intel VT-d"
        case HWInfoType.armSMMUv3: "ARM SMMUv3"
        case HWInfoType.tegra241CMDQV: "NVIDIA Tegra241 CMDQV"
        case HWInfoType.amd: "AMD-Vi"
        case HWInfoType.selftest: "selftest mock"
        default: "type \(Units.hex(UInt64(type)))"
        }
    }

    /// `enum iommu_viommu_type` by name.
    public static func viommuType(_ type: UInt32) -> String {
        switch type {
        case VIOMMUType.default: "default"
        case VIOMMUType.armSMMUv3: "ARM SMMUv3"
        case VIOMMUType.tegra241CMDQV: "NVIDIA Tegra241 CMDQV"
        case VIOMMUType.selftest: "selftest mock"
        default: "type \(Units.hex(UInt64(type)))"
        }
    }

    /// What an IOMMU can do for a device: `dirty-tracking, PASID (VT-d)`.
    public static func capabilities(_ c: DeviceCapabilities) -> String {
        var words: [String] = []
        if c.dirtyTracking { words.append("dirty-tracking") }
        if c.pasid { words.append("PASID") }
        if words.isEmpty { words.append("none") }
        return words.joined(separator: ", ") + " (\(hwInfoType(c.hwInfoType)))"
    }

    /// `20 bits (exec, priv)`, or `no`.
    public static func pasid(_ c: DeviceCapabilities) -> String {
        guard let width = c.pasidWidth ?? (c.pasid ? nil : 0), width > 0 else { return c.pasid ? "yes" : "no" }
        var extras: [String] = []
        if c.pasidExec == true { extras.append("exec") }
        if c.pasidPriv == true { extras.append("priv") }
        return "\(width) bits" + (extras.isEmpty ? "" : " (\(extras.joined(separator: ", ")))")
    }

    /// The IOMMU driver's vendor data as `key, value` lines: the type and length, then the
    /// fields of its struct in hex.
    public static func vendorData(_ v: DeviceVendorInfo?) -> [(String, String)] {
        guard let v else { return [("vendor data", "none")] }
        var lines = [("vendor data", "\(v.type), \(v.dataLength) bytes")]
        func flags(_ f: UInt32) { if f != 0 { lines.append(("flags", Units.hex(UInt64(f)))) } }
        if let x = v.intelVTd {
            flags(x.flags)
            lines.append(("cap_reg", Units.hex(x.capReg)))
            lines.append(("ecap_reg", Units.hex(x.ecapReg)))
        } else if let x = v.armSMMUv3 {
            flags(x.flags)
            for (i, r) in x.idr.enumerated() { lines.append(("idr\(i)", Units.hex(UInt64(r)))) }
            lines.append(("iidr", Units.hex(UInt64(x.iidr))))
            lines.append(("aidr", Units.hex(UInt64(x.aidr))))
        } else if let x = v.tegra241CMDQV {
            flags(x.flags)
            lines.append(("version", String(x.version)))
            lines.append(("log2 vcmdqs", String(x.log2vcmdqs)))
            lines.append(("log2 vsids", String(x.log2vsids)))
        } else if let x = v.amd {
            lines.append(("efr", Units.hex(x.efr)))
            lines.append(("efr2", Units.hex(x.efr2)))
        } else if let x = v.selftest {
            flags(x.flags)
            lines.append(("test_reg", Units.hex(UInt64(x.testReg))))
        } else if !v.data.isEmpty {
            lines.append(("data", v.data))
        }
        return lines
    }

    /// A feature name as the daemon reports it (`dirtyTracking`, `dirty_tracking`) in words.
    public static func feature(_ name: String) -> String {
        let known: [String: String] = [
            "iommufd": "iommufd",
            "vfioDeviceCdev": "VFIO cdev",
            "hwptAlloc": "HWPT alloc",
            "hwInfo": "HW info",
            "dirtyTracking": "dirty tracking",
            "hwptInvalidate": "HWPT invalidate",
            "faultQueue": "fault queue",
            "ioasMapFile": "map file",
            "viommu": "vIOMMU",
            "vdevice": "vDevice",
            "ioasChangeProcess": "change process",
            "veventq": "vEVENTQ",
            "hwQueue": "HW queue",
            "dmabufMap": "dma-buf map (P2P)",
            "selftest": "selftest mocks",
            "pasid": "PASID attach",
        ]
        let camel = camelCase(name)
        if let word = known[camel] { return word }
        return splitWords(name)
    }

    /// `dirty_tracking` / `dirty-tracking` → `dirtyTracking`.
    static func camelCase(_ name: String) -> String {
        var out = ""
        var upperNext = false
        for c in name {
            if c == "_" || c == "-" { upperNext = true; continue }
            out += upperNext ? c.uppercased() : String(c)
            upperNext = false
        }
        return out
    }

    /// `dirtyTracking`, `dirty_tracking` → `dirty tracking`.
    public static func splitWords(_ name: String) -> String {
        var out = ""
        for c in name {
            if c == "_" || c == "-" {
                out += " "
            } else if c.isUppercase, let last = out.last, last.isLowercase {
                out += " " + c.lowercased()
            } else {
                out += String(c)
            }
        }
        return out
    }

    /// `IOAS 3`, `HWPT 5`: how objects are named in sentences.
    public static func ids(_ ids: [ObjectID]) -> String {
        ids.isEmpty ? "none" : ids.map(String.init).joined(separator: ", ")
    }

    public static func list(_ items: [String]) -> String {
        items.isEmpty ? "none" : items.joined(separator: ", ")
    }

    /// `1 IOAS`, `2 HWPTs`, `1 mapping`, `3 mappings`.
    public static func count(_ n: Int, _ singular: String, _ plural: String? = nil) -> String {
        "\(n) " + (n == 1 ? singular : plural ?? singular + "s")
    }
}
