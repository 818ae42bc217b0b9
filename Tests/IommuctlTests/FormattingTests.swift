import IommufdRPC
import Testing

@testable import IommuctlKit

@Suite("Units: sizes, addresses, percentages, durations")
struct UnitsTests {
    @Test("byte counts use binary units, exact multiples without a fraction")
    func bytes() {
        #expect(Units.bytes(0) == "0 B")
        #expect(Units.bytes(1023) == "1023 B")
        #expect(Units.bytes(1024) == "1 KiB")
        #expect(Units.bytes(1536) == "1.5 KiB")
        #expect(Units.bytes(4096) == "4 KiB")
        #expect(Units.bytes(2 << 20) == "2 MiB")
        #expect(Units.bytes(3 << 29) == "1.5 GiB")
        #expect(Units.bytes(1 << 40) == "1 TiB")
        #expect(Units.bytes(UInt64.max) == "15.9 EiB")
    }

    @Test("a size is rounded down, never shown larger than it is")
    func bytesRoundDown() {
        #expect(Units.bytes((1 << 20) - 1) == "1023.9 KiB")
        #expect(Units.bytes((1 << 30) + 1) == "1.0 GiB")
    }

    @Test("IOVAs print as lowercase hex, ranges inclusive")
    func hex() {
        #expect(Units.hex(0) == "0x0")
        #expect(Units.hex(0xDEAD_B000) == "0xdeadb000")
        #expect(Units.hexRange(iova: 0x10_0000, length: 0x10_0000) == "0x100000-0x1fffff")
        #expect(Units.hexRange(start: 0, last: UInt64.max) == "0x0-0xffffffffffffffff")
        #expect(Units.hexRange(iova: 0x1000, length: 0) == "0x1000")
    }

    @Test("percentages drop trailing zeros and never show a non-zero share as 0%")
    func percent() {
        #expect(Units.percent(0, of: 100) == "0%")
        #expect(Units.percent(1, of: 4) == "25%")
        #expect(Units.percent(1, of: 3) == "33.333%")
        #expect(Units.percent(100, of: 100) == "100%")
        #expect(Units.percent(3, of: 262_144) == "0.001%")
        #expect(Units.percent(1, of: 1 << 30) == "<0.001%")
        #expect(Units.percent(5, of: 0) == "0%")
        #expect(Units.percent(1, of: 8, digits: 1) == "12.5%")
    }

    @Test("durations")
    func duration() {
        #expect(Units.duration(seconds: 12) == "12s")
        #expect(Units.duration(seconds: 302) == "5m 02s")
        #expect(Units.duration(seconds: 3723) == "1h 02m 03s")
        #expect(Units.duration(seconds: 93_784) == "1d 02h 03m 04s")
    }

    @Test("sizes parse with binary suffixes and hex", arguments: [
        ("4096", UInt64(4096)), ("0x1000", 4096), ("4k", 4096), ("4K", 4096), ("4KiB", 4096), ("4kb", 4096),
        ("2M", 2 << 20), ("1G", 1 << 30), ("1T", 1 << 40), ("512B", 512), (" 8K ", 8192), ("0", 0),
    ])
    func parseBytes(text: String, value: UInt64) {
        #expect(Units.parseBytes(text) == value)
    }

    @Test("malformed or overflowing sizes are refused", arguments: ["", "K", "1.5G", "-1", "0xg", "12Q", "99999999999999999999", "17179869184G"])
    func parseBytesRefused(text: String) {
        #expect(Units.parseBytes(text) == nil)
    }
}

