import ArgumentParser
import Foundation
import IommufdConformance
import IommufdCore
import IommufdSim

/// Runs the iommufd conformance suite against a backend and prints one line per case, then
/// `N passed, N failed, N skipped`. Exits non-zero when any case failed.
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
        let fixture = try makeFixture(backend)
        // Unbuffered, so progress shows while a slow backend (the test VM) runs.
        let summary = ConformanceRunner(fixture: fixture).run(cases) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        if !summary.succeeded { throw ExitCode.failure }
    }
}

/// Builds the fixture for `backend`: each case gets a fresh backend from its factory.
func makeFixture(_ backend: IommufdConformanceCommand.Backend) throws -> ConformanceFixture {
    switch backend {
    case .sim:
        return ConformanceFixture(backendName: "sim") { try SimBackend() }
    case .kernel:
        return try makeKernelFixture()
    }
}

// MARK: - Kernel backend

/// Where the kernel backend is constructed: `KernelBackend` (IommufdKernel) is built on another
/// branch and is wired here by the lead. Until then `--backend kernel` stops with this message.
func makeKernelFixture() throws -> ConformanceFixture {
    throw ValidationError(
        "--backend kernel is not available in this build: the kernel backend is not wired into iommufd-conformance yet; use --backend sim")
}

IommufdConformanceCommand.main()
