#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdRPC
import TestProcesses
import Testing

@testable import IommuctlKit

/// The real iommuctl against a real iommufdd (simulator backend): every subcommand, tables and
/// --json, and the error paths with their exit codes.
@Suite("iommuctl end to end against iommufdd --backend sim", .serialized)
struct EndToEndTests {
    func expectOK(_ run: Binary.Result, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.code == 0, "\(what): exit \(run.code): \(run.error)", sourceLocation: sourceLocation)
    }

    @Test("a VM's life: owner, IOAS, memory, devices, dirty tracking, vIOMMU, release")
    func lifecycle() throws {
        let daemon = try LiveDaemon()

        // Events, watched from the start.
        let watchOutput = daemon.directory + "/watch.out"
        let watch = try SpawnedProcess.start(
            Binary.path("iommuctl"), ["watch", "--socket", daemon.socketPath],
            output: watchOutput, errorOutput: "/dev/null")

        let status = try daemon.ctl(["status"])
        expectOK(status, "status")
        #expect(status.output.contains("backend sim"))
        #expect(status.output.contains("socket    \(daemon.socketPath)"))

        let devices = try daemon.ctl(["devices"])
        expectOK(devices, "devices")
        for name in LiveDaemon.devices { #expect(devices.output.contains(name)) }
        #expect(devices.output.hasPrefix("DEVICE"))

        expectOK(try daemon.ctl(["owner", "create", "vm1", "--dirty", "preferred"]), "owner create")
        // Base pages: dirty tracking at 4 KiB, not at the 2 MiB of a huge IOPTE.
        let ioas = try #require(try daemon.json(["ioas", "create", "--owner", "vm1", "--huge-pages", "off"])["ioas"]?.int64Value)
        let ioas2 = try #require(try daemon.json(["ioas", "create", "--owner", "vm1"])["ioas"]?.int64Value)

        let map = try daemon.ctl(["ioas", "map", "\(ioas)", "--memfd", "2M", "--iova", "0"])
        expectOK(map, "ioas map")
        #expect(map.output.hasPrefix("mapped 2 MiB of a new 2 MiB memfd at IOVA 0x0-0x1fffff in IOAS \(ioas)"))
        var template = Array("/tmp/iommuctl-e2e-ram-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        ftruncate(fd, 1 << 20)
        close(fd)
        let ram = path(fromTemplate: template)
        defer { unlink(ram) }
        let fileMap = try daemon.ctl(["ioas", "map", "\(ioas)", ram, "--iova", "0x400000", "--read-only"])
        expectOK(fileMap, "ioas map file")
        #expect(fileMap.output.contains("at IOVA 0x400000-0x4fffff"))
        #expect(fileMap.output.contains("read-only; the owner now pins 3 MiB"))

        let info = try daemon.ctl(["ioas", "info", "\(ioas)"])
        expectOK(info, "ioas info")
        #expect(info.output.contains("0x0       0x1fffff  2 MiB  rw"))
        #expect(info.output.contains("0x400000  0x4fffff  1 MiB  r-"))
        expectOK(try daemon.ctl(["ioas", "ranges", "\(ioas)"]), "ioas ranges")
        let list = try daemon.json(["ioas", "list", "--owner", "vm1"])
        #expect(list["ioas"]?.arrayValue?.count == 2)

        let attach = try daemon.ctl(["device", "attach", "sim-pci0", "--owner", "vm1", "--ioas", "\(ioas)"])
        expectOK(attach, "device attach")
        #expect(attach.output.contains("sim-pci0 (device id"))
        #expect(attach.output.contains("(new, dirty tracking capable)"))
        let mdev = try daemon.ctl(["device", "attach", "sim-mdev0", "--owner", "vm1", "--ioas", "\(ioas)"])
        expectOK(mdev, "mdev attach")
        #expect(mdev.output.contains("to IOAS \(ioas) directly"))
        // The vendor data of IOMMU_GET_HW_INFO: sim-iommu0 is an Intel VT-d with dirty tracking
        // and nesting (the values the command's help shows); sim-iommu1's SMMUv3 data below.
        let deviceInfo = try daemon.ctl(["device", "info", "sim-pci0"])
        expectOK(deviceInfo, "device info")
        #expect(deviceInfo.output.contains("vendor data   intel_vtd, 24 bytes"), "\(deviceInfo.output)")
        #expect(deviceInfo.output.contains("cap_reg       0x9ff078c206f0466"))
        #expect(deviceInfo.output.contains("ecap_reg      0x1eb9824f0505e"))
        #expect(deviceInfo.output.contains("ats           not supported (IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)"))
        let vtdJSON = try daemon.json(["device", "info", "sim-pci0"])
        #expect(vtdJSON["capabilities"]?["vendor"]?["intel_vtd"]?["ecap_reg"]?.int64Value == 0x1eb9824f0505e)
        #expect(vtdJSON["capabilities"]?["pasid_width"]?.int64Value == 0)
        let hwpts = try daemon.json(["hwpt", "list", "--ioas", "\(ioas)"])
        let hwpt = try #require(hwpts["hwpts"]?.arrayValue?.first?["hwpt"]?.int64Value)
        let hwptTable = try daemon.ctl(["hwpt", "list"])
        expectOK(hwptTable, "hwpt list")
        #expect(hwptTable.output.contains("dirty-tracking"))

        let start = try daemon.ctl(["dirty", "start", "\(ioas)"])
        expectOK(start, "dirty start")
        #expect(start.output.hasPrefix("IOAS \(ioas): dirty tracking on"))
        #expect(start.output.contains("sim-mdev0"))  // untracked
        // The simulated device writes pages 1-3 and 100.
        expectOK(try daemon.ctl(["call", "sim.dma", #"{"device": "sim-pci0", "iova": 4096, "length": 12288}"#]), "sim.dma")
        expectOK(try daemon.ctl(["call", "sim.dma", #"{"device": "sim-pci0", "iova": 409600, "length": 4096}"#]), "sim.dma")
        let bitmapPath = daemon.directory + "/pass1.bitmap"
        let bitmap = try daemon.ctl(["dirty", "read", "\(ioas)", "--iova", "0", "--length", "2M", "--no-clear", "--bitmap", bitmapPath])
        expectOK(bitmap, "dirty read --bitmap")
        #expect(bitmap.output.contains("4 dirty pages (16 KiB) of 512 (0.781%) in 0x0-0x1fffff at 4 KiB pages, not cleared"))
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: bitmapPath)))
        var expected = [UInt8](repeating: 0, count: 64)  // 512 pages = 8 u64 words
        expected[0] = 0b1110
        expected[100 / 8] = 1 << (100 % 8)
        #expect(bytes == expected)
        let read = try daemon.ctl(["dirty", "read", "\(ioas)", "--iova", "0", "--length", "2M"])
        expectOK(read, "dirty read")
        #expect(read.output == """
            IOVA     LAST     PAGES    SIZE
            0x1000   0x3fff       3  12 KiB
            0x64000  0x64fff      1   4 KiB
            4 dirty pages (16 KiB) of 512 (0.781%) in 0x0-0x1fffff at 4 KiB pages, cleared
            """)
        let again = try daemon.ctl(["dirty", "read", "\(ioas)", "--iova", "0", "--length", "2M", "--summary"])
        #expect(again.output == "0 dirty pages (0 B) of 512 (0%) in 0x0-0x1fffff at 4 KiB pages, cleared")
        expectOK(try daemon.ctl(["dirty", "status", "\(ioas)"]), "dirty status")
        expectOK(try daemon.ctl(["dirty", "stop", "\(ioas)"]), "dirty stop")

        // A vIOMMU needs the SMMUv3-like IOMMU (sim-iommu1): the VT-d-like one has none.
        let vtd = try daemon.ctl(["viommu", "create", "sim-pci0"])
        #expect(vtd.code == 8 && vtd.error.contains("Intel VT-d"), "\(vtd)")
        expectOK(try daemon.ctl(["device", "attach", "sim-pci2", "--owner", "vm1", "--ioas", "\(ioas)"]), "attach sim-pci2")
        let smmuJSON = try daemon.json(["device", "info", "sim-pci2"])
        #expect(smmuJSON["capabilities"]?["vendor"]?["type"]?.stringValue == "arm_smmuv3")
        #expect(smmuJSON["capabilities"]?["vendor"]?["arm_smmuv3"]?["idr"]?.arrayValue?.count == 6)
        #expect(smmuJSON["capabilities"]?["vendor"]?["arm_smmuv3"]?["aidr"]?.int64Value == 2)
        let viommu = try daemon.json(["viommu", "create", "sim-pci2"])
        let viommuID = try #require(viommu["viommu"]?.int64Value)
        let vdev = try daemon.ctl(["vdevice", "create", "--viommu", "\(viommuID)", "--device", "sim-pci2", "--virtual-id", "0x10"])
        expectOK(vdev, "vdevice create")
        let vdevID = try #require(try daemon.json(["owner", "info", "vm1"])["vdevices"]?.arrayValue?.first?.int64Value)
        let viommus = try daemon.ctl(["viommu", "list"])
        expectOK(viommus, "viommu list")
        #expect(viommus.output.contains("vm1"))
        expectOK(try daemon.ctl(["vdevice", "destroy", "\(vdevID)"]), "vdevice destroy")
        expectOK(try daemon.ctl(["viommu", "destroy", "\(viommuID)"]), "viommu destroy")
        expectOK(try daemon.ctl(["device", "release", "sim-pci2"]), "device release sim-pci2")

        expectOK(try daemon.ctl(["device", "attach", "sim-pci1", "--owner", "vm1", "--ioas", "\(ioas)"]), "attach sim-pci1")
        let alloc = try daemon.json(["hwpt", "alloc", "--ioas", "\(ioas)", "--device", "sim-pci1", "--dirty-tracking"])
        let allocated = try #require(alloc["hwpt"]?.int64Value)
        let replace = try daemon.ctl(["device", "replace", "sim-pci1", "--hwpt", "\(allocated)"])
        expectOK(replace, "device replace")
        #expect(replace.output.contains("moved to HWPT \(allocated)"))
        expectOK(try daemon.ctl(["device", "detach", "sim-pci1"]), "device detach")
        expectOK(try daemon.ctl(["hwpt", "destroy", "\(allocated)"]), "hwpt destroy")
        expectOK(try daemon.ctl(["device", "release", "sim-pci1"]), "device release")

        let copy = try daemon.ctl(["ioas", "copy", "--from", "\(ioas)", "--src-iova", "0", "--length", "2M", "--to", "\(ioas2)", "--dst-iova", "1G"])
        expectOK(copy, "ioas copy")
        expectOK(try daemon.ctl(["ioas", "set", "\(ioas2)", "--huge-pages", "on"]), "ioas set")
        let unmap = try daemon.ctl(["ioas", "unmap", "\(ioas2)", "--all"])
        expectOK(unmap, "ioas unmap --all")
        #expect(unmap.output.hasPrefix("unmapped 2 MiB (1 mapping) from IOAS \(ioas2)"))
        expectOK(try daemon.ctl(["ioas", "unmap", "\(ioas)", "--iova", "0x400000", "--length", "1M"]), "ioas unmap range")
        expectOK(try daemon.ctl(["ioas", "destroy", "\(ioas2)"]), "ioas destroy")

        let metrics = try daemon.ctl(["metrics"])
        expectOK(metrics, "metrics")
        #expect(metrics.output.contains("iommufdd_"))
        // What the README's textfile-collector timer writes: the histograms, the last sample whole.
        #expect(metrics.output.contains("# TYPE iommufdd_request_duration_seconds histogram\n"))
        #expect(metrics.output.contains("iommufdd_request_duration_seconds_count{method=\"ioas.unmap\"} 2\n"))
        #expect(metrics.output.contains("# TYPE iommufdd_broker_lock_wait_seconds histogram\n"))
        #expect(metrics.output.contains("iommufdd_broker_lock_wait_seconds_bucket{le=\"+Inf\"} "))
        #expect(metrics.output.split(separator: "\n").last?.hasPrefix("iommufdd_broker_lock_wait_seconds_count ") == true)
        expectOK(try daemon.ctl(["call", "daemon.ping"]), "call")
        expectOK(try daemon.ctl(["owner", "list"]), "owner list")

        let release = try daemon.ctl(["owner", "release", "vm1"])
        expectOK(release, "owner release")
        #expect(release.output.hasPrefix("owner vm1 released: destroyed"))
        #expect(try daemon.ctl(["owner", "list"]).output == "no owners")
        #expect(try daemon.ctl(["ioas", "list"]).output == "no IOAS")

        watch.signal(SIGINT)  // Ctrl-C
        #expect(watch.wait() == 128 + SIGINT, "watch ran until interrupted")
        let events = readTextFile(watchOutput)
        withExtendedLifetime(daemon) {}
        #expect(events.contains("owner vm1 created"))
        #expect(events.contains("vm1: IOAS \(ioas) created"))
        #expect(events.contains("vm1: sim-pci0 attached to HWPT \(hwpt) of IOAS \(ioas)"))
        #expect(events.contains("vm1: dirty tracking started on IOAS \(ioas)"))
        #expect(events.contains("owner vm1 released"))
    }

    @Test("error paths: exit codes a script can rely on")
    func errors() throws {
        let daemon = try LiveDaemon(quota: "4MiB")
        expectOK(try daemon.ctl(["owner", "create", "vm1"]), "owner create")
        let ioas = try #require(try daemon.json(["ioas", "create", "--owner", "vm1"])["ioas"]?.int64Value)

        let notFound = try daemon.ctl(["ioas", "info", "999"])
        #expect(notFound.code == CtlExit.notFound.rawValue, "\(notFound.error)")
        #expect(notFound.error.contains("[iommufdd.NotFound"))
        #expect(try daemon.ctl(["owner", "info", "nobody-here"]).code == CtlExit.notFound.rawValue)

        let quota = try daemon.ctl(["ioas", "map", "\(ioas)", "--memfd", "8M"])
        #expect(quota.code == CtlExit.quota.rawValue, "\(quota.error)")
        #expect(quota.error.contains("iommufdd.QuotaExceeded"))

        let unaligned = try daemon.ctl(["ioas", "map", "\(ioas)", "--memfd", "1M", "--iova", "0x123"])
        #expect(unaligned.code == CtlExit.invalidParams.rawValue, "\(unaligned.error)")

        let hole = try daemon.ctl(["ioas", "unmap", "\(ioas)", "--iova", "0x10000000", "--length", "4K"])
        #expect(hole.code == CtlExit.notFound.rawValue, "\(hole.error)")
        #expect(try daemon.ctl(["ioas", "unmap", "\(ioas)", "--iova", "0x10000000", "--length", "4K", "--tolerate-missing"]).code == 0)

        let refused = try daemon.ctl(["device", "attach", "sim-pci2", "--owner", "vm1", "--ioas", "\(ioas)", "--dirty", "required"])
        #expect(refused.code == CtlExit.unsupported.rawValue, "\(refused.error)")

        expectOK(try daemon.ctl(["device", "attach", "sim-pci0", "--owner", "vm1", "--ioas", "\(ioas)"]), "attach")
        let busy = try daemon.ctl(["ioas", "destroy", "\(ioas)"])
        #expect(busy.code == CtlExit.busy.rawValue, "\(busy.error)")

        let json = try daemon.ctl(["ioas", "info", "999", "--json"])
        #expect(try JSONValue.parse(json.output)["error"]?["data"]?["name"] == "iommufdd.NotFound")
    }

    @Test("roles: a reader may look but not touch; a stranger is refused", .enabled(if: geteuid() == 0, "needs root to run iommuctl as other users"))
    func roles() throws {
        let daemon = try LiveDaemon()
        expectOK(try daemon.ctl(["devices"], asUID: 65534), "reader lists devices")
        let write = try daemon.ctl(["owner", "create", "intruder"], asUID: 65534)
        #expect(write.code == CtlExit.permissionDenied.rawValue, "\(write.error)")
        let stranger = try daemon.ctl(["status"], asUID: 65533)
        #expect(stranger.code == CtlExit.permissionDenied.rawValue, "\(stranger.error)")
    }

    @Test("no daemon on the socket: exit 3")
    func noDaemon() throws {
        let gone: String
        do {
            let daemon = try LiveDaemon()
            gone = daemon.socketPath
        }
        let run = try Binary.run(["status", "--socket", gone])
        #expect(run.code == CtlExit.noDaemon.rawValue, "\(run.error)")
    }
}
