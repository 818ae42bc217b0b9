import ArgumentParser
import Foundation
import IommufdConformance
import IommufdCore
import IommufdKernel
import IommufdSim

/// Runs the iommufd conformance suite against a backend and prints one line per case, then
/// `N passed, N failed, N skipped`. Exits non-zero when any case failed or was skipped without
/// being on the expected-skip list (`--expected-skips`).
struct IommufdConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommufd-conformance",
        abstract: "Check that an iommufd backend behaves like Linux, errno for errno.")

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case sim
        case kernel
    }

    @Option(help: "Backend to check: sim (the in-memory simulator) or kernel (/dev/iommu).")
    var backend: Backend = .sim

    @Option(help: "Run only the cases whose ID contains this substring.")
    var filter: String?

    @Flag(help: "List the selected cases and their rules instead of running them.")
    var list = false

    @Flag(help: ArgumentHelp(
        "With --backend kernel: also offer the kernel's selftest mock devices (IOMMU_TEST_CMD).",
        discussion: "Needs a CONFIG_IOMMUFD_TEST kernel such as the test VM's. Without it, only real VFIO devices are used and the cases that need dirty tracking, nesting or the test hooks are skipped (list them with --expected-skips, or the run fails)."))
    var mockDevices = false

    @Option(
        help: ArgumentHelp(
            "A file of the cases this backend may skip, one `CASE-ID REASON` a line ('#' comments).",
            discussion: "A case that is skipped and not listed fails the run, and so does a listed case that runs after all. Without this option no case may be skipped.",
            valueName: "file"))
    var expectedSkips: String?

    func run() throws {
        let cases = ConformanceSuite.cases(matching: filter)
        if cases.isEmpty {
            throw ValidationError("no conformance case ID contains \"\(filter ?? "")\"; use --list to see them")
        }
        if list {
            for testCase in cases {
                let needs = testCase.requirements.map(\.rawValue).sorted()
                print("\(testCase.id)\t\(testCase.rule)" + (needs.isEmpty ? "" : "\t[needs: \(needs.joined(separator: ", "))]"))
            }
            return
        }
        if mockDevices && backend != .kernel {
            throw ValidationError("--mock-devices applies to --backend kernel only")
        }
        let skips = try expectedSkips.map(loadExpectedSkips) ?? ExpectedSkips()
        let fixture = try makeFixture(backend, mockDevices: mockDevices)
        // Unbuffered, so progress shows while a slow backend (the test VM) runs.
        let summary = ConformanceRunner(fixture: fixture, expectedSkips: skips).run(cases) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        if !summary.succeeded { throw ExitCode.failure }
    }
}

/// Reads and checks the expected-skip list at `path`.
func loadExpectedSkips(_ path: String) throws -> ExpectedSkips {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw ValidationError("cannot read the expected-skip list \(path): \(error.localizedDescription)")
    }
    do {
        return try ExpectedSkips(parsing: text, source: path, knownIDs: Set(ConformanceSuite.all.map(\.id)))
    } catch {
        throw ValidationError("expected-skip list \(error.description)")
    }
}

/// Builds the fixture for `backend`: each case gets a fresh backend from its factory.
func makeFixture(_ backend: IommufdConformanceCommand.Backend, mockDevices: Bool) throws -> ConformanceFixture {
    switch backend {
    case .sim:
        return ConformanceFixture(backendName: "sim") { try SimBackend() }
    case .kernel:
        return makeKernelFixture(mockDevices: mockDevices)
    }
}

// MARK: - Kernel backend

/// The kernel backend on /dev/iommu with every VFIO cdev of the machine and, when asked, the
/// selftest mock devices: two that track dirty pages and one that cannot (the roles the suite's
/// dirty-tracking cases need), and one with PASIDs (MOCK_FLAGS_DEVICE_PASID) for the PASID
/// cases, all behind the one mock IOMMU.
func makeKernelFixture(mockDevices: Bool) -> ConformanceFixture {
    let mocks = mockDevices
        ? [
            MockDeviceSpec(name: "mock0"), MockDeviceSpec(name: "mock1"), MockDeviceSpec(name: "mock-nodirty", noDirty: true),
            MockDeviceSpec(name: "mock-pasid", pasid: true),
        ]
        : []
    return ConformanceFixture(backendName: "kernel") {
        try KernelBackend(options: KernelBackendOptions(mockDevices: mocks))
    }
}

IommufdConformanceCommand.main()
