#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IommufdContract
import IommufdChannel
import IommufdCore
import IommufdSim
import Logging

// MARK: Figure 7: the VMM channel (issue 16, target 2)

/// A `SOCK_SEQPACKET` pair whose far end a thread answers packet for packet: the floor of a
/// channel round trip (the same socket type, one thread, no decoding and no broker).
final class SeqpacketEcho: @unchecked Sendable {
    let fd: Int32
    private let far: Int32

    init() throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw BenchError.errno("socketpair(SOCK_SEQPACKET)")
        }
        fd = pair[0]
        far = pair[1]
        let thread = Thread { [far] in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            buffer.withUnsafeMutableBytes { raw in
                while true {
                    let n = recv(far, raw.baseAddress!, raw.count, 0)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    _ = send(far, raw.baseAddress!, n, 0)
                }
            }
            close(far)
        }
        thread.stackSize = 1 << 18
        thread.start()
    }

    /// One packet there and back; `reply` bytes come back (the echo answers what it got).
    func roundTrip(_ packet: [UInt8], into reply: UnsafeMutableRawBufferPointer) throws {
        let sent = packet.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, 0) }
        guard sent == packet.count else { throw BenchError.errno("send on the echo pair") }
        guard recv(fd, reply.baseAddress!, reply.count, 0) > 0 else { throw BenchError.errno("recv on the echo pair") }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

/// A packet the size of a channel request of `entries` MAP entries (header + count + 40 B each).
func channelSizedPacket(entries: Int) -> [UInt8] {
    [UInt8](repeating: 0x5A, count: ChannelWire.headerSize + 8 + entries * 40)
}

func figureChannel(_ report: Report, _ options: Options) throws {
    print("Figure 7: the VMM channel (SOCK_SEQPACKET, owner.delegate) against an echo over a SOCK_SEQPACKET pair + the backend call")
    let bench = try BenchChannel(socket: "channel", owner: "vm-channel")
    defer { bench.close() }
    let (client, ioas) = (bench.client, bench.ioas)
    let memfd = try makeMemfd(size: 64 * mib)
    defer { close(memfd) }
    try client.register(index: 0, memfd: memfd)

    let n = options.iterations(20_000)
    let iova: UInt64 = 1 << 32
    let one = [ChannelClient.MapSpec(ioas: ioas, memIndex: 0, offset: 0, length: 4 * kib, iova: iova)]
    let unmapOne = [(ioas: ioas, iova: iova, length: 4 * kib, flags: UInt32(0))]
    var map = Samples()
    var unmap = Samples()
    for i in 0..<(n + 500) {
        let t0 = now()
        _ = try client.map(one)
        let t1 = now()
        _ = try client.unmap(unmapOne)
        let t2 = now()
        if i >= 500 {
            map.add(t1 - t0)
            unmap.add(t2 - t1)
        }
    }

    // Floors: the echo of a packet of the request's size, and the simulator called directly.
    let echo = try SeqpacketEcho()
    defer { echo.stop() }
    let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    defer { reply.deallocate() }
    let small = channelSizedPacket(entries: 1)
    let echoOne = try measure(iterations: n, warmup: 500) { try echo.roundTrip(small, into: reply) }
    let floorSim = try SimBackend()
    let floorIOAS = try floorSim.allocIOAS()
    let direct = try backendMapUnmap(floorSim, ioas: floorIOAS, memfd: memfd, iova: iova, length: 4 * kib, iterations: n)
    report.add(Row(figure: "echo over a SOCK_SEQPACKET pair, \(small.count) B", value: "median \(formatNanos(echoOne.median))", floor: "-", ratio: nil, target: .none, met: nil))
    report.latency("channel MAP 4 KiB, 1 entry", map, floor: echoOne.median + direct.map.median,
                   floorName: "(echo + sim \(formatNanos(direct.map.median)))", target: .ratioAtMost(2), p99: true)
    report.latency("channel UNMAP 4 KiB, 1 entry", unmap, floor: echoOne.median + direct.unmap.median,
                   floorName: "(echo + sim \(formatNanos(direct.unmap.median)))", target: .ratioAtMost(2), p99: true)

    // Batches of 256 entries a message (the channel's largest), 4 KiB each at distinct IOVAs;
    // then the same through a second broker that journals as the daemon does (into a memfd;
    // the fd store keeps nothing), closed again before the floors are measured.
    let batch = ChannelWire.maxEntries
    let rounds = options.iterations(2_000)
    var batchMap = Samples(), batchUnmap = Samples()
    var journaledMap = Samples(), journaledUnmap = Samples()
    for i in 0..<(rounds + 20) {
        let (m, u) = try channelBatchRound(client, ioas: ioas, iova: iova, entries: batch)
        if i >= 20 {
            batchMap.add(m)
            batchUnmap.add(u)
        }
    }
    do {
        let journaled = try BenchChannel(socket: "channel-journaled", owner: "vm-journaled", journaled: true)
        defer { journaled.close() }
        try journaled.client.register(index: 0, memfd: memfd)
        for i in 0..<(rounds + 20) {
            let (m, u) = try channelBatchRound(journaled.client, ioas: journaled.ioas, iova: iova, entries: batch)
            if i >= 20 {
                journaledMap.add(m)
                journaledUnmap.add(u)
            }
        }
    }
    let large = channelSizedPacket(entries: batch)
    let echoLarge = try measure(iterations: rounds, warmup: 20) { try echo.roundTrip(large, into: reply) }
    var directMap = Samples()
    var directUnmap = Samples()
    for i in 0..<(rounds + 20) {
        let t0 = now()
        for e in 0..<batch {
            _ = try floorSim.map(ioas: floorIOAS, source: .file(fd: memfd, offset: UInt64(e) * 4 * kib), length: 4 * kib,
                                 iova: iova + UInt64(e) * 4 * kib, flags: [.fixedIOVA, .readable, .writeable])
        }
        let t1 = now()
        for e in 0..<batch { _ = try floorSim.unmap(ioas: floorIOAS, iova: iova + UInt64(e) * 4 * kib, length: 4 * kib) }
        let t2 = now()
        if i >= 20 {
            directMap.add(t1 - t0)
            directUnmap.add(t2 - t1)
        }
    }
    for (name, got, sim, how) in [
        ("MAP", batchMap, directMap, ""), ("UNMAP", batchUnmap, directUnmap, ""),
        ("MAP", journaledMap, directMap, ", broker journaling"), ("UNMAP", journaledUnmap, directUnmap, ", broker journaling"),
    ] {
        let rate = Double(batch) / got.median * 1e9
        let floorTime = sim.median + echoLarge.median
        let floorRate = Double(batch) / floorTime * 1e9
        report.add(Row(
            figure: "channel \(name) batches of \(batch) x 4 KiB\(how)", value: "\(Int(rate)) entries/s (median \(formatNanos(got.median)) a message)",
            floor: "\(Int(floorRate)) entries/s (echo \(formatNanos(echoLarge.median)) + \(batch) sim calls \(formatNanos(sim.median)))",
            ratio: floorRate / rate, target: .ratioAtMost(2), met: floorRate / rate <= 2))
    }
}

