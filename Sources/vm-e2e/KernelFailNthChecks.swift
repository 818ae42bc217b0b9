#if canImport(Glibc)
import Glibc
#endif
import CIommufd
import Foundation
import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdKernel

/// The kernel's own fault injection under the daemon's requests (issue 17 item 4): an in-process
/// broker over a kernel backend with a selftest mock device, whose ioctls go through a
/// `Syscalls` that arms `/proc/self/task/TID/fail-nth` around each ioctl of the request being
/// swept (and nothing else the thread does), the way tools/testing/selftests/iommu's
/// iommufd_fail_nth does around its ioctls. With failslab told not to ignore sleeping
/// allocations, the Nth slab allocation inside those ioctls fails with ENOMEM: paths the
/// fault-injecting backend of `swift test` cannot reach, because the failure is in the middle of
/// the kernel's work (a half-built IOPT, an HWPT allocated and then its attach failing, ...).
///
/// For each request and N = 1, 2, ... until the Nth allocation is no longer reached: the request
/// fails cleanly or succeeds (a kernel that copes with the failure itself), the broker's view is
/// exactly before or after the request, the retry without injection succeeds (never EEXIST or
/// "already bound" from a half-done step), and undoing it leaves the owner as it was. At the end
/// `owner.release` leaves nothing.
final class FailNthInjector: @unchecked Sendable {
    private let lock = NSLock()
    /// Thread → allocations left to count before the failing one (0: not armed).
    private var remaining: [pid_t: Int] = [:]
    /// Thread → the fail-nth file of that thread, opened once.
    private var files: [pid_t: Int32] = [:]
    private var fired = false

    static func threadID() -> pid_t { pid_t(ifd_gettid()) }

    /// Arms the calling thread: its Nth fault-injection point inside the ioctls that follow
    /// fails.
    func arm(_ n: Int) {
        let tid = Self.threadID()
        lock.withLock {
            remaining[tid] = n
            fired = false
        }
    }

    /// Disarms the calling thread; true when the failure was injected.
    func disarm() -> Bool {
        let tid = Self.threadID()
        return lock.withLock {
            remaining[tid] = nil
            return fired
        }
    }

    private func file(_ tid: pid_t) -> Int32 {
        if let fd = lock.withLock({ files[tid] }) { return fd }
        let fd = Glibc.open("/proc/self/task/\(tid)/fail-nth", O_RDWR | O_CLOEXEC)
        lock.withLock { files[tid] = fd }
        return fd
    }

    /// `real` with fail-nth armed around each ioctl of an armed thread.
    func wrap(_ real: Syscalls) -> Syscalls {
        Syscalls(open: real.open, close: real.close, ioctl: { [self] fd, request, argument in
            let tid = Self.threadID()
            guard let left = lock.withLock({ remaining[tid] }), left > 0 else { return real.ioctl(fd, request, argument) }
            let control = file(tid)
            guard control >= 0 else { return real.ioctl(fd, request, argument) }
            let armed = Array("\(left)".utf8)
            _ = armed.withUnsafeBytes { pwrite(control, $0.baseAddress, $0.count, 0) }
            let rc = real.ioctl(fd, request, argument)
            let saved = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(control, $0.baseAddress, $0.count, 0) }
            // Disarm (it can fail once with EFAULT, as the selftest notes; then again).
            let zero = Array("0".utf8)
            if zero.withUnsafeBytes({ pwrite(control, $0.baseAddress, $0.count, 0) }) < 0 {
                _ = zero.withUnsafeBytes { pwrite(control, $0.baseAddress, $0.count, 0) }
            }
            let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "\(left)"
            let after = Int(text) ?? left
            lock.withLock {
                if after == 0 {
                    fired = true
                    remaining[tid] = 0
                } else {
                    remaining[tid] = after
                }
            }
            errno = saved
            return rc
        })
    }

    /// failslab counts sleeping allocations too (the selftest's setup); debugfs is mounted if
    /// it is not. Returns why it cannot run, or nil.
    static func enableFailslab() -> String? {
        let knob = "/sys/kernel/debug/failslab/ignore-gfp-wait"
        if access(knob, F_OK) != 0 {
            _ = mount("none", "/sys/kernel/debug", "debugfs", 0, nil)
        }
        guard access(knob, W_OK) == 0 else { return "no \(knob) (CONFIG_FAILSLAB and debugfs are needed)" }
        for (path, value) in [(knob, "N"), ("/sys/kernel/debug/failslab/verbose", "0")] {
            let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return "cannot open \(path): \(Errno.current)" }
            defer { Glibc.close(fd) }
            guard Array(value.utf8).withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 else { return "cannot write \(path): \(Errno.current)" }
        }
        return nil
    }
}

