import IommufdRPC
@testable import IommufdDaemon

// MARK: pasidch

/// What the PASID seeds (PASID_ATTACH, PASID_REPLACE, PASID_DETACH) name: sim-pasid0 (20-bit
/// PASIDs behind the selftest mock IOMMU) on IOAS 2, its RID on an HWPT allocated with `pasid`,
/// and a second such HWPT. What an input attaches is detached again after it.
extension FuzzChannelDaemon {
    static let pasidDevice = "sim-pasid0"
    /// The device's ID, its RID's HWPT and the second PASID-capable HWPT.
    static let expectedPASID = (device: UInt64(14), rid: UInt64(15), other: UInt64(16))

    func setUpPASID(ioas: UInt32) throws {
        var ids: [UInt64] = []
        for _ in 0..<2 {
            let r = try admin.call("hwpt.alloc", params: ["ioas": .uint(UInt64(ioas)), "device": .string(Self.pasidDevice), "pasid": true]).result
            ids.append(r["hwpt"]?.uint64Value ?? 0)
        }
        let attached = try admin.call("device.attach", params: ["owner": .string(Self.owner), "device": .string(Self.pasidDevice), "hwpt": .uint(ids[0])]).result
        let got = (attached["device_id"]?.uint64Value ?? 0, ids[0], ids[1])
        guard got == Self.expectedPASID else {
            die("the PASID set-up gave device, RID HWPT, second HWPT \(got), not \(Self.expectedPASID) as the seeds in Fuzz/corpus/channel expect; change them in Fuzz/make-channel-seeds.py and run it")
        }
        pasidHWPTs = ids
        placement[Self.pasidDevice] = (UInt64(ioas), ids[0])
        baselineHWPTs = daemon.service.broker.counts().hwpts
    }

    /// Detaches every PASID an input attached (before any HWPT is destroyed or a RID moved).
    func detachPASIDs() {
        do {
            let info = try admin.call("device.info", params: ["device": .string(Self.pasidDevice)]).result
            for p in info["pasids"]?.arrayValue ?? [] {
                _ = try admin.call("device.detach_pasid", params: ["device": .string(Self.pasidDevice), "pasid": p["pasid"] ?? .null])
            }
        } catch { die("detaching the PASIDs an input attached failed: \(error)") }
    }

    /// Allocates again a PASID-capable HWPT an input destroyed (after moving the RID off it), and
    /// puts the RID back on the first one. Their IDs may change; the seeds then reach NotFound.
    func restorePASIDHWPTs() {
        do {
            let hwpts = try admin.call("hwpt.list", params: ["owner": .string(Self.owner)]).result["hwpts"]?.arrayValue ?? []
            let ioas = placement[Self.pasidDevice]?.ioas ?? 0
            for (i, id) in pasidHWPTs.enumerated() where !hwpts.contains(where: { $0["hwpt"]?.uint64Value == id }) {
                let r = try admin.call("hwpt.alloc", params: ["ioas": .uint(ioas), "device": .string(Self.pasidDevice), "pasid": true]).result
                pasidHWPTs[i] = r["hwpt"]?.uint64Value ?? 0
            }
            let info = try admin.call("device.info", params: ["device": .string(Self.pasidDevice)]).result
            if info["pt"]?.uint64Value != pasidHWPTs[0] {
                _ = try admin.call("device.replace", params: ["device": .string(Self.pasidDevice), "hwpt": .uint(pasidHWPTs[0])])
            }
            placement[Self.pasidDevice] = (ioas, pasidHWPTs[0])
        } catch { die("putting the PASID set-up back failed: \(error)") }
    }
}
