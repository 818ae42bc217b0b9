import ArgumentParser
import IommufdContract
import IommufdCore

/// A byte count on the command line: `4096`, `0x1000`, `4K`, `2M`, `1G` (binary multiples).
public struct ByteSize: ExpressibleByArgument, Sendable, Hashable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public init?(argument: String) {
        guard let value = Units.parseBytes(argument) else { return nil }
        self.value = value
    }

    public var defaultValueDescription: String { Units.bytes(value) }
}

/// An IO virtual address: `0x100000`, `1048576`, or a size-like `1G`.
public struct Address: ExpressibleByArgument, Sendable, Hashable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public init?(argument: String) {
        guard let value = Units.parseAddress(argument) else { return nil }
        self.value = value
    }

    public var defaultValueDescription: String { Units.hex(value) }
}

/// `on` / `off` for options that set a boolean policy.
public enum Switch: String, ExpressibleByArgument, CaseIterable, Sendable {
    case on, off
    public var isOn: Bool { self == .on }
}

extension DirtyPolicy: ExpressibleByArgument {}

/// A vIOMMU type by name or number (`enum iommu_viommu_type`).
public struct VIOMMUTypeArgument: ExpressibleByArgument, Sendable, Hashable {
    public var value: UInt32

    public static let names: [(String, UInt32)] = [
        ("arm-smmuv3", VIOMMUType.armSMMUv3),
        ("tegra241-cmdqv", VIOMMUType.tegra241CMDQV),
        ("selftest", VIOMMUType.selftest),
    ]

    public init?(argument: String) {
        let lower = argument.lowercased()
        if let named = Self.names.first(where: { $0.0 == lower }) {
            value = named.1
        } else if let number = Units.parseAddress(argument), let type = UInt32(exactly: number) {
            value = type
        } else {
            return nil
        }
    }

    public static var allValueStrings: [String] { names.map(\.0) }
}
