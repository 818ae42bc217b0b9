import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC

#if canImport(Glibc)
import Glibc
#endif

/// A VM's worth of daemon state, for the checks that restart the daemon (under the test
/// supervisor, `RestartChecks`, and under the real systemd, `SystemdChecks`): an owner; an IOAS
/// with a memfd mapping and the edu device vfio0 on it, whose bound fd a VMM holds; a second IOAS
/// with a dirty-tracked mock device and one page it dirtied. `snapshot` is what a client sees of
/// it, to compare across a restart.
final class VMState {
    let owner: String
    var ioas: ObjectID = 0
    var tracked: ObjectID = 0
    var memory: GuestMemory?
    var vmmDeviceFD: Int32 = -1
    var before: [String: JSONValue] = [:]
    var bitmapBefore: JSONValue?

    static let mib = DaemonChecks.mib
    static let page = DaemonChecks.page

    init(owner: String) {
        self.owner = owner
    }

    deinit { closeVMMDevice() }

    func build(_ c: DaemonClient) throws {
        let p = Self.page
        _ = try c.call("owner.create", OwnerCreateParams(name: owner), as: OwnerInfo.self)
        // The edu side: IOAS, memfd mapping, vfio0 attached, a VMM holding its device fd.
        ioas = try c.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false), as: IOASCreateResult.self).ioas
        let memory = try GuestMemory(size: Self.mib)
        self.memory = memory
        _ = try c.map(ioas: ioas, memory: memory, iova: DaemonChecks.iova)
        _ = try c.call("device.attach", DeviceAttachParams(owner: owner, device: "vfio0", ioas: ioas), as: DeviceAttachResult.self)
        let (_, fd) = try c.deviceFD("vfio0")
        vmmDeviceFD = fd
        try DaemonChecks.expectRoundTrip(try EduDevice(fd: fd), memory, iova: DaemonChecks.iova, seed: 0x61)
        // The mock side: dirty tracking on, one page dirtied by the device (sim.dma).
        tracked = try c.call("ioas.create", IOASCreateParams(owner: owner, hugePages: false), as: IOASCreateResult.self).ioas
        let trackedMemory = try GuestMemory(size: 64 * p)
        _ = try c.map(ioas: tracked, memory: trackedMemory, iova: DaemonChecks.mockIOVA)
        let attached: DeviceAttachResult = try c.call("device.attach", DeviceAttachParams(owner: owner, device: "mock0", ioas: tracked, dirty: .required))
        try expect(attached.dirtyTracking, "mock0 attach: \(attached)")
        _ = try c.call("dirty.start", DirtyParams(ioas: tracked), as: DirtyStatusResult.self)
        _ = try c.json("sim.dma", .object(["device": .string("mock0"), "iova": .unsigned(DaemonChecks.mockIOVA + 7 * p), "length": .unsigned(p)]))
        let bitmap = try dirtyPeek(c)
        try expect(bitmap["dirty_pages"]?.int64Value == 1, "dirty.read NO_CLEAR before the restart: \(bitmap)")
        bitmapBefore = bitmap
        before = try snapshot(c)
        for (key, value) in before.sorted(by: { $0.key < $1.key }) { print("      before: \(key) = \(value)") }
        // trackedMemory closes here: the daemon's memfd (and its fd-store copy) keep the pages.
    }

    func dirtyPeek(_ c: DaemonClient) throws -> JSONValue {
        try c.json("dirty.read", try JSONValueEncoder().encode(DirtyReadParams(ioas: tracked, iova: DaemonChecks.mockIOVA, length: 64 * Self.page, clear: false))).result
    }

    /// What a client sees of the owner's objects.
    func snapshot(_ c: DaemonClient) throws -> [String: JSONValue] {
        let encoder = JSONValueEncoder()
        var s: [String: JSONValue] = [:]
        s["owner.info"] = try c.json("owner.info", try encoder.encode(OwnerInfoParams(name: owner))).result
        s["ioas.list"] = try c.json("ioas.list", try encoder.encode(IOASListParams())).result
        s["ioas.info edu"] = try c.json("ioas.info", try encoder.encode(IOASInfoParams(ioas: ioas))).result
        s["ioas.info tracked"] = try c.json("ioas.info", try encoder.encode(IOASInfoParams(ioas: tracked))).result
        s["hwpt.list"] = try c.json("hwpt.list", try encoder.encode(HWPTListParams(owner: owner))).result
        s["device.list"] = try c.json("device.list", try encoder.encode(DeviceListParams())).result
        s["dirty.status"] = try c.json("dirty.status", try encoder.encode(DirtyParams(ioas: tracked))).result
        return s
    }

    /// Every view of the owner's objects is what it was before, IDs included.
    func expectSameObjects(_ c: DaemonClient) throws {
        let after = try snapshot(c)
        try expect(!before.isEmpty, "no snapshot from before the restart")
        for key in before.keys.sorted() {
            try expect(after[key] == before[key], "\(key) changed across the restart:\n        before \(before[key].map { "\($0)" } ?? "-")\n        after  \(after[key].map { "\($0)" } ?? "-")")
        }
        print("      \(before.count) views identical: \(before.keys.sorted().joined(separator: ", "))")
    }

    func expectDirtyBitmapSame(_ c: DaemonClient) throws {
        let bitmap = try dirtyPeek(c)
        try expect(bitmap == bitmapBefore, "dirty.read NO_CLEAR: before \(bitmapBefore.map { "\($0)" } ?? "-"), after \(bitmap)")
        try expect(bitmap["dirty_pages"]?.int64Value == 1, "dirty pages after the restart: \(bitmap)")
    }

    /// The VMM's edu device fd, the one that DMAs while the daemon restarts.
    func vmmEdu() throws -> (EduDevice, GuestMemory) {
        guard let memory, vmmDeviceFD >= 0 else { throw CheckFailure(description: "no state from the build check") }
        return (try EduDevice(fd: vmmDeviceFD), memory)
    }

    /// The VM is gone: its VMM's dup of the edu cdev closes. (While any dup of a bound cdev is
    /// open the device stays bound in the kernel, and binding it again is EINVAL.)
    func closeVMMDevice() {
        if vmmDeviceFD >= 0 {
            close(vmmDeviceFD)
            vmmDeviceFD = -1
        }
    }
}

