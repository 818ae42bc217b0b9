import Foundation
import IommufdCore
import IommufdSim
import Testing
import IommufdContract

@testable import IommufdBroker

// MARK: chnested

/// Invalidation runs its `IOMMU_HWPT_INVALIDATE` outside the broker's state lock, under the
/// owner's gate only (`gatedInvalidation`); `hwpt.destroy` takes the gate too, so the target
/// cannot be destroyed between the look-up and the backend call. Raced here: an invalidation
/// either finds its nested HWPT and runs on it, or finds it gone (`NotFound`) — never the
/// backend's ENOENT for an ID destroyed under the call.
@Suite("Invalidation under the owner's gate")
struct InvalidationGateTests {
    @Test func invalidationRacingTheDestroyOfItsTargetNeverReachesADestroyedID() throws {
        let f = try Fixture(topology: nestedTopology)
        let ioas = try f.ownerWithIOAS()
        _ = try f.broker.deviceAttach(f.a, DeviceAttachParams(owner: "vm-1", device: "gpu0", ioas: ioas))
        let parent = try f.broker.hwptAlloc(f.a, HWPTAllocParams(ioas: ioas, device: "gpu0", nestParent: true)).hwpt
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var done = 0, gone = 0
            var unexpected: [String] = []
            func add(_ body: (Tally) -> Void) { lock.withLock { body(self) } }
        }
        let tally = Tally()
        let broker = f.broker, a = f.a
        for _ in 0..<100 {
            let nested = try f.broker.hwptAlloc(f.a, HWPTAllocParams(device: "gpu0", parent: parent, data: NestedDataParams(type: "selftest", iotlb: 1))).hwpt
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                // Until the target is gone: the destroy lands somewhere among these calls.
                var seen = false
                for _ in 0..<1_000_000 where !seen {
                    do {
                        let r = try broker.hwptInvalidate(a, HWPTInvalidateParams(hwpt: nested, entries: [.init(all: true)]))
                        tally.add { if r.done == 1 { $0.done += 1 } else { $0.unexpected.append("\(r)") } }
                    } catch let e as BrokerError where e.kind == .notFound {
                        tally.add { $0.gone += 1 }
                        seen = true
                    } catch {
                        tally.add { $0.unexpected.append("\(error)") }
                    }
                }
            }
            DispatchQueue.global().async(group: group) {
                usleep(UInt32.random(in: 0...300))
                do { _ = try broker.hwptDestroy(a, HWPTDestroyParams(hwpt: nested)) } catch { tally.add { $0.unexpected.append("destroy: \(error)") } }
            }
            group.wait()
        }
        #expect(tally.unexpected.isEmpty, "\(tally.unexpected.prefix(5))")
        #expect(tally.gone == 100 && tally.done > 100, "done \(tally.done), gone \(tally.gone)")
        let left = try f.broker.hwptList(f.a, HWPTListParams(ioas: ioas)).hwpts
        #expect(left.allSatisfy { $0.nested == nil } && left.contains { $0.hwpt == parent }, "\(left)")
    }
}
