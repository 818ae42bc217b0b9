import Foundation
import IommufdCore
import Testing

@testable import IommufdSim

/// What the conformance cases cannot show of the simulator's HW queues: that the persistent
/// simulator's log brings a queue back (its pin still blocks unmap), and the one rule where the
/// simulator decides without a kernel counterpart to compare (physical contiguity).
@Suite("Sim HW queues")
struct SimHWQueueTests {
    let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
    let iova: UInt64 = 0x4000_0000

    /// The errno `body` fails with (nil when it succeeds or throws something else).
    func failure(_ body: () throws -> Any) -> Errno? {
        do {
            _ = try body()
            return nil
        } catch let error as IommuError {
            return error.errno
        } catch {
            return nil
        }
    }

    func memfd(_ pages: Int) throws -> Int32 {
        var template = Array("/tmp/hwqueue-test-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        try #require(ftruncate(fd, off_t(pages) * off_t(page)) == 0)
        return fd
    }

    /// A mock vIOMMU over a nest parent of `sim0` in a new IOAS, with two one-page mappings at
    /// `iova` and `iova + page`.
    func setUp(_ b: any IommuBackend, memory: Int32) throws -> (ioas: ObjectID, viommu: ObjectID) {
        let device = try #require(try b.discoverDevices().first { $0.name == "sim0" })
        let bound = try b.bind(device)
        let ioas = try b.allocIOAS()
        let parent = try b.allocHWPT(deviceID: bound.id, ptID: ioas, flags: .nestParent)
        let viommu = try b.allocVIOMMU(deviceID: bound.id, hwpt: parent, type: VIOMMUType.selftest)
        for i in 0..<2 {
            _ = try b.map(ioas: ioas, source: .file(fd: memory, offset: UInt64(i) * page), length: page, iova: iova + UInt64(i) * page, flags: [.readable, .writeable, .fixedIOVA])
        }
        return (ioas, viommu)
    }

    @Test("a HW queue comes back from the persistent simulator's log, and its pin with it")
    func replay() throws {
        let memory = try memfd(2)
        defer { close(memory) }
        let first = try PersistentSimBackend(SimBackend())
        let (ioas, viommu) = try setUp(first, memory: memory)
        let queue = try first.allocHWQueue(viommu: viommu, type: HWQueueType.selftest, index: 0, baseAddress: iova, length: page)

        var report = PersistentSimBackend.ReplayReport()
        let second = try PersistentSimBackend(SimBackend(), adopting: first.log.fd, resolveFile: { _, _ in memory }, report: &report)
        #expect(report.problems.isEmpty)
        #expect(failure { try second.unmap(ioas: ioas, iova: iova, length: page) } == .EBUSY)
        do {
            _ = try second.unmap(ioas: ioas, iova: 0, length: .max)
            Issue.record("unmap-all succeeded over a HW queue's pinned page")
        } catch let error as IommuError {
            #expect(error.errno == .EBUSY)
            #expect("\(error)".contains("pinned by a HW queue"), "the error does not say why: \(error)")
        }
        #expect(failure { try second.destroy(viommu) } == .EBUSY)
        #expect(failure { try second.allocHWQueue(viommu: viommu, type: HWQueueType.selftest, index: 0, baseAddress: iova, length: page) } == .EEXIST)
        try second.destroy(queue)
        #expect(try second.unmap(ioas: ioas, iova: iova, length: page) == page)
        try second.destroy(viommu)
    }

    @Test("a queue over more than one page is EFAULT: the simulator has no physically contiguous memory")
    func multiPageIsEFAULT() throws {
        let memory = try memfd(2)
        defer { close(memory) }
        let sim = try SimBackend()
        let (ioas, viommu) = try setUp(sim, memory: memory)
        #expect(failure { try sim.allocHWQueue(viommu: viommu, type: HWQueueType.selftest, index: 0, baseAddress: iova, length: 2 * page) } == .EFAULT)
        #expect(failure { try sim.allocHWQueue(viommu: viommu, type: HWQueueType.selftest, index: 0, baseAddress: iova + page / 2, length: page) } == .EFAULT)
        // Nothing stays pinned by a refused queue.
        #expect(try sim.unmap(ioas: ioas, iova: iova, length: 2 * page) == 2 * page)
    }
}