/// The edu device copying RAM -> device -> RAM through the VMM's fd, over and over on its own
/// thread, while the daemon is restarted: every round trip must land (the DMA is never blocked).
final class DMALoop: @unchecked Sendable {
    private let lock = NSCondition()
    private var stopping = false
    private var finished = false
    private(set) var landed = 0
    private(set) var failures: [String] = []

    private let edu: EduDevice
    private let memory: GuestMemory
    private let iova: UInt64

    init(edu: EduDevice, memory: GuestMemory, iova: UInt64) {
        self.edu = edu
        self.memory = memory
        self.iova = iova
        let thread = Thread { [self] in loop() }
        thread.start()
    }

    private func loop() {
        var seed: UInt8 = 0x80
        while !lock.withLock({ stopping }) {
            seed &+= 1
            let bytes = DaemonChecks.pattern(seed)
            memory.write(bytes, at: 0)
            memory.write([UInt8](repeating: 0, count: 256), at: 0x1000)
            do {
                try edu.dma(from: iova, to: EduDevice.bufferAddress, count: 256, toRAM: false)
                try edu.dma(from: EduDevice.bufferAddress, to: iova + 0x1000, count: 256, toRAM: true)
                let ok = memory.read(256, at: 0x1000) == bytes
                lock.withLock {
                    if ok { landed += 1 } else if failures.count < 10 { failures.append("round trip \(landed + failures.count + 1) did not land") }
                }
            } catch {
                lock.withLock { if failures.count < 10 { failures.append("\(error)") } }
            }
        }
        lock.withLock {
            finished = true
            lock.broadcast()
        }
    }

    /// Stops after the round trip in progress; (landed, failures).
    func stop() -> (landed: Int, failures: [String]) {
        lock.lock()
        defer { lock.unlock() }
        stopping = true
        while !finished { lock.wait() }
        return (landed, failures)
    }

    /// Waits until `count` round trips have landed in all (false if the loop only fails).
    func waitLanded(_ count: Int) -> Bool {
        let deadline = Date().addingTimeInterval(60)
        lock.lock()
        defer { lock.unlock() }
        while landed < count {
            if Date() > deadline || failures.count >= 10 { return false }
            _ = lock.wait(until: Date().addingTimeInterval(0.1))
        }
        return true
    }
}
