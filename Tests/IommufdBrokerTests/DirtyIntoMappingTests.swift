#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

/// `dirty.read` `into` a memfd that takes seals: the daemon seals it against shrinking, keeps it
/// mapped between reads and has the bits set straight into it; other memfds go through pwrite.
@Suite("Dirty harvest: the client's bitmap memfd kept mapped")
struct DirtyIntoMappingTests {
    static let base: UInt64 = 0x100_0000
    static let fGetSeals: Int32 = 1034
    static let fSealShrink: Int32 = 0x2

    func setUp(_ f: Fixture, pages: UInt64 = 256) throws -> (ioas: ObjectID, hwpt: ObjectID) {
        // Manager B: no quota (A's would not take 256 pages).
        let ioas = try f.ownerWithIOAS(as: f.b)
        let fd = try memfd(pages: pages)
        defer { close(fd) }
        _ = try f.broker.ioasMap(f.b, IOASMapParams(ioas: ioas, length: pages * page, iova: Self.base), fd: fd)
        let r = try f.broker.deviceAttach(f.b, DeviceAttachParams(owner: "vm-1", device: "sim0", ioas: ioas, dirty: .required))
        _ = try f.broker.dirtyStart(f.b, DirtyParams(ioas: ioas))
        return (ioas, r.pt)
    }

    func sealableMemfd(bytes: Int) throws -> Int32 {
        let fd = try Memfd.create(name: "into-test", allowSealing: true)
        try #require(ftruncate(fd, off_t(bytes)) == 0)
        return fd
    }

    func words(_ fd: Int32, _ count: Int) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count * 8, 0) }
        return out
    }

    func dirty(_ f: Fixture, _ hwpt: ObjectID, pages: [UInt64]) throws {
        for p in pages { try f.sim.simulateDeviceWrite(hwpt: hwpt, iova: Self.base + p * page, length: page, pageSize: page) }
    }

    func read(_ f: Fixture, _ ioas: ObjectID, into fd: Int32, clear: Bool = true) throws -> DirtyReadResult {
        try f.broker.dirtyRead(f.b, DirtyReadParams(ioas: ioas, iova: Self.base, length: 256 * page, clear: clear, format: .bitmap), into: fd).result
    }

    @Test func aSealableMemfdIsSealedKeptMappedAndHoldsEachReadsBitmapOnly() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f)
        let into = try sealableMemfd(bytes: 64)  // 256 pages: 4 words, the file larger than the bitmap
        defer { close(into) }
        // Garbage in the file before the first read: the read leaves only its own bits.
        var junk = [UInt64](repeating: .max, count: 8)
        _ = junk.withUnsafeMutableBytes { pwrite(into, $0.baseAddress, 64, 0) }
        try dirty(f, hwpt, pages: [0, 70, 255])
        let first = try read(f, ioas, into: into)
        #expect(first.dirtyPages == 3 && first.bitmapBytes == 32)
        #expect(words(into, 4) == [1, 1 << 6, 0, 1 << 63])
        #expect(words(into, 8)[4...] == [.max, .max, .max, .max])  // past the bitmap: untouched
        #expect(fcntl(into, Self.fGetSeals) & Self.fSealShrink != 0)
        #expect(ftruncate(into, 8) != 0)  // cannot shrink under the daemon's mapping
        let owner = try #require(f.broker.readLocked { f.broker.owners["vm-1"] })
        #expect(owner.dirtyScratch.into.isMapped)
        // The next read: the previous bits are gone, the new ones there.
        try dirty(f, hwpt, pages: [1])
        let second = try read(f, ioas, into: into)
        #expect(second.dirtyPages == 1 && words(into, 4) == [2, 0, 0, 0])
        // NO_CLEAR twice gives the same bitmap.
        try dirty(f, hwpt, pages: [128])
        #expect(try read(f, ioas, into: into, clear: false).dirtyPages == 1)
        #expect(try read(f, ioas, into: into, clear: false).dirtyPages == 1 && words(into, 4) == [0, 0, 1, 0])
        // Another memfd: mapped instead of the first.
        let other = try sealableMemfd(bytes: 32)
        defer { close(other) }
        #expect(try read(f, ioas, into: other).dirtyPages == 1 && words(other, 4) == [0, 0, 1, 0])
        #expect(words(into, 4) == [0, 0, 1, 0])  // the first file no longer written
        // dirty.stop lets the mapping go.
        _ = try f.broker.dirtyStop(f.b, DirtyParams(ioas: ioas))
        #expect(!owner.dirtyScratch.into.isMapped)
    }

    @Test func aMemfdThatTakesNoSealsIsWrittenWithPwriteAndGivesTheSameBitmaps() throws {
        let f = try Fixture()
        let (ioas, hwpt) = try setUp(f)
        let plain = try memfd(pages: 1)  // MFD_CLOEXEC only: F_SEAL_SEAL is set
        defer { close(plain) }
        try dirty(f, hwpt, pages: [3, 64])
        #expect(try read(f, ioas, into: plain).dirtyPages == 2 && words(plain, 4) == [8, 1, 0, 0])
        let owner = try #require(f.broker.readLocked { f.broker.owners["vm-1"] })
        #expect(!owner.dirtyScratch.into.isMapped)
        #expect(ftruncate(plain, 4096 + 8) == 0 && ftruncate(plain, 4096) == 0)  // not sealed: may still shrink
        // The scratch was left clean by the pwrite path: the next read has only its own bits.
        try dirty(f, hwpt, pages: [200])
        #expect(try read(f, ioas, into: plain).dirtyPages == 1 && words(plain, 4) == [0, 0, 0, 1 << 8])
        // A write-only fd of a sealable memfd cannot be mapped: pwrite too.
        let sealable = try sealableMemfd(bytes: 32)
        defer { close(sealable) }
        let writeOnly = open("/proc/self/fd/\(sealable)", O_WRONLY)
        try #require(writeOnly >= 0)
        defer { close(writeOnly) }
        try dirty(f, hwpt, pages: [5])
        #expect(try read(f, ioas, into: writeOnly).dirtyPages == 1 && words(sealable, 4) == [32, 0, 0, 0])
        #expect(!owner.dirtyScratch.into.isMapped)
    }
}
