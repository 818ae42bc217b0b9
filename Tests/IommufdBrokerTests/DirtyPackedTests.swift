import Foundation
import IommufdCore
import IommufdSim
import Testing

@testable import IommufdBroker
import IommufdContract

@Suite("Dirty harvest: packed runs and a bitmap memfd supplied by the client")
struct DirtyPackedTests {
    static let base: UInt64 = 0x100_0000

    func setUp(_ f: Fixture, pages: UInt64 = 64) throws -> (ioas: ObjectID, hwpt: ObjectID) {
        let ioas = try f.ownerWithIOAS()
        let fd = try memfd(pages: pages)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.a, IOASMapParams(ioas: ioas, length: pages * page, iova: Self.base), fd: fd)
        let r = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        _ = try f.broker.dirtyStart(f.a, DirtyParams(ioas: ioas))
        return (ioas, r.pt)
    }

    @Test("packed_runs answers the same runs as runs, and clears the same way")
    func packedMatchesRuns() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f, pages: 64)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let p = UInt64.random(in: 0..<64, using: &rng)
            try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + p * page, length: page, pageSize: page)
        }
        let plain = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, clear: false))
        let packed = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, format: .packedRuns))
        #expect(packed.result.runs == nil && packed.fds.isEmpty && packed.result.format == .packedRuns)
        let string = try #require(packed.result.packedRuns)
        let runs = try #require(DirtyRunPacking.unpack(string, base: Self.base, pageSize: page))
        #expect(runs == plain.result.runs)
        #expect(packed.result.runCount == runs.count && packed.result.dirtyPages == plain.result.dirtyPages)
        #expect(!runs.isEmpty && packed.result.cleared)
        let after = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, format: .packedRuns))
        #expect(after.result.runCount == 0 && after.result.packedRuns == "")
    }

    @Test("packing round-trips runs with gaps and lengths of every varint size, and rejects garbage")
    func packingRoundTrip() {
        let pageSize: UInt64 = 4096
        var runs: [DirtyRun] = []
        var at: UInt64 = 1 << 40
        for (gap, length) in [(0, 1), (1, 127), (128, 128), (16_383, 16_384), (1 << 21, 1 << 28), (1 << 35, 3)] as [(UInt64, UInt64)] {
            at += gap * pageSize
            runs.append(DirtyRun(iova: at, length: length * pageSize))
            at += length * pageSize
        }
        for count in 0...runs.count {  // every base64 padding case
            let some = Array(runs.prefix(count))
            let packed = DirtyRunPacking.pack(some, base: 1 << 40, pageSize: pageSize)
            #expect(packed.utf8.count % 4 == 0)
            #expect(DirtyRunPacking.unpack(packed, base: 1 << 40, pageSize: pageSize) == some)
        }
        // The documented layout: one run of 2 pages starting 1 page after base is [1, 2] -> "AQI=".
        #expect(DirtyRunPacking.pack([DirtyRun(iova: 4096, length: 8192)], base: 0, pageSize: 4096) == "AQI=")
        #expect(DirtyRunPacking.unpack("AQI", base: 0, pageSize: 4096) == nil)
        #expect(DirtyRunPacking.unpack("A*I=", base: 0, pageSize: 4096) == nil)
        #expect(DirtyRunPacking.unpack("gA==", base: 0, pageSize: 4096) == nil)  // a varint cut short
    }

    @Test("a bitmap read into the client's memfd writes the bitmap there and answers no fd")
    func bitmapIntoMemfd() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f)
        try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + 63 * page, length: page, pageSize: page)
        let target = try memfd(pages: 1)
        defer { close(target) }
        try Broker.checkBitmapMemfd(target)
        let out = try f.broker.dirtyRead(f.a, DirtyReadParams(ioas: ioas, iova: Self.base, length: 64 * page, format: .bitmap), into: target)
        #expect(out.fds.isEmpty && out.result.bitmap == nil && out.result.bitmapBytes == 8 && out.result.dirtyPages == 1)
        var word: UInt64 = 0
        #expect(pread(target, &word, 8, 0) == 8)
        #expect(word == UInt64(1) << 63)
    }

    @Test("only a writable memfd is taken as the bitmap file")
    func bitmapFileMustBeAWritableMemfd() throws {
        // A regular file on disk (not tmpfs/hugetlbfs): refused, whatever its size.
        var template = Array("/var/tmp/iommufdd-into-XXXXXX".utf8CString)
        let disk = mkstemp(&template)
        try #require(disk >= 0)
        defer { close(disk); unlink(String(cString: template)) }
        if fcntl(disk, 1034) < 0 {  // F_GET_SEALS: not on tmpfs
            expectBrokerError(.invalidParams) { try Broker.checkBitmapMemfd(disk) }
        }
        // A pipe: refused.
        var pipeFDs: [Int32] = [-1, -1]
        try #require(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        expectBrokerError(.invalidParams) { try Broker.checkBitmapMemfd(pipeFDs[0]) }
        // A memfd opened read-only (through /proc): refused.
        let writable = try memfd(pages: 1)
        defer { close(writable) }
        let readOnly = open("/proc/self/fd/\(writable)", O_RDONLY)
        try #require(readOnly >= 0)
        defer { close(readOnly) }
        expectBrokerError(.invalidParams) { try Broker.checkBitmapMemfd(readOnly) }
        try Broker.checkBitmapMemfd(writable)
    }
}