@Suite("Tables and field blocks")
struct TableTests {
    @Test("columns align, numbers right-aligned, empty cells are dashes, no trailing spaces")
    func aligned() {
        var t = Table([.init("name"), .init("size", .right), .init("note")])
        t.add("a", "4 KiB", "")
        t.add("longer", "1 GiB", "x")
        #expect(t.render() == """
            NAME     SIZE  NOTE
            a       4 KiB  -
            longer  1 GiB  x
            """)
    }

    @Test("an empty table prints its empty message, or just the header")
    func empty() {
        let t = Table("a", "b")
        #expect(t.render(empty: "nothing") == "nothing")
        #expect(t.render() == "A  B")
    }

    @Test("rows with missing cells are padded, extra cells dropped")
    func ragged() {
        var t = Table("a", "b")
        t.add(["1"])
        t.add(["1", "2", "3"])
        #expect(t.rows == [["1", "-"], ["1", "2"]])
    }

    @Test("field blocks align keys and indent continuation lines")
    func fields() {
        var f = Fields()
        f.add("ioas", "3")
        f.add("huge pages", "on\nsecond")
        f.addIfPresent("absent", nil)
        #expect(f.render() == "ioas        3\nhuge pages  on\n            second")
    }
}

@Suite("JSON output")
struct JSONTextTests {
    @Test("pretty JSON sorts keys and indents two spaces; compact is one line")
    func render() throws {
        let value = try JSONValue.parse(#"{"b":[1,{"d":null,"c":"x"}],"a":{},"e":[]}"#)
        #expect(JSONText.render(value, compact: false) == """
            {
              "a": {},
              "b": [
                1,
                {
                  "c": "x",
                  "d": null
                }
              ],
              "e": []
            }
            """)
        #expect(JSONText.render(value, compact: true) == #"{"a":{},"b":[1,{"c":"x","d":null}],"e":[]}"#)
    }

    @Test("pretty output parses back to the same value, u64 IOVAs exact")
    func roundTrip() throws {
        let value: JSONValue = ["iova": .uint(UInt64.max), "s": "tab\there \"q\"", "n": -5, "f": 1.5]
        #expect(try JSONValue.parse(JSONText.render(value, compact: false)) == value)
    }
}

@Suite("Words")
struct WordsTests {
    @Test("feature names in words, whatever their case style")
    func features() {
        #expect(Words.feature("dirtyTracking") == "dirty tracking")
        #expect(Words.feature("dirty_tracking") == "dirty tracking")
        #expect(Words.feature("ioasMapFile") == "map file")
        #expect(Words.feature("viommu") == "vIOMMU")
        #expect(Words.feature("somethingNew") == "something new")
    }

    @Test("daemon.info features in any of the shapes a daemon may send")
    func featureShapes() throws {
        let names: JSONValue = ["iommufd", "dirtyTracking"]
        #expect(Status.featureWords(names).present == ["iommufd", "dirty tracking"])
        let flags: JSONValue = ["viommu": true, "selftest": false]
        #expect(Status.featureWords(flags).present == ["vIOMMU"])
        #expect(Status.featureWords(flags).missing == ["selftest mocks"])
        let objects: JSONValue = [["name": "ioasMapFile", "supported": true, "since": "6.13"], ["name": "hwQueue", "supported": false, "since": "6.17"],
                                  ["name": "selftest", "supported": false, "since": "CONFIG_IOMMUFD_TEST"]]
        #expect(Status.featureWords(objects).present == ["map file"])
        #expect(Status.featureWords(objects).missing == ["HW queue (Linux 6.17)", "selftest mocks (CONFIG_IOMMUFD_TEST)"])
    }

    @Test("permissions, IOMMU types and counts")
    func misc() {
        #expect(Words.permissions(readable: true, writeable: false) == "r-")
        #expect(Words.permissions(readable: true, writeable: true) == "rw")
        #expect(Words.hwInfoType(2) == "ARM SMMUv3")
        #expect(Words.hwInfoType(0xfeed_beef) == "selftest mock")
        #expect(Words.hwInfoType(77) == "type 0x4d")
        #expect(Words.count(1, "HWPT") == "1 HWPT")
        #expect(Words.count(2, "HWPT") == "2 HWPTs")
        #expect(Words.ids([]) == "none")
    }
}
