import ArgumentParser
import IommufdContract

// MARK: pasid

/// `iommuctl device attach-pasid DEVICE PASID --hwpt N`.
struct DeviceAttachPASID: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach-pasid",
        abstract: "Attach a PASID of a leased device to a PASID-capable HWPT of its owner.",
        discussion: """
            Calls device.attach_pasid (VFIO_DEVICE_ATTACH_IOMMUFD_PT with \
            VFIO_DEVICE_ATTACH_PASID). The HWPT must be allocated with `hwpt alloc --pasid`, \
            the PASID must fit the device's width (`device info`: pasid), and the device's RID, \
            when attached, must be on a PASID-capable HWPT too. A PASID that is attached is \
            refused (use replace-pasid).

            Example:
              iommuctl hwpt alloc --ioas 1 --device vfio3 --pasid
              iommuctl device replace vfio3 --hwpt 7
              iommuctl device attach-pasid vfio3 100 --hwpt 7
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @Argument(help: "The PASID (1 up to the device's width).")
    var pasid: UInt32

    @Option(help: "The HWPT (allocated with --pasid).")
    var hwpt: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.attach_pasid", encoding: DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
        try context.emit(result, as: DevicePASIDResult.self) { Self.render($0, verb: "attached") }
    }

    static func render(_ r: DevicePASIDResult, verb: String) -> String {
        var line = "\(r.device) (device id \(r.deviceID)) PASID \(r.pasid) \(verb)"
        if let hwpt = r.hwpt { line += " to HWPT \(hwpt)" }
        if let previous = r.previousHWPT { line += (r.hwpt == nil ? " from" : ", left") + " HWPT \(previous)" }
        return line
    }
}

/// `iommuctl device replace-pasid DEVICE PASID --hwpt N`.
struct DeviceReplacePASID: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace-pasid",
        abstract: "Move an attached PASID to another PASID-capable HWPT without a DMA gap.",
        discussion: """
            Calls device.replace_pasid. The PASID must be attached (attach-pasid).

            Example:
              iommuctl device replace-pasid vfio3 100 --hwpt 9
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @Argument(help: "The attached PASID.")
    var pasid: UInt32

    @Option(help: "The HWPT to move it to (allocated with --pasid).")
    var hwpt: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.replace_pasid", encoding: DevicePASIDParams(device: device, pasid: pasid, hwpt: hwpt))
        try context.emit(result, as: DevicePASIDResult.self) { DeviceAttachPASID.render($0, verb: "moved") }
    }
}

/// `iommuctl device detach-pasid DEVICE PASID`.
struct DeviceDetachPASID: DaemonCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach-pasid",
        abstract: "Detach a PASID of a device (its DMA with that PASID is blocked).",
        discussion: """
            Calls device.detach_pasid. An HWPT with PASIDs attached cannot be destroyed until \
            they are detached; `owner release` detaches them first.

            Example:
              iommuctl device detach-pasid vfio3 100
            """)

    @Argument(help: "Device name or PCI address.")
    var device: String

    @Argument(help: "The attached PASID.")
    var pasid: UInt32

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        let result = try context.call("device.detach_pasid", encoding: DevicePASIDDetachParams(device: device, pasid: pasid))
        try context.emit(result, as: DevicePASIDResult.self) { DeviceAttachPASID.render($0, verb: "detached") }
    }
}
