import IommufdConformance
import IommufdCore
import IommufdSim
import Testing

/// The simulator advertises a feature (in `features`, hence in `daemon.info`) only when the
/// conformance suite, run on it, exercises that feature in a case that passes: a call of the
/// feature's ioctl made by the case's body succeeded (`FeatureRecordingBackend`).
@Suite("What the simulator advertises")
struct SimFeatureTests {
    /// Each feature → the passing cases that exercised it on the simulator.
    static func exercisedByPassingCases() -> [Feature: [String]] {
        let fixture = ConformanceFixture(backendName: "sim") { try SimBackend() }
        var cases: [Feature: [String]] = [:]
        for testCase in ConformanceSuite.all {
            let (outcome, exercised) = fixture.runRecordingFeatures(testCase)
            guard outcome == .passed else { continue }
            for feature in exercised { cases[feature, default: []].append(testCase.id) }
        }
        return cases
    }

    @Test func everyAdvertisedFeatureIsExercisedByAPassingCaseAndNothingElseIsAdvertised() throws {
        let advertised = try SimBackend().features
        let exercised = Self.exercisedByPassingCases()
        for feature in Feature.allCases {
            if advertised.contains(feature) {
                #expect(
                    exercised[feature] != nil,
                    "the simulator advertises \(feature.rawValue), but no conformance case that passes on it exercises it; model and test it, or stop advertising it")
            } else {
                #expect(
                    exercised[feature] == nil,
                    "conformance cases exercise \(feature.rawValue) on the simulator (\(exercised[feature] ?? [])), but it does not advertise it")
            }
        }
    }

    /// What the simulator has no operation for is not advertised (so `daemon.info` on a host
    /// without /dev/iommu does not claim it).
    @Test func unmodelledFeaturesAreNotAdvertised() throws {
        let advertised = try SimBackend().features
        for feature in [Feature.ioasChangeProcess] {
            #expect(!advertised.contains(feature), "the simulator advertises \(feature.rawValue), which it does not model")
        }
    }

    /// The recorder counts the body's successful calls only: the fixture's set-up (bind,
    /// GET_HW_INFO, the nest-parent probe) and the calls that fail are not the case's.
    @Test func recorderCountsOnlyTheBodysSuccessfulCalls() throws {
        let fixture = ConformanceFixture(backendName: "sim") { try SimBackend() }
        let testCase = try #require(ConformanceSuite.all.first { $0.id == "viommu.alloc.iommu-without-nesting-is-EOPNOTSUPP" })
        let (outcome, exercised) = fixture.runRecordingFeatures(testCase)
        #expect(outcome == .passed)
        // The body allocates an IOAS (succeeds) and a vIOMMU (EOPNOTSUPP, as it should).
        #expect(exercised == [.iommufd])
    }
}
