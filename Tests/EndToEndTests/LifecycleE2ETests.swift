import Foundation
import IommufdCore
import IommufdRPC
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A VM's whole life against the real `iommufdd` binary on the simulator, driven as a VM
/// manager drives it: JSON over the socket, guest memory as a memfd, fds both ways.
@Suite("End to end: a VM's lifecycle")
struct LifecycleE2ETests {
    @Test func fullVMLifecycle() throws {
        let daemon = try DaemonProcess()
        let vmm = try daemon.client()
        let watcher = try daemon.client()
        let sub = try watcher.call("events.subscribe", [:])
        #expect(sub["subscription"]?.uint != nil)

        // Owner and IOAS.
        let owner = try vmm.call("owner.create", ["name": "vm-1", "dirty": "preferred"])
        #expect(owner["name"] == "vm-1" && owner["policy"]?["dirty"] == "preferred")
        let ioas = try #require(try vmm.call("ioas.create", ["owner": "vm-1", "huge_pages": false])["ioas"]?.int)

        // Guest memory: a 1 MiB memfd, mapped at a fixed IOVA (the fd travels with SCM_RIGHTS).
        let ram = try makeMemfd(bytes: 1 << 20)
        defer { close(ram) }
        let base: UInt64 = 0x10_0000
        let map = try vmm.call("ioas.map", ["ioas": .int(ioas), "fd": ["fd": 0], "offset": 0, "length": .int(1 << 20), "iova": .unsigned(base)], fds: [ram])
        #expect(map["iova"]?.uint == base && map["length"]?.uint == 1 << 20 && map["owner_pinned_bytes"]?.uint == 1 << 20)
        #expect(isOpen(ram), "the client's own fd stays open: the daemon got a duplicate")

        // Two devices under the auto-domain policy: the second joins the first one's HWPT.
        let a = try vmm.call("device.attach", ["owner": "vm-1", "device": "sim-pci0", "ioas": .int(ioas)])
        let b = try vmm.call("device.attach", ["owner": "vm-1", "device": "sim-pci1", "ioas": .int(ioas)])
        let hwpt = try #require(a["pt"]?.int)
        #expect(a["hwpt_created"] == true && a["dirty_tracking"] == true)
        #expect(b["pt"]?.int == hwpt && b["hwpt_created"] == false)
        let info = try vmm.call("ioas.info", ["ioas": .int(ioas)])
        #expect(info["hwpts"] == [.int(hwpt)] && info["devices"] == ["sim-pci0", "sim-pci1"] && info["mapping_count"] == 1)

        // Dirty tracking: start, a device writes, read as runs (read-and-clear), then as a bitmap.
        let started = try vmm.call("dirty.start", ["ioas": .int(ioas)])
        #expect(started["enabled"] == true && started["tracking_hwpts"] == [.int(hwpt)])
        try vmm.call("sim.dma", ["device": "sim-pci1", "iova": .unsigned(base + 2 * pageSize), "length": .unsigned(3 * pageSize)])
        try vmm.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(base + 10 * pageSize), "length": .unsigned(pageSize)])
        let runs = try vmm.call("dirty.read", ["ioas": .int(ioas), "iova": .unsigned(base), "length": .int(1 << 20)])
        #expect(runs["format"] == "runs" && runs["dirty_pages"] == 4 && runs["cleared"] == true)
        #expect(runs["runs"] == [
            ["iova": .unsigned(base + 2 * pageSize), "length": .unsigned(3 * pageSize)],
            ["iova": .unsigned(base + 10 * pageSize), "length": .unsigned(pageSize)],
        ])
        let again = try vmm.call("dirty.read", ["ioas": .int(ioas), "iova": .unsigned(base), "length": .int(1 << 20)])
        #expect(again["dirty_pages"] == 0 && again["runs"] == [], "read-and-clear cleared the bits")

        try vmm.call("sim.dma", ["device": "sim-pci0", "iova": .unsigned(base + 64 * pageSize), "length": .unsigned(2 * pageSize)])
        let (bitmapReply, bitmapFDs) = try vmm.call(
            "dirty.read", params: ["ioas": .int(ioas), "iova": .unsigned(base), "length": .int(1 << 20), "format": "bitmap", "clear": false],
            timeout: .seconds(60))
        #expect(bitmapReply["bitmap"] == ["fd": 0] && bitmapReply["dirty_pages"] == 2 && bitmapReply["cleared"] == false)
        #expect(bitmapFDs.count == 1, "the bitmap memfd came back with SCM_RIGHTS")
        let bitmapFD = try #require(bitmapFDs.first)
        var words = [UInt64](repeating: 0, count: 4)  // 256 pages = 4 words
        let n = words.withUnsafeMutableBytes { pread(bitmapFD, $0.baseAddress, $0.count, 0) }
        close(bitmapFD)
        #expect(n == 32 && bitmapReply["bitmap_bytes"] == 32)
        #expect(words == [0, 0b11, 0, 0], "bits 64 and 65: the two pages written")

        let status = try vmm.call("dirty.status", ["ioas": .int(ioas)])
        #expect(status["enabled"] == true && status["untracked_devices"] == [])
        let stopped = try vmm.call("dirty.stop", ["ioas": .int(ioas)])
        #expect(stopped["enabled"] == false)
        let dmaAfterStop = try vmm.error("sim.dma", ["device": "sim-pci0", "iova": .unsigned(base), "length": .unsigned(pageSize)])
        #expect(dmaAfterStop.name == ErrorName.kernel && dmaAfterStop.data?["errno"] == "EINVAL")

        // vIOMMU and vDevice. sim-pci0's IOMMU answers like Intel VT-d, which has no vIOMMU in
        // Linux 7.3: refused before anything moves. sim-pci2's answers like ARM SMMUv3: it moves
        // onto the IOAS's nest parent for its IOMMU and gets a vIOMMU of type ARM_SMMUV3.
        let vtd = try vmm.error("viommu.create", ["device": "sim-pci0"])
        #expect(vtd.name == ErrorName.unsupported && vtd.message.contains("Intel VT-d"), "\(vtd)")
        #expect(try vmm.call("ioas.info", ["ioas": .int(ioas)])["hwpts"] == [.int(hwpt)], "the refusal left no nest parent")
        let smmu = try vmm.call("device.attach", ["owner": "vm-1", "device": "sim-pci2", "ioas": .int(ioas)])
        let smmuHWPT = try #require(smmu["pt"]?.int)
        #expect(smmu["hwpt_created"] == true && smmu["dirty_tracking"] == false && smmuHWPT != hwpt)
        let viommu = try vmm.call("viommu.create", ["device": "sim-pci2"])
        let viommuID = try #require(viommu["viommu"]?.int)
        #expect(viommu["ioas"]?.int == ioas && viommu["nest_parent_created"] == true && viommu["moved_from"]?.int == smmuHWPT)
        #expect(viommu["iommu_instance"] == "sim-iommu1")
        let vdev = try vmm.call("vdevice.create", ["viommu": .int(viommuID), "device": "sim-pci2", "virtual_id": 0x42])
        #expect(vdev["virtual_id"] == 0x42 && vdev["device"] == "sim-pci2")
        let full = try vmm.call("owner.info", ["name": "vm-1"])
        #expect(full["viommus"] == [.int(viommuID)] && full["vdevices"]?.arrayValue?.count == 1)
        #expect(full["hwpts"]?.arrayValue?.count == 2 && full["devices"] == ["sim-pci0", "sim-pci1", "sim-pci2"])

        // Release: everything goes, in a safe order, and the events say so.
        let released = try vmm.call("owner.release", ["name": "vm-1"])
        #expect(released["released"] == true && released["failures"] == [])
        #expect(released["refunded_bytes"]?.uint == 1 << 20)
        #expect(released["destroyed"] == ["vdevice": 1, "viommu": 1, "hwpt": 2, "mapping": 1, "ioas": 1, "device": 3])

        let gone = try vmm.error("owner.info", ["name": "vm-1"])
        #expect(gone.name == ErrorName.notFound)
        #expect(try vmm.call("owner.list")["owners"] == [])
        #expect(try vmm.call("ioas.list", [:])["ioas"] == [])
        #expect(try vmm.call("hwpt.list", [:])["hwpts"] == [])
        let devices = try #require(try vmm.call("device.list", [:])["devices"]?.arrayValue)
        #expect(devices.count == 5 && devices.allSatisfy { $0["leased"] == false && $0["pt"] == nil })
        let counts = try #require(try vmm.call("daemon.info")["counts"])
        for key in ["owners", "ioas", "hwpts", "viommus", "vdevices", "mappings", "pinned_bytes", "devices_leased", "devices_attached"] {
            #expect(counts[key] == 0, "daemon.info counts.\(key) = \(counts[key] ?? .null) after the release")
        }

        var methods: [String] = []
        while methods.last != "event.owner_released" {
            guard let n = try watcher.nextNotification(timeout: .seconds(60)) else { break }
            methods.append(n.method)
        }
        #expect(methods.first == "event.owner_created" && methods.last == "event.owner_released")
        #expect(methods.contains("event.dirty_tracking_started") && methods.contains("event.dirty_tracking_stopped"))
        #expect(methods.filter { $0 == "event.device_attached" }.count >= 2)
        #expect(methods.contains("event.object_destroyed") && methods.contains("event.device_released"))
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }

    /// daemon.info on the simulator (what runs wherever there is no /dev/iommu) claims only the
    /// features the simulator implements: none of the ioctls it has no operation for.
    @Test func infoOnTheSimulatorAdvertisesOnlyWhatItImplements() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        let info = try c.call("daemon.info")
        #expect(info["backend"] == "sim")
        let features = try #require(info["features"]?.arrayValue)
        var supported: [String: Bool] = [:]
        for feature in features {
            guard let name = feature["name"]?.stringValue, let flag = feature["supported"]?.boolValue else {
                Issue.record("daemon.info feature entry without name and supported: \(feature)")
                continue
            }
            supported[name] = flag
        }
        for name in ["ioasChangeProcess"] {
            #expect(supported[name] == false, "the simulator has no \(name), yet daemon.info says \(supported[name].map { "\($0)" } ?? "nothing")")
        }
        for name in ["iommufd", "vfioDeviceCdev", "hwptAlloc", "hwInfo", "dirtyTracking", "ioasMapFile", "viommu", "vdevice", "selftest", "hwptInvalidate", "faultQueue", "veventq", "pasid", "hwQueue"] {
            #expect(supported[name] == true, "the simulator implements \(name), yet daemon.info says \(supported[name].map { "\($0)" } ?? "nothing")")
        }
        #expect(daemon.stop() == 0, "\(daemon.log)")
    }

    /// The bug this suite found first: attach then release failed with "destroying IOAS 1
    /// failed: IOMMU_DESTROY returned EBUSY".
    @Test func attachThenReleaseWithoutMappings() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        try c.call("owner.create", ["name": "vm-2"])
        let ioas = try #require(try c.call("ioas.create", ["owner": "vm-2"])["ioas"]?.int)
        try c.call("device.attach", ["owner": "vm-2", "device": "sim-pci0", "ioas": .int(ioas)])
        let released = try c.call("owner.release", ["name": "vm-2"])
        #expect(released["released"] == true && released["failures"] == [])
        #expect(released["destroyed"]?["ioas"] == 1 && released["destroyed"]?["hwpt"] == 1 && released["destroyed"]?["device"] == 1)
        #expect(try c.call("owner.list")["owners"] == [])
    }

    /// Every device kind, attach/detach/replace and unmap policies, through the socket.
    @Test func devicesReplaceDetachAndMdev() throws {
        let daemon = try DaemonProcess()
        let c = try daemon.client()
        try c.call("owner.create", ["name": "vm-3", "tolerate_missing": true])
        let ioas1 = try #require(try c.call("ioas.create", ["owner": "vm-3"])["ioas"]?.int)
        let ioas2 = try #require(try c.call("ioas.create", ["owner": "vm-3"])["ioas"]?.int)

        // Devices behind different IOMMUs get different HWPTs; the mdev attaches to the IOAS.
        let required = try c.error("device.attach", ["owner": "vm-3", "device": "sim-pci2", "ioas": .int(ioas1), "dirty": "required"])
        #expect(required.code == -32008 && required.name == ErrorName.policyRefused && required.message.contains("sim-iommu1"), "\(required)")
        let p0 = try c.call("device.attach", ["owner": "vm-3", "device": "sim-pci0", "ioas": .int(ioas1)])
        let p2 = try c.call("device.attach", ["owner": "vm-3", "device": "sim-pci2", "ioas": .int(ioas1)])
        let md = try c.call("device.attach", ["owner": "vm-3", "device": "sim-mdev0", "ioas": .int(ioas1)])
        #expect(p0["pt"] != p2["pt"] && p2["hwpt_created"] == true)
        #expect(md["pt"]?.int == ioas1 && md["hwpt_created"] == false)

        // Replace moves sim-pci2 to the second IOAS; its old automatic HWPT goes.
        let moved = try c.call("device.replace", ["device": "sim-pci2", "ioas": .int(ioas2)])
        #expect(moved["ioas"]?.int == ioas2 && moved["previous_pt"] == p2["pt"] && moved["destroyed_hwpts"] == [p2["pt"] ?? .null])
        let detached = try c.call("device.detach", ["device": "sim-pci0"])
        #expect(detached["destroyed_hwpts"] == [p0["pt"] ?? .null])
        let busy = try c.error("ioas.destroy", ["ioas": .int(ioas2)])
        #expect(busy.code == -32003 && busy.name == ErrorName.busy, "\(busy)")

        // tolerate_missing (the owner's policy): unmapping a hole is a 0-byte success.
        let hole = try c.call("ioas.unmap", ["ioas": .int(ioas1), "iova": 0x100_0000, "length": 0x1000])
        #expect(hole["unmapped_bytes"] == 0)
        let strict = try c.error("ioas.unmap", ["ioas": .int(ioas1), "iova": 0x100_0000, "length": 0x1000, "tolerate_missing": false])
        #expect(strict.code == -32001 && strict.name == ErrorName.notFound && strict.message.contains("tolerate_missing"), "\(strict)")

        let released = try c.call("owner.release", ["name": "vm-3"])
        #expect(released["released"] == true && released["failures"] == [])
        #expect(try c.call("device.list", [:])["devices"]?.arrayValue?.allSatisfy { $0["leased"] == false } == true)
    }
}
