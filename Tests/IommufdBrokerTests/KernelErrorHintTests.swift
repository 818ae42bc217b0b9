import IommufdCore
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Kernel errors carry a hint for what to do")
struct KernelErrorHintTests {
    /// Seen on the test VM: a mock device's domain cannot translate below 16 MiB, so attaching
    /// it to an IOAS already mapped there is EADDRINUSE — the message says why and what to do.
    @Test func addressInUseOnAttachExplainsReservedRanges() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let hwpt = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "sim0")).hwpt
        f.backend.failAttach(onto: hwpt, with: .EADDRINUSE)
        let error = expectBrokerError(.kernel) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", hwpt: hwpt))
        }
        #expect(error?.errnoName == "EADDRINUSE")
        #expect(error?.ioctl == "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
        #expect(error?.message.contains("ioas.ranges") == true)
    }
}

@Suite("Auto-domains stay within one IOMMU driver")
struct DomainDriverTests {
    /// Seen on the test VM (Linux 7.3): replacing a selftest mock device onto a VT-d domain
    /// oopses the kernel instead of failing with EINVAL. So the broker never offers a device a
    /// domain made for another driver (hw_info type), implicitly or when named.
    @Test func deviceOfAnotherDriverNeverTriesTheDomain() throws {
        let f = try Fixture()
        let ioas = try f.ownerWithIOAS()
        let first = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .off))
        f.backend.reportHWInfoType(0xdead, forDevice: "sim2")
        let attemptsBefore = f.backend.attachAttempts.count
        let other = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim2", ioas: ioas, dirty: .off))
        #expect(other.hwptCreated && other.pt != first.pt)
        #expect(!f.backend.attachAttempts.dropFirst(attemptsBefore).contains(first.pt), "tried \(f.backend.attachAttempts.dropFirst(attemptsBefore))")
        // Named explicitly, the other driver's domain is refused before the kernel sees it.
        _ = try f.broker.deviceDetach(f.a, DeviceDetachParams(device: "sim2"))
        let attempts = f.backend.attachAttempts.count
        _ = expectBrokerError(.invalidParams) {
            try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim2", hwpt: first.pt))
        }
        #expect(f.backend.attachAttempts.count == attempts)
        // A device of the same driver still shares the domain.
        let same = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim1", ioas: ioas, dirty: .off))
        #expect(same.pt == first.pt && !same.hwptCreated)
    }
}
