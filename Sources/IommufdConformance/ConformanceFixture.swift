import IommufdCore

/// Runs cases, each on a fresh backend from `makeBackend`, after binding the devices the case
/// needs and finding them by role from `discoverDevices()` + `bind` + `hwInfo`.
public struct ConformanceFixture: Sendable {
    /// Shown in output ("sim", "kernel").
    public let backendName: String
    public let makeBackend: @Sendable () throws -> ConformanceBackend

    public init(backendName: String, makeBackend: @escaping @Sendable () throws -> ConformanceBackend) {
        self.backendName = backendName
        self.makeBackend = makeBackend
    }

    public func run(_ testCase: ConformanceCase) -> ConformanceOutcome {
        run(testCase, recorder: nil)
    }

    /// Runs `testCase` as `run` does and returns, with the outcome, the features of the calls
    /// its body made that succeeded (not those of the fixture's own set-up).
    public func runRecordingFeatures(_ testCase: ConformanceCase) -> (outcome: ConformanceOutcome, exercised: Set<Feature>) {
        let recorder = RecorderSlot()
        let outcome = run(testCase, recorder: recorder)
        return (outcome, recorder.value?.exercised ?? [])
    }

    /// Where `run` leaves the recording backend it made for the case.
    private final class RecorderSlot {
        var value: FeatureRecordingBackend?
    }

    private func run(_ testCase: ConformanceCase, recorder: RecorderSlot?) -> ConformanceOutcome {
        do {
            var backend = try makeBackend()
            if let recorder {
                let recording = FeatureRecordingBackend(backend)
                recorder.value = recording
                backend = recording
            }
            if testCase.requirements.contains(.mapFile) && !backend.features.contains(.ioasMapFile) {
                return .skipped("needs \(ConformanceRequirement.mapFile)")
            }
            let roles = try resolveRoles(backend, testCase.requirements)
            let memory = try ConformanceMemory()
            let context = ConformanceContext(caseID: testCase.id, backend: backend, memory: memory, roles: roles)
            recorder?.value?.startRecording()
            try testCase.body(context)
            return .passed
        } catch let skip as ConformanceSkip {
            return .skipped(skip.reason)
        } catch let failure as ConformanceFailure {
            return .failed(failure.message)
        } catch let error as IommuError {
            if error.isMissingTestHook { return .skipped("\(error.operation) is not available (needs CONFIG_IOMMUFD_TEST)") }
            return .failed("unexpected error: \(error)")
        } catch {
            return .failed("unexpected error: \(error)")
        }
    }

    private static let deviceRequirements: Set<ConformanceRequirement> = [
        .device, .dirtyDevice, .peerDevice, .noDirtyDevice, .otherIOMMUDevice, .nesting, .nonNestingDevice,
        .pasidDevice,
    ]

    private struct Candidate {
        var device: BoundDevice
        var dirty: Bool
        var pasid = false
        var instance: String? { device.descriptor.iommuInstance }
        func sameIOMMU(as other: Candidate) -> Bool {
            device.id != other.device.id && instance != nil && instance == other.instance
        }
        func otherIOMMU(than other: Candidate) -> Bool {
            instance != nil && other.instance != nil && instance != other.instance
        }
    }

    private func resolveRoles(_ backend: ConformanceBackend, _ requirements: Set<ConformanceRequirement>) throws -> [DeviceRole: BoundDevice] {
        var roles: [DeviceRole: BoundDevice] = [:]
        let descriptors = requirements.isDisjoint(with: Self.deviceRequirements) && !requirements.contains(.mdevDevice)
            ? [] : try backend.discoverDevices()

        if !requirements.isDisjoint(with: Self.deviceRequirements) {
            var candidates: [Candidate] = []
            for descriptor in descriptors where !descriptor.isMdev {
                let bound = try backend.bind(descriptor)
                let info = try backend.hwInfo(deviceID: bound.id)
                candidates.append(Candidate(device: bound, dirty: info.capabilities.contains(.dirtyTracking), pasid: info.maxPasidLog2 > 0))
            }
            // Dirty-capable devices first: the primary should be able to do everything.
            candidates.sort { $0.dirty && !$1.dirty }

            let primary = candidates.first { candidate in
                if requirements.contains(.dirtyDevice) || requirements.contains(.noDirtyDevice), !candidate.dirty { return false }
                if requirements.contains(.peerDevice), !candidates.contains(where: { $0.sameIOMMU(as: candidate) }) { return false }
                if requirements.contains(.noDirtyDevice), !candidates.contains(where: { !$0.dirty && $0.sameIOMMU(as: candidate) }) { return false }
                if requirements.contains(.otherIOMMUDevice), !candidates.contains(where: { $0.otherIOMMU(than: candidate) }) { return false }
                return true
            }
            guard let primary else {
                var missing = requirements.intersection(Self.deviceRequirements).subtracting([.nesting, .nonNestingDevice])
                // Only nesting asked for: what is missing is a device to ask the IOMMU with.
                if missing.isEmpty { missing = [.device] }
                throw ConformanceSkip("needs " + missing.map(\.description).sorted().joined(separator: ", ") + "; the backend's devices do not provide it")
            }
            roles[.primary] = primary.device
            roles[.peer] = candidates.first { $0.sameIOMMU(as: primary) }?.device
            roles[.noDirty] = candidates.first { !$0.dirty && $0.sameIOMMU(as: primary) }?.device
            roles[.otherIOMMU] = candidates.first { $0.otherIOMMU(than: primary) }?.device

            if requirements.contains(.pasidDevice) {  // pasid
                let pasid = candidates.first { $0.pasid && ($0.device.id == primary.device.id || $0.sameIOMMU(as: primary)) }
                let plain = pasid.flatMap { p in candidates.first { !$0.pasid && $0.sameIOMMU(as: p) } }
                guard let pasid, let plain else {
                    throw ConformanceSkip("needs \(ConformanceRequirement.pasidDevice); the backend's devices do not provide it")
                }
                roles[.pasid] = pasid.device
                roles[.noPASID] = plain.device
            }
            if requirements.contains(.nesting), try !canNest(backend, primary.device) {
                throw ConformanceSkip("needs \(ConformanceRequirement.nesting); device \(primary.device.descriptor.name) cannot allocate a nest-parent HWPT")
            }
            if requirements.contains(.nonNestingDevice) {
                for candidate in candidates where try !canNest(backend, candidate.device) {
                    roles[.nonNesting] = candidate.device
                    break
                }
                if roles[.nonNesting] == nil { throw ConformanceSkip("needs \(ConformanceRequirement.nonNestingDevice)") }
            }
        }
        if requirements.contains(.mdevDevice) {
            guard let mdev = descriptors.first(where: \.isMdev) else {
                throw ConformanceSkip("needs \(ConformanceRequirement.mdevDevice); the backend has none")
            }
            roles[.mdev] = try backend.bind(mdev)
        }
        return roles
    }

    /// Probes whether `device`'s IOMMU allocates a nest-parent HWPT (EOPNOTSUPP = no),
    /// leaving nothing behind.
    private func canNest(_ backend: ConformanceBackend, _ device: BoundDevice) throws -> Bool {
        let ioas = try backend.allocIOAS()
        defer { try? backend.destroy(ioas) }
        do {
            let hwpt = try backend.allocHWPT(deviceID: device.id, ptID: ioas, flags: .nestParent)
            try backend.destroy(hwpt)
            return true
        } catch let error as IommuError where error.errno == .EOPNOTSUPP {
            return false
        }
    }
}
