import Foundation
import IommufdCore
import Testing

@testable import IommufdSim

/// `[sim] pin_ns_per_page`: the simulator takes the kernel's pinning time where Linux pins at
/// map time. Only lower bounds are checked (a sleep lasts at least what it was asked), never how
/// fast anything is.
@Suite("Simulated pinning cost")
struct SimPinCostTests {
    let page: UInt64 = 4096

    func elapsed(_ body: () throws -> Void) rethrows -> UInt64 {
        let start = monotonicNanoseconds()
        try body()
        return monotonicNanoseconds() &- start
    }

    @Test func mapIntoAnIOASWithADomainTakesThePinningTime() throws {
        let perPage: UInt64 = 2_000_000
        let backend = try SimBackend(pinNanosecondsPerPage: perPage)
        let device = try backend.bind(try #require(try backend.discoverDevices().first { $0.kind == .simulated }))
        let file = try SharedFile(size: 1 << 20)
        let ioas = try backend.allocIOAS()
        try backend.attach(deviceID: device.id, to: ioas)
        let pages: UInt64 = 8
        let took = try elapsed {
            _ = try backend.map(ioas: ioas, source: .file(fd: file.fd, offset: 0), length: pages * page, iova: 0x10_0000, flags: [.fixedIOVA, .readWrite])
        }
        #expect(took >= pages * perPage, "8 pages at 2 ms each were pinned in \(took) ns")

        // A copy into a second IOAS with a domain, from an IOAS whose pages are pinned, pins
        // nothing more; from one without a domain it pins.
        let unattached = try backend.allocIOAS()
        _ = try backend.map(ioas: unattached, source: .file(fd: file.fd, offset: 0), length: pages * page, iova: 0x10_0000, flags: [.fixedIOVA, .readWrite])
        let tookCopy = try elapsed {
            _ = try backend.copy(dst: ioas, src: unattached, srcIOVA: 0x10_0000, length: pages * page, dstIOVA: 0x20_0000, flags: [.fixedIOVA, .readWrite])
        }
        #expect(tookCopy >= pages * perPage, "a copy from an IOAS without a domain pins: \(tookCopy) ns")
    }

    @Test func defaultIsNoPinningCostAndTheKnobIsKept() throws {
        #expect(try SimBackend().pinNanosecondsPerPage == 0)
        #expect(try SimBackend(pinNanosecondsPerPage: 950).pinNanosecondsPerPage == 950)
    }
}
