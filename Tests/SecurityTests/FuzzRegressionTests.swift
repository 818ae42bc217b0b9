import Foundation
import TestProcesses
import Testing

/// Each fuzz target's seed corpus and every crash it ever found (Fuzz/regressions/T), replayed
/// through the same code libFuzzer drives (the target built plainly): no input may crash it,
/// hang the in-process daemon, or leave an object behind. `fuzz-rpc` drives the control socket,
/// `fuzz-channel` the VMM channel (its decoder, and the daemon serving a channel).
@Suite("Fuzz corpus and regressions")
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("the seed corpus and the regressions replay without a failure", arguments: [("rpc", 30), ("channel", 30)])
    func replayCorpusAndRegressions(target: String, minimumSeeds: Int) throws {
        let binary = URL(fileURLWithPath: DaemonUnderTest.binaryPath).deletingLastPathComponent().appendingPathComponent("fuzz-\(target)")
        let corpus = Self.root.appendingPathComponent("Fuzz/corpus/\(target)").path
        let regressions = Self.root.appendingPathComponent("Fuzz/regressions/\(target)").path
        func entries(_ directory: String) throws -> [String] {
            // An empty regressions directory is kept in git by a .gitkeep, which is skipped.
            try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }
        }
        let seeds = try entries(corpus)
        let inputs = seeds.count + (try entries(regressions)).count
        #expect(seeds.count >= minimumSeeds, "the seed corpus is missing: \(corpus)")

        let (status, output, error) = try SpawnedProcess.run(binary.path, [corpus, regressions])
        let text = output + error
        #expect(status == 0, "fuzz-\(target) failed on the corpus:\n\(text)")
        #expect(text.contains("fuzz-\(target): \(inputs) inputs replayed, no crash"), "\(text)")
    }
}
