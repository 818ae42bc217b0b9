#if canImport(Glibc)
import Glibc
#endif
import IommufdCore
import Testing

@testable import IommufdSim

/// The area index keeps areas packed (32 bytes, files by number): what goes in comes out whole,
/// files are shared by number and let go with their last area.
@Suite("Area index packing")
struct AreaIndexPackingTests {
    @Test func packedAreaIs32Bytes() {
        #expect(MemoryLayout<AreaIndex.PackedArea>.stride == 32)
    }

    @Test func areasComeBackWhole() {
        let a = SimFile(fd: dup(0)), b = SimFile(fd: dup(0))
        var index = AreaIndex()
        let areas = [
            SimArea(iova: 0x1000, last: 0x1fff, pages: SimPages(backing: .user(address: 0x7f12_3456_7001), writable: false), readable: true, writeable: false),
            SimArea(iova: 0x3000, last: 0x4fff, pages: SimPages(backing: .file(a, offset: 0x10_0000), writable: true), readable: false, writeable: true),
            SimArea(iova: 0x8000, last: 0x8fff, pages: SimPages(backing: .file(b, offset: 3), writable: true), readable: true, writeable: true),
            SimArea(iova: 0x9000, last: 0x9fff, pages: SimPages(backing: .file(a, offset: 0x2000), writable: false), readable: true, writeable: false),
        ]
        for area in areas.reversed() { index.insert(area) }
        #expect(index.internedFiles == 2)
        var back: [SimArea] = []
        index.forEach { back.append($0); return true }
        #expect(back.count == areas.count)
        for (got, want) in zip(back, areas) {
            #expect(got.iova == want.iova && got.last == want.last)
            #expect(got.readable == want.readable && got.writeable == want.writeable)
            #expect(got.pages.writable == want.pages.writable)
            switch (got.pages.backing, want.pages.backing) {
            case (.user(let x), .user(let y)): #expect(x == y)
            case (.file(let f, let x), .file(let g, let y)): #expect(f === g && x == y)
            default: Issue.record("backing of the area at \(want.iova) changed kind")
            }
        }
        // File a is let go only with its last area; its number is then taken by the next file.
        index.remove(at: index.floor(0x3000)!)
        #expect(index.internedFiles == 2)
        index.remove(at: index.floor(0x9000)!)
        #expect(index.internedFiles == 1)
        let c = SimFile(fd: dup(0))
        index.insert(SimArea(iova: 0x20000, last: 0x20fff, pages: SimPages(backing: .file(c, offset: 0), writable: true), readable: true, writeable: true))
        #expect(index.internedFiles == 2)
        if case .file(let f, _) = index.area(containing: 0x20000)?.pages.backing { #expect(f === c) } else { Issue.record("area at 0x20000 lost its file") }
        if case .file(let f, _) = index.area(containing: 0x8000)?.pages.backing { #expect(f === b) } else { Issue.record("area at 0x8000 lost its file") }
        index.removeAll()
        #expect(index.internedFiles == 0 && index.isEmpty)
    }

    @Test func theLastAreaOfAFileClosesIt() {
        var index = AreaIndex()
        weak var weakFile: SimFile?
        do {
            let file = SimFile(fd: dup(0))
            weakFile = file
            index.insert(SimArea(iova: 0x1000, last: 0x1fff, pages: SimPages(backing: .file(file, offset: 0), writable: true), readable: true, writeable: true))
            index.insert(SimArea(iova: 0x2000, last: 0x2fff, pages: SimPages(backing: .file(file, offset: 0x1000), writable: true), readable: true, writeable: true))
        }
        #expect(weakFile != nil)
        index.remove(at: index.floor(0x1000)!)
        #expect(weakFile != nil)
        index.remove(at: index.floor(0x2000)!)
        #expect(weakFile == nil)
    }
}