/// One MAP of `entries` x 4 KiB at consecutive IOVAs from `iova`, then their UNMAP, timed apart.
func channelBatchRound(_ client: ChannelClient, ioas: UInt32, iova: UInt64, entries: Int) throws -> (map: UInt64, unmap: UInt64) {
    let specs = (0..<entries).map { i in
        ChannelClient.MapSpec(ioas: ioas, memIndex: 0, offset: UInt64(i) * 4 * kib, length: 4 * kib, iova: iova + UInt64(i) * 4 * kib)
    }
    let unmaps = (0..<entries).map { i in (ioas: ioas, iova: iova + UInt64(i) * 4 * kib, length: 4 * kib, flags: UInt32(0)) }
    let t0 = now()
    _ = try client.map(specs)
    let t1 = now()
    _ = try client.unmap(unmaps)
    let t2 = now()
    return (t1 - t0, t2 - t1)
}

/// An in-process daemon with one owner, its IOAS and a channel delegated to the owner: the
/// set-up of figure 7 (MAP and UNMAP; again through a second broker that journals every request
/// as the daemon's does, into a memfd) and figure 7b (INVALIDATE: sim0 attached to the IOAS and
/// a nest-parent HWPT for it). `close()` hangs up, revokes and stops the daemon.
final class BenchChannel {
    let daemon: InProcessDaemon
    let channels: ChannelServer
    let client: ChannelClient
    let owner: String
    let ioas: UInt32
    /// The nest-parent HWPT for sim0 with `nestParent`, else 0.
    let parent: UInt32

    init(socket: String, owner: String, journaled: Bool = false, nestParent: Bool = false) throws {
        let daemon = try InProcessDaemon(path: temporarySocketPath(socket))
        var logger = Logger(label: "bench.channel")
        logger.logLevel = .error
        let channels = ChannelServer(broker: daemon.broker, logger: logger)
        do {
            if journaled { try daemon.journalInMemfd() }
            let broker = daemon.broker
            guard let caller = broker.resolve(uid: getuid(), gid: getgid(), pid: getpid()) else { throw BenchError("no caller") }
            _ = try broker.ownerCreate(caller, OwnerCreateParams(name: owner))
            ioas = try broker.ioasCreate(caller, IOASCreateParams(owner: owner)).ioas
            if nestParent {
                _ = try broker.deviceAttach(caller, DeviceAttachParams(owner: owner, device: "sim0", ioas: ioas))
                parent = try broker.hwptAlloc(caller, HWPTAllocParams(ioas: ioas, device: "sim0", nestParent: true)).hwpt
            } else {
                parent = 0
            }
            let (_, end) = try channels.delegate(caller, owner: owner)
            client = ChannelClient(adopting: end)
        } catch {
            daemon.stop()
            throw error
        }
        self.daemon = daemon
        self.channels = channels
        self.owner = owner
    }

    func close() {
        client.close()
        channels.revoke(owner: owner)
        // A channel holds its server unowned: keep the server until the channel has closed.
        while channels.openChannels > 0 { usleep(1000) }
        usleep(10_000)
        withExtendedLifetime(channels) {}
        daemon.stop()
    }
}