enum KernelFailNthChecks {
    static let admin = Caller(uid: 0, gid: 0, pid: 1, role: .admin, identity: "root")
    static let page: UInt64 = 4096
    /// More than any of these requests makes (the selftest's own bound is 1000).
    static let maxPoints = 400

    static func runAll(run: CheckRunner) -> Bool {
        if let why = FailNthInjector.enableFailslab() {
            print("FAIL  fail-nth: \(why)")
            return false
        }
        let injector = FailNthInjector()
        let backend: KernelBackend
        let broker: Broker
        do {
            backend = try KernelBackend(options: KernelBackendOptions(mockDevices: [MockDeviceSpec(name: "fmock0")]), syscalls: injector.wrap(.live))
            broker = try Broker(backend: backend, config: BrokerConfig(access: AccessControl(rules: []), allowList: .all))
        } catch {
            print("FAIL  fail-nth: cannot open the kernel backend with a mock device: \(error)")
            return false
        }
        run.check("fail-nth-device-attach") { try attach(broker, injector) }
        run.check("fail-nth-ioas-map") { try map(broker, injector) }
        run.check("fail-nth-dirty-start") { try dirtyStart(broker, injector) }
        run.check("fail-nth-nothing-left") {
            let counts = broker.counts()
            try expect(counts.owners == 0 && counts.ioas == 0 && counts.hwpts == 0 && counts.mappings == 0 && counts.pinnedBytes == 0,
                "after every sweep the broker still holds \(counts)")
        }
        return true
    }

    /// Runs `request` with its Nth kernel allocation failing for N = 1, 2, ... and `check` after
    /// each; returns how many points were failed.
    static func sweep(_ name: String, _ injector: FailNthInjector, request: () throws -> Void, check: (_ failed: Error?) throws -> Void) throws -> Int {
        var points = 0
        for n in 1...maxPoints {
            injector.arm(n)
            var failure: Error?
            do { try request() } catch { failure = error }
            let injected = injector.disarm()
            guard injected else {
                // The request no longer reaches an Nth allocation: it ran without a failure.
                try expect(failure == nil, "\(name): no allocation failed at N = \(n), yet the request failed: \(String(describing: failure))")
                try check(nil)
                print("      \(name): \(points) allocation points failed in turn, each left no trace; errnos \(errnos[name] ?? [:])")
                return points
            }
            points += 1
            if let failure {
                // The kernel decides which errno a failed allocation becomes (ENOMEM mostly;
                // IOMMU_GET_HW_INFO answers EOPNOTSUPP, IOMMU_IOAS_MAP_FILE ENOENT on some); the
                // daemon must pass on the ioctl and whatever errno it was.
                let text = "\(failure)"
                try expect(text.contains("iommufdd.Kernel") && text.contains(" returned E"),
                    "\(name), allocation \(n): the error does not name the ioctl and the kernel's errno: \(text)")
                if errnos[name, default: [:]][errnoName(text), default: 0] == 0 { print("      \(name), allocation \(n): \(text.prefix(200))") }
                errnos[name, default: [:]][errnoName(text), default: 0] += 1
            }
            try check(failure)
        }
        throw CheckFailure(description: "\(name): still failing allocations after \(maxPoints) points")
    }

    nonisolated(unsafe) static var errnos: [String: [String: Int]] = [:]

    static func errnoName(_ text: String) -> String {
        guard let r = text.range(of: " returned ") else { return "?" }
        return String(text[r.upperBound...].prefix { $0.isLetter || $0.isNumber })
    }

    static func fresh(_ broker: Broker, _ owner: String) throws -> ObjectID {
        _ = try broker.ownerCreate(admin, OwnerCreateParams(name: owner))
        return try broker.ioasCreate(admin, IOASCreateParams(owner: owner)).ioas
    }

