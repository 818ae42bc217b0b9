import IommufdRPC
import Testing

@testable import IommuctlKit

/// One command run against the fake daemon: what it must send and what it must print.
struct CommandCase: Sendable, CustomTestStringConvertible {
    var args: [String]
    var method: String
    var answer: JSONValue
    /// The params iommuctl must send (nil: none).
    var params: JSONValue?
    /// Lines (or parts of lines) the human output must contain.
    var expect: [String]

    var testDescription: String { args.joined(separator: " ") }
}

@Suite("Each command against a fake daemon: params sent, table printed, --json as answered")
struct CommandTests {
    static let cases: [CommandCase] = [
        CommandCase(args: ["status"], method: "daemon.info", answer: Fixtures.daemonInfo, params: nil, expect: [
            "iommufdd 0.1.0, backend sim, up 5m 02s, pid 42",
            "features  dirty tracking, vIOMMU",
            "missing   selftest mocks",
            "objects   1 owner, 2 IOAS, 1 HWPT, 0 vIOMMUs, 0 vDevices, 3 mappings",
            "devices   4 known, 3 allowed, 1 leased, 1 attached",
            "pinned    1 GiB",
            "journal   memfd",
            "config    /etc/iommufdd/iommufdd.toml",
            "clients   2 connected, 0 watching events",
            "restarts  destroy every object (no fd store)",
            "warning   simulator backend: no device does real DMA",
        ]),
        CommandCase(args: ["devices", "--owner", "vm1"], method: "device.list", answer: Fixtures.devices, params: ["owner": "vm1"], expect: [
            "DEVICE  KIND       PCI ADDRESS   IOMMU  GROUP  ALLOWED  OWNER    DEV ID  ATTACHED        CAPABILITIES",
            "sim0    simulated  0000:00:01.0  smmu0      1  yes      vm1           1  IOAS 2, HWPT 3  dirty-tracking (ARM SMMUv3)",
            "sim1    mdev       -             -          -  yes      -             -  -               -",
            "sim2    simulated  -             smmu1      -  no       (other)       -  -               -",
        ]),
        CommandCase(args: ["device", "info", "sim0"], method: "device.info", answer: Fixtures.deviceInfo, params: ["device": "sim0"], expect: [
            "device         sim0", "pci address    0000:00:01.0", "vendor:device  1234:11e8", "owner          vm1",
            "device id      1 (bound)", "attached       IOAS 2, HWPT 3", "capabilities   dirty-tracking, PASID (ARM SMMUv3)",
        ]),
        CommandCase(args: ["device", "attach", "sim0", "--owner", "vm1", "--ioas", "2", "--dirty", "required"], method: "device.attach",
                    answer: Fixtures.attach, params: ["owner": "vm1", "device": "sim0", "ioas": 2, "dirty": "required"],
                    expect: ["sim0 (device id 1) attached to HWPT 3 of IOAS 2 (new, dirty tracking capable)"]),
        CommandCase(args: ["device", "replace", "sim0", "--hwpt", "9"], method: "device.replace", answer: Fixtures.replace,
                    params: ["device": "sim0", "hwpt": 9],
                    expect: ["sim0 (device id 1) moved to HWPT 9 of IOAS 2 (shared, no dirty tracking)", "left page table 3", "destroyed unused HWPT 3"]),
        CommandCase(args: ["device", "detach", "sim0"], method: "device.detach", answer: Fixtures.detach, params: ["device": "sim0"],
                    expect: ["sim0 detached from page table 3", "destroyed unused HWPT 3"]),
        CommandCase(args: ["device", "release", "sim0"], method: "device.release", answer: ["device": "sim0", "owner": "vm1"],
                    params: ["device": "sim0"], expect: ["sim0 released by owner vm1"]),
        CommandCase(args: ["owner", "create", "vm1", "--dirty", "off", "--huge-pages", "off", "--tolerate-missing"], method: "owner.create",
                    answer: Fixtures.ownerInfo, params: ["name": "vm1", "dirty": "off", "huge_pages": false, "tolerate_missing": true],
                    expect: ["owner vm1 created: dirty preferred, huge pages off, unmap of a hole succeeds"]),
        CommandCase(args: ["owner", "list"], method: "owner.list", answer: Fixtures.ownerList, params: nil, expect: [
            "OWNER  IDENTITY  IOAS  HWPTS  VIOMMUS  DEVICES  MAPPINGS   PINNED  QUOTA  DIRTY",
            "vm1    libvirt      1      1        1  sim0            3  512 MiB  2 GiB  preferred",
        ]),
        CommandCase(args: ["owner", "info", "vm1"], method: "owner.info", answer: Fixtures.ownerInfo, params: ["name": "vm1"], expect: [
            "created by     libvirt (uid 107)", "dirty policy   preferred (track where the IOMMU can)",
            "unmap of hole  succeeds with 0 bytes (tolerate_missing)", "viommus        5", "vdevices       none",
            "pinned         512 MiB of 2 GiB quota (25%)",
        ]),
        CommandCase(args: ["owner", "release", "vm1"], method: "owner.release", answer: Fixtures.release, params: ["name": "vm1"], expect: [
            "owner vm1 released: destroyed 1 device, 2 HWPTs, 3 mappings, 1 IOAS; 3 MiB unpinned",
        ]),
        CommandCase(args: ["ioas", "create", "--owner", "vm1", "--huge-pages", "on"], method: "ioas.create",
                    answer: ["ioas": 2, "owner": "vm1", "huge_pages": true], params: ["owner": "vm1", "huge_pages": true],
                    expect: ["IOAS 2 created for owner vm1 (huge pages on)"]),
        CommandCase(args: ["ioas", "destroy", "2"], method: "ioas.destroy", answer: ["ioas": 2], params: ["ioas": 2], expect: ["IOAS 2 destroyed"]),
        CommandCase(args: ["ioas", "list"], method: "ioas.list", answer: Fixtures.ioasList, params: [:], expect: [
            "IOAS  OWNER  MAPPINGS  PINNED  HUGE PAGES  DIRTY     HWPTS  DEVICES",
            "   2  vm1           2   3 MiB  on          tracking  3      sim0",
        ]),
        CommandCase(args: ["ioas", "info", "2", "--max-mappings", "10"], method: "ioas.info", answer: Fixtures.ioasInfo,
                    params: ["ioas": 2, "max_mappings": 10], expect: [
            "pinned          3 MiB",
            "IOVA      LAST       SIZE  PERM  SOURCE",
            "0x0       0x1fffff  2 MiB  rw    mmap",
            "0x100000  0x1fffff  1 MiB  r-    file",
        ]),
        CommandCase(args: ["ioas", "unmap", "2", "--iova", "0x100000", "--length", "1M", "--tolerate-missing"], method: "ioas.unmap",
                    answer: ["ioas": 2, "unmapped_bytes": 1_048_576, "mappings": 1, "owner_pinned_bytes": 2_097_152],
                    params: ["ioas": 2, "iova": 1_048_576, "length": 1_048_576, "tolerate_missing": true],
                    expect: ["unmapped 1 MiB (1 mapping) from IOAS 2; the owner now pins 2 MiB"]),
        CommandCase(args: ["ioas", "unmap", "2", "--all"], method: "ioas.unmap",
                    answer: ["ioas": 2, "unmapped_bytes": 0, "mappings": 0, "owner_pinned_bytes": 0],
                    params: ["ioas": 2, "all": true], expect: ["unmapped 0 B (0 mappings) from IOAS 2; the owner now pins 0 B"]),
        CommandCase(args: ["ioas", "copy", "--from", "2", "--src-iova", "0", "--length", "2M", "--to", "4", "--dst-iova", "1G", "--read-only"],
                    method: "ioas.copy", answer: ["dst_ioas": 4, "dst_iova": 1_073_741_824, "length": 2_097_152, "owner_pinned_bytes": 0],
                    params: ["src_ioas": 2, "src_iova": 0, "length": 2_097_152, "dst_ioas": 4, "dst_iova": 1_073_741_824, "readable": true, "writeable": false],
                    expect: ["copied 2 MiB from IOAS 2 at 0x0 to IOAS 4 at IOVA 0x40000000-0x401fffff"]),
        CommandCase(args: ["ioas", "ranges", "2"], method: "ioas.ranges", answer: Fixtures.ranges, params: ["ioas": 2], expect: [
            "IOAS 2: alignment 4 KiB", "0x0          0x7ffffff            128 MiB", "0x100000000  0xffffffffffffffff  15.9 EiB",
        ]),
        CommandCase(args: ["ioas", "set", "2", "--huge-pages", "off"], method: "ioas.set_option", answer: ["ioas": 2, "huge_pages": false],
                    params: ["ioas": 2, "huge_pages": false], expect: ["IOAS 2: huge pages off"]),
        CommandCase(args: ["hwpt", "list", "--ioas", "2"], method: "hwpt.list", answer: ["hwpts": [Fixtures.hwptInfo]], params: ["ioas": 2], expect: [
            "HWPT  OWNER  IOAS  IOMMU  FLAGS           DIRTY     AUTO  DEVICES  VIOMMUS",
            "   3  vm1       2  smmu0  dirty-tracking  tracking  yes   sim0     -",
        ]),
        CommandCase(args: ["hwpt", "alloc", "--ioas", "2", "--device", "sim0", "--dirty-tracking"], method: "hwpt.alloc", answer: Fixtures.hwptInfo,
                    params: ["ioas": 2, "device": "sim0", "dirty_tracking": true], expect: ["HWPT 3 allocated from IOAS 2 on smmu0 (dirty-tracking)"]),
        CommandCase(args: ["hwpt", "destroy", "3"], method: "hwpt.destroy", answer: ["hwpt": 3], params: ["hwpt": 3], expect: ["HWPT 3 destroyed"]),
        CommandCase(args: ["hwpt", "alloc", "--device", "sim0", "--parent", "6", "--data-type", "selftest", "--iotlb", "0xbadbeef"], method: "hwpt.alloc",
                    answer: Fixtures.nestedHWPTInfo,
                    params: ["device": "sim0", "parent": 6, "data": ["type": "selftest", "iotlb": 0xbadbeef]],
                    expect: ["nested HWPT 11 allocated on nest parent 6 (selftest) for mock0"]),
        CommandCase(args: ["hwpt", "list"], method: "hwpt.list", answer: ["hwpts": [Fixtures.nestedHWPTInfo]], params: [:], expect: [
            "HWPT  OWNER  IOAS  IOMMU  FLAGS                       DIRTY  AUTO  DEVICES  VIOMMUS",
            "  11  vm1       2  mock0  nested(selftest on hwpt 6)  -      no    sim0     -",
        ]),
        CommandCase(args: ["hwpt", "invalidate", "11", "--entry", "iotlb_id=0", "--entry", "all"], method: "hwpt.invalidate",
                    answer: ["object": 11, "requested": 2, "done": 2, "data_type": "selftest"],
                    params: ["hwpt": 11, "entries": [["iotlb_id": 0], ["all": true]]],
                    expect: ["HWPT 11: 2 of 2 selftest entries invalidated in one IOMMU_HWPT_INVALIDATE"]),
        CommandCase(args: ["viommu", "invalidate", "5", "--entry", "vdev_id=7,cache_id=0", "--entry", "vdev_id=8,cache_id=1"], method: "viommu.invalidate",
                    answer: ["object": 5, "requested": 2, "done": 1, "data_type": "selftest",
                             "stopped": ["errno": "EINVAL", "ioctl": "IOMMU_HWPT_INVALIDATE", "message": "entry 1 was refused"]],
                    params: ["viommu": 5, "entries": [["vdev_id": 7, "cache_id": 0], ["vdev_id": 8, "cache_id": 1]]],
                    expect: ["vIOMMU 5: 1 of 2 selftest entries invalidated in one IOMMU_HWPT_INVALIDATE", "stopped: EINVAL from IOMMU_HWPT_INVALIDATE: entry 1 was refused"]),
        CommandCase(args: ["dirty", "start", "2"], method: "dirty.start", answer: Fixtures.dirtyStatus, params: ["ioas": 2], expect: [
            "IOAS 2: dirty tracking on", "tracking HWPTs     3", "untrackable HWPTs  4", "untracked devices  sim1 (their DMA writes are not seen)",
        ]),
        CommandCase(args: ["dirty", "stop", "2"], method: "dirty.stop",
                    answer: ["ioas": 2, "enabled": false, "tracking_hwpts": [], "untrackable_hwpts": [], "untracked_devices": []],
                    params: ["ioas": 2], expect: ["IOAS 2: dirty tracking off", "tracking HWPTs  none"]),
        CommandCase(args: ["dirty", "status", "2"], method: "dirty.status", answer: Fixtures.dirtyStatus, params: ["ioas": 2],
                    expect: ["IOAS 2: dirty tracking on"]),
        CommandCase(args: ["viommu", "create", "sim0", "--type", "selftest"], method: "viommu.create", answer: Fixtures.viommuCreate,
                    params: ["device": "sim0", "type": 0xdead_beef], expect: [
            "vIOMMU 5 created in IOAS 2 on smmu0, nest parent HWPT 6 (new)", "device moved from HWPT 3 onto the nest parent",
        ]),
        CommandCase(args: ["viommu", "destroy", "5"], method: "viommu.destroy", answer: ["viommu": 5, "destroyed_hwpts": [6]],
                    params: ["viommu": 5], expect: ["vIOMMU 5 destroyed; unused nest parent HWPT 6 destroyed"]),
        CommandCase(args: ["viommu", "list"], method: "viommu.list",
                    answer: ["viommus": [["viommu": 5, "owner": "vm1", "ioas": 2, "type": 1, "iommu_instance": "smmu0"]]], params: [:],
                    expect: ["VIOMMU  OWNER  IOAS  IOMMU INSTANCE  TYPE", "     5  vm1       2  smmu0           ARM SMMUv3"]),
        CommandCase(args: ["viommu", "list", "--ioas", "2"], method: "viommu.list",
                    answer: ["viommus": [
                        ["viommu": 5, "owner": "vm1", "ioas": 2, "nest_parent": 6, "device": "sim0", "iommu_instance": "smmu0",
                         "vdevices": [["vdevice": 7, "viommu": 5, "device": "sim0", "virtual_id": 16]]],
                        ["viommu": 8, "owner": "vm1", "ioas": 2, "nest_parent": 9, "device": "sim2", "iommu_instance": "smmu1", "vdevices": []],
                    ]], params: ["ioas": 2],
                    expect: ["VIOMMU  OWNER  IOAS  IOMMU INSTANCE  NEST PARENT  DEVICE  VDEVICES", "     5  vm1       2  smmu0                     6  sim0    7:sim0=0x10",
                             "     8  vm1       2  smmu1                     9  sim2    none"]),
        CommandCase(args: ["vdevice", "create", "--viommu", "5", "--device", "sim0", "--virtual-id", "0x10"], method: "vdevice.create",
                    answer: ["vdevice": 7, "viommu": 5, "device": "sim0", "virtual_id": 16], params: ["viommu": 5, "device": "sim0", "virtual_id": 16],
                    expect: ["vDevice 7 created: sim0 is 0x10 on vIOMMU 5"]),
        CommandCase(args: ["vdevice", "destroy", "7"], method: "vdevice.destroy", answer: ["vdevice": 7], params: ["vdevice": 7],
                    expect: ["vDevice 7 destroyed"]),
        // queues
        CommandCase(args: ["fault", "create", "vm1"], method: "fault.create",
                    answer: ["queue": ["queue": 7, "owner": "vm1", "kind": "fault", "hwpts": [], "connected": true, "relayed": 0,
                                       "undelivered": 0, "lost_events": 0, "awaiting_response": 0], "fd": ["fd": 0]],
                    params: ["owner": "vm1"], expect: ["fault queue 7 created for owner vm1"]),
        CommandCase(args: ["fault", "destroy", "7"], method: "fault.destroy", answer: ["queue": 7], params: ["queue": 7],
                    expect: ["fault queue 7 destroyed"]),
        CommandCase(args: ["veventq", "create", "5", "--depth", "64"], method: "veventq.create",
                    answer: ["queue": ["queue": 8, "owner": "vm1", "kind": "veventq", "viommu": 5, "type": 1, "depth": 64, "hwpts": [],
                                       "connected": true, "relayed": 0, "undelivered": 0, "lost_events": 0, "awaiting_response": 0], "fd": ["fd": 0]],
                    params: ["viommu": 5, "depth": 64], expect: ["vEVENTQ 8 created on vIOMMU 5 (type arm_smmuv3, depth 64)"]),
        CommandCase(args: ["veventq", "destroy", "8"], method: "veventq.destroy", answer: ["queue": 8], params: ["queue": 8],
                    expect: ["vEVENTQ 8 destroyed"]),
        CommandCase(args: ["queue", "list", "--owner", "vm1"], method: "queue.list",
                    answer: ["queues": [
                        ["queue": 7, "owner": "vm1", "kind": "fault", "hwpts": [9], "connected": false, "relayed": 3, "undelivered": 3,
                         "lost_events": 0, "awaiting_response": 1],
                        ["queue": 8, "owner": "vm1", "kind": "veventq", "viommu": 5, "type": 1, "depth": 64, "hwpts": [], "connected": true,
                         "relayed": 12, "undelivered": 0, "lost_events": 2, "awaiting_response": 0],
                    ]], params: ["owner": "vm1"],
                    expect: ["QUEUE  KIND", "CONNECTED  RELAYED  UNDELIVERED  LOST  AWAITING", "    7  fault    vm1", "    8  veventq  vm1"]),
        CommandCase(args: ["hwpt", "alloc", "--ioas", "2", "--device", "sim0", "--fault-queue", "7"], method: "hwpt.alloc",
                    answer: ["hwpt": 9, "owner": "vm1", "ioas": 2, "dirty_tracking": false, "nest_parent": false, "auto": false,
                             "devices": [], "viommus": [], "tracking": false, "fault_queue": 7],
                    params: ["ioas": 2, "device": "sim0", "fault_queue": 7], expect: ["HWPT 9 allocated from IOAS 2 (faults-to-queue-7)"]),
        // pasid
        CommandCase(args: ["hwpt", "alloc", "--ioas", "2", "--device", "sim0", "--pasid"], method: "hwpt.alloc",
                    answer: ["hwpt": 9, "owner": "vm1", "ioas": 2, "dirty_tracking": false, "nest_parent": false, "auto": false,
                             "devices": [], "viommus": [], "tracking": false, "pasid": true],
                    params: ["ioas": 2, "device": "sim0", "pasid": true], expect: ["HWPT 9 allocated from IOAS 2 (pasid)"]),
        CommandCase(args: ["device", "attach-pasid", "sim0", "100", "--hwpt", "9"], method: "device.attach_pasid",
                    answer: ["device": "sim0", "device_id": 4, "pasid": 100, "hwpt": 9],
                    params: ["device": "sim0", "pasid": 100, "hwpt": 9], expect: ["sim0 (device id 4) PASID 100 attached to HWPT 9"]),
        CommandCase(args: ["device", "replace-pasid", "sim0", "100", "--hwpt", "10"], method: "device.replace_pasid",
                    answer: ["device": "sim0", "device_id": 4, "pasid": 100, "hwpt": 10, "previous_hwpt": 9],
                    params: ["device": "sim0", "pasid": 100, "hwpt": 10], expect: ["sim0 (device id 4) PASID 100 moved to HWPT 10, left HWPT 9"]),
        CommandCase(args: ["device", "detach-pasid", "sim0", "100"], method: "device.detach_pasid",
                    answer: ["device": "sim0", "device_id": 4, "pasid": 100, "previous_hwpt": 10],
                    params: ["device": "sim0", "pasid": 100], expect: ["sim0 (device id 4) PASID 100 detached from HWPT 10"]),
        CommandCase(args: ["hwpt", "list"], method: "hwpt.list",
                    answer: ["hwpts": [["hwpt": 9, "owner": "vm1", "ioas": 2, "dirty_tracking": false, "nest_parent": false, "auto": false,
                                        "devices": ["sim0"], "viommus": [], "tracking": false, "pasid": true,
                                        "pasids": [["pasid": 100, "device": "sim0"]]]]],
                    params: [:], expect: ["pasid,pasid-100-of-sim0"]),
        CommandCase(args: ["owner", "release", "vm1"], method: "owner.release",
                    answer: ["name": "vm1", "released": true, "destroyed": ["pasid_attachment": 2, "hwpt": 1], "refunded_bytes": 0, "failures": []],
                    params: ["name": "vm1"], expect: ["owner vm1 released: destroyed 2 PASID attachments, 1 HWPT"]),
        // hwqueue3
        CommandCase(args: ["hwqueue", "alloc", "--viommu", "14", "--type", "selftest", "--index", "1", "--base", "0x101000", "--length", "4K"],
                    method: "hwqueue.alloc",
                    answer: ["hw_queue": 21, "owner": "vm1", "viommu": 14, "type": 0xdead_beef, "type_name": "selftest", "index": 1,
                             "base_address": 0x10_1000, "length": 4096, "ioas": 10],
                    params: ["viommu": 14, "type": "selftest", "index": 1, "base_address": 0x10_1000, "length": 4096],
                    expect: ["HW queue 21 allocated: index 1 of vIOMMU 14 (selftest) over 0x101000+0x1000, pinned in IOAS 10 until it is destroyed"]),
        CommandCase(args: ["hwqueue", "alloc", "--viommu", "14", "--type", "0xdeadbeef", "--base", "0x100000", "--length", "64"],
                    method: "hwqueue.alloc",
                    answer: ["hw_queue": 20, "owner": "vm1", "viommu": 14, "type": 0xdead_beef, "type_name": "selftest", "index": 0,
                             "base_address": 0x10_0000, "length": 64, "ioas": 10],
                    params: ["viommu": 14, "type": 0xdead_beef, "index": 0, "base_address": 0x10_0000, "length": 64],
                    expect: ["HW queue 20 allocated: index 0 of vIOMMU 14 (selftest) over 0x100000+0x40"]),
        CommandCase(args: ["owner", "info", "vm2"], method: "owner.info",
                    answer: ["name": "vm2", "identity": "libvirt", "creator_uid": 107,
                             "policy": ["tolerate_missing": false, "dirty": "off", "huge_pages": true],
                             "ioas": [10], "hwpts": [13], "viommus": [14], "vdevices": [], "devices": ["sim0"], "mappings": 1,
                             "pinned_bytes": 4096, "hw_queues": [20, 21]],
                    params: ["name": "vm2"], expect: ["viommus        14", "hw queues      20, 21"]),
        CommandCase(args: ["hwqueue", "destroy", "21"], method: "hwqueue.destroy", answer: ["hw_queue": 21], params: ["hw_queue": 21],
                    expect: ["HW queue 21 destroyed; its memory is unpinned"]),
        CommandCase(args: ["viommu", "list", "--owner", "vm1"], method: "viommu.list",
                    answer: ["viommus": [
                        ["viommu": 14, "owner": "vm1", "ioas": 10, "nest_parent": 13, "device": "sim0", "vdevices": [],
                         "hw_queues": [
                            ["hw_queue": 20, "owner": "vm1", "viommu": 14, "type": 0xdead_beef, "type_name": "selftest", "index": 0,
                             "base_address": 0x10_0000, "length": 4096, "ioas": 10],
                            ["hw_queue": 21, "owner": "vm1", "viommu": 14, "type": 0xdead_beef, "type_name": "selftest", "index": 1,
                             "base_address": 0x10_1000, "length": 4096, "ioas": 10],
                         ]],
                    ]], params: ["owner": "vm1"],
                    expect: ["VIOMMU  OWNER  IOAS  NEST PARENT  DEVICE  VDEVICES  HW QUEUES",
                             "20:0@0x100000+0x1000, 21:1@0x101000+0x1000"]),
        CommandCase(args: ["owner", "release", "vm2"], method: "owner.release",
                    answer: ["name": "vm2", "released": true, "destroyed": ["hw_queue": 2, "viommu": 1, "hwpt": 1], "refunded_bytes": 0, "failures": []],
                    params: ["name": "vm2"], expect: ["owner vm2 released: destroyed 2 HW queues, 1 vIOMMU, 1 HWPT"]),
        CommandCase(args: ["metrics"], method: "daemon.metrics", answer: ["text": "# TYPE iommufdd_owners gauge\niommufdd_owners 1\n"], params: nil,
                    expect: ["# TYPE iommufdd_owners gauge", "iommufdd_owners 1"]),
    ]

    @Test("human output", arguments: cases)
    func human(_ c: CommandCase) throws {
        let daemon = try FakeDaemon()
        daemon.answer(c.method, c.answer)
        let run = daemon.run(c.args)
        #expect(run.code == 0, "stderr: \(run.error)")
        #expect(daemon.params(of: c.method) == [c.params])
        let lines = run.output.split(separator: "\n").map(String.init)
        for expected in c.expect {
            #expect(lines.contains { $0.contains(expected) }, "missing \"\(expected)\" in:\n\(run.output)")
        }
    }

    @Test("--json prints the daemon's answer, pretty or compact", arguments: cases)
    func json(_ c: CommandCase) throws {
        let daemon = try FakeDaemon()
        daemon.answer(c.method, c.answer)
        let pretty = daemon.run(c.args + ["--json"])
        #expect(pretty.code == 0, "stderr: \(pretty.error)")
        #expect(try JSONValue.parse(pretty.output) == c.answer)
        #expect(pretty.output == JSONText.render(c.answer, compact: false))
        let compact = daemon.run(c.args + ["--compact"])
        #expect(compact.code == 0)
        #expect(compact.output == c.answer.description)
        #expect(!compact.output.contains("\n"))
    }
}
