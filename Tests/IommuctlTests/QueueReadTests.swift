import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

@testable import IommuctlKit

// MARK: i14audit

@Suite("iommuctl queue read and watch: queue records as lines and JSON")
struct QueueReadFormatTests {
    static func info(kind: String, type: UInt32? = nil) -> QueueInfo {
        QueueInfo(
            queue: 18, owner: "vm3", kind: kind, viommu: kind == "fault" ? nil : 14, type: type, depth: kind == "fault" ? nil : 64,
            hwpts: [], connected: true, relayed: 0, undelivered: 0, lostEvents: 0, awaitingResponse: 0)
    }

    @Test("a selftest vEVENT: sequence, flags, data, and the virtual ID it carries")
    func selftestEvent() throws {
        let record = VEvent(flags: 0, sequence: 5, data: [0x20, 0, 0, 0]).bytes
        let lines = try QueueRead.render(record, info: Self.info(kind: "veventq", type: VEventQueueType.selftest), json: false)
        #expect(lines == ["vEVENTQ 18: event 5: flags 0x0, 4 bytes 20000000 (selftest: virtual ID 0x20)"])
        let json = try QueueRead.render(record, info: Self.info(kind: "veventq", type: VEventQueueType.selftest), json: true)
        #expect(json == [#"{"data":"20000000","flags":0,"kind":"veventq","lost_events":false,"queue":18,"sequence":5}"#])
    }

    @Test("an SMMUv3 event is its 32 bytes in hex; a lost-events header says events were lost")
    func smmuAndLost() throws {
        let smmu = VEvent(flags: 0, sequence: 1, data: Array(0..<32)).bytes
        let line = try QueueRead.render(smmu, info: Self.info(kind: "veventq", type: VEventQueueType.armSMMUv3), json: false)
        #expect(line == ["vEVENTQ 18: event 1: flags 0x0, 32 bytes 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"])
        let lost = VEvent(flags: EventQueueABI.lostEventsFlag, sequence: 9, data: []).bytes
        #expect(
            try QueueRead.render(lost, info: Self.info(kind: "veventq", type: VEventQueueType.selftest), json: false)
                == ["vEVENTQ 18: events lost before sequence 9 (the kernel queue overflowed: more than its depth unread)"])
        #expect(
            try QueueRead.render(lost, info: Self.info(kind: "veventq", type: VEventQueueType.selftest), json: true)
                == [#"{"data":"","flags":1,"kind":"veventq","lost_events":true,"queue":18,"sequence":9}"#])
    }

    @Test("page faults: one line (or JSON object) per struct iommu_hwpt_pgfault of the message")
    func faults() throws {
        let first = PageFault(flags: PageFault.pasidValid, deviceID: 11, pasid: 7, groupID: 2, perm: 3, address: 0xdead_b000, cookie: 4)
        let last = PageFault(flags: PageFault.lastPage, deviceID: 11, pasid: 0, groupID: 2, perm: 1, address: 0xbeef_0000, cookie: 5)
        let lines = try QueueRead.render(first.bytes + last.bytes, info: Self.info(kind: "fault"), json: false)
        #expect(lines == [
            "fault queue 18: fault of device id 11, PASID 7, group 2, read-write at 0xdeadb000, cookie 4",
            "fault queue 18: fault of device id 11, no PASID, group 2, read at 0xbeef0000, cookie 5, last page of its group",
        ])
        let json = try QueueRead.render(last.bytes, info: Self.info(kind: "fault"), json: true)
        #expect(json == [#"{"address":3203334144,"cookie":5,"device_id":11,"flags":2,"group":2,"kind":"fault","last_page":true,"pasid":0,"perm":1,"queue":18}"#])
    }

    @Test("a record that is not whole is an error, not a made-up line")
    func truncated() {
        #expect(throws: CtlError.self) { try QueueRead.render([1, 2, 3], info: Self.info(kind: "veventq", type: VEventQueueType.selftest), json: false) }
        #expect(throws: CtlError.self) { try QueueRead.render(Array(repeating: 0, count: 41), info: Self.info(kind: "fault"), json: false) }
    }

    @Test("watch: event.queue and event.dmabuf_revoked as sentences")
    func watchSentences() {
        #expect(
            Watch.render(method: "event.queue", params: ["owner": "vm3", "queue": 18, "kind": "veventq", "sequence": 0, "flags": 0, "lost_events": false, "data": "20000000"])
                == "vm3: vEVENTQ 18: event 0, 4 bytes 20000000")
        #expect(
            Watch.render(method: "event.queue", params: ["owner": "vm3", "queue": 18, "kind": "veventq", "sequence": 3, "flags": 1, "lost_events": true, "data": ""])
                == "vm3: vEVENTQ 18: events lost before sequence 3 (the kernel queue overflowed)")
        #expect(
            Watch.render(method: "event.queue", params: [
                "owner": "vm3", "queue": 16, "kind": "fault", "device": "sim-pci3", "device_id": 11, "pasid": 0, "group": 1,
                "perm": 2, "address": 0x1000, "cookie": 1, "flags": 2, "last_page": true,
            ]) == "vm3: fault queue 16: sim-pci3 faulted (no PASID, group 1, write at 0x1000, cookie 1)")
        #expect(
            Watch.render(method: "event.dmabuf_revoked", params: ["owner": "vm1", "ioas": 2, "iova": 0x10_0000, "length": 0x1000])
                == "vm1: the exporter revoked the dma-buf mapped at IOVA 0x100000-0x100fff of IOAS 2 (it stays dead until unmapped and mapped again)")
    }
}