    static func attach(_ broker: Broker, _ injector: FailNthInjector) throws {
        let ioas = try fresh(broker, "fn-attach")
        defer { _ = try? broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-attach")) }
        let before = broker.counts()
        let points = try sweep("device.attach", injector) {
            _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "fn-attach", device: "fmock0", ioas: ioas))
        } check: { failure in
            if failure != nil {
                let info = try broker.deviceInfo(admin, DeviceInfoParams(device: "fmock0"))
                try expect(info.ioas == nil && info.pt == nil, "a failed attach left fmock0 attached to \(info.ioas.map(String.init) ?? "-") / \(info.pt.map(String.init) ?? "-")")
                try expect(broker.counts().hwpts == before.hwpts, "a failed attach left an HWPT: \(broker.counts().hwpts) against \(before.hwpts)")
                // The retry is clean: no "already bound", no leaked HWPT in the way.
                _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "fn-attach", device: "fmock0", ioas: ioas))
            }
            _ = try broker.deviceDetach(admin, DeviceDetachParams(device: "fmock0"))
            _ = try broker.deviceRelease(admin, DeviceReleaseParams(device: "fmock0"))
            try expect(broker.counts().hwpts == before.hwpts, "detach and release left \(broker.counts().hwpts) HWPTs, \(before.hwpts) before")
        }
        try expect(points > 0, "device.attach failed no kernel allocation: is failslab counting?")
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-attach"))
        try expect(released.released, "owner.release: \(released.failures)")
    }

    static func map(_ broker: Broker, _ injector: FailNthInjector) throws {
        let ioas = try fresh(broker, "fn-map")
        defer { _ = try? broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-map")) }
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "fn-map", device: "fmock0", ioas: ioas))
        let memory = try GuestMemory(size: 64 * page)
        let length = 16 * page
        let iova: UInt64 = 0x4000_0000
        let params = IOASMapParams(ioas: ioas, offset: 0, length: length, iova: iova, readable: true, writeable: true)
        let points = try sweep("ioas.map", injector) {
            _ = try broker.ioasMap(admin, params, fd: memory.fd)
        } check: { failure in
            if failure != nil {
                let info = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
                try expect(info.mappingCount == 0 && info.pinnedBytes == 0, "a failed map left \(info.mappingCount) mappings, \(info.pinnedBytes) pinned bytes")
                // A half-built area in the kernel would answer EEXIST here.
                _ = try broker.ioasMap(admin, params, fd: memory.fd)
            }
            let info = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
            try expect(info.mappingCount == 1 && info.pinnedBytes == length, "after the map: \(info.mappingCount) mappings, \(info.pinnedBytes) pinned")
            let unmapped = try broker.ioasUnmap(admin, IOASUnmapParams(ioas: ioas, all: true))
            try expect(unmapped.unmappedBytes == length, "unmap all answered \(unmapped.unmappedBytes) bytes, the mapping was \(length)")
        }
        try expect(points > 0, "ioas.map failed no kernel allocation: is failslab counting?")
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-map"))
        try expect(released.released, "owner.release: \(released.failures)")
    }

    static func dirtyStart(_ broker: Broker, _ injector: FailNthInjector) throws {
        let ioas = try fresh(broker, "fn-dirty")
        defer { _ = try? broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-dirty")) }
        _ = try broker.deviceAttach(admin, DeviceAttachParams(owner: "fn-dirty", device: "fmock0", ioas: ioas))
        let memory = try GuestMemory(size: 64 * page)
        _ = try broker.ioasMap(admin, IOASMapParams(ioas: ioas, offset: 0, length: 32 * page, iova: 0x4000_0000, readable: true, writeable: true), fd: memory.fd)
        let points = try sweep("dirty.start", injector) {
            _ = try broker.dirtyStart(admin, DirtyParams(ioas: ioas))
        } check: { failure in
            if failure != nil {
                let status = try broker.dirtyStatus(admin, DirtyParams(ioas: ioas))
                try expect(!status.enabled, "a failed dirty.start left tracking on")
                _ = try broker.dirtyStart(admin, DirtyParams(ioas: ioas))
            }
            try expect(try broker.dirtyStatus(admin, DirtyParams(ioas: ioas)).enabled, "dirty.start did not turn tracking on")
            _ = try broker.dirtyStop(admin, DirtyParams(ioas: ioas))
            let info = try broker.ioasInfo(admin, IOASInfoParams(ioas: ioas))
            try expect(info.mappingCount == 1 && info.pinnedBytes == 32 * page, "the mapping changed: \(info.mappingCount) mappings, \(info.pinnedBytes) pinned")
        }
        print("      dirty.start: \(points) points (dirty tracking on the mock domain may allocate nothing)")
        let released = try broker.ownerRelease(admin, OwnerReleaseParams(name: "fn-dirty"))
        try expect(released.released, "owner.release: \(released.failures)")
    }
}
