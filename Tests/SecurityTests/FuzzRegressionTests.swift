import Foundation
import TestProcesses
import Testing

/// The fuzz target's seed corpus and every crash it ever found (Fuzz/regressions/rpc), replayed
/// through the same code libFuzzer drives (`fuzz-rpc` built plainly): no input may crash it,
/// hang the in-process daemon, or leave an object behind after its owners are released.
@Suite("Fuzz corpus and regressions")
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func replayCorpusAndRegressions() throws {
        let binary = URL(fileURLWithPath: DaemonUnderTest.binaryPath).deletingLastPathComponent().appendingPathComponent("fuzz-rpc")
        let corpus = Self.root.appendingPathComponent("Fuzz/corpus/rpc").path
        let regressions = Self.root.appendingPathComponent("Fuzz/regressions/rpc").path
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).filter { !$0.hasPrefix(".") }
            + FileManager.default.contentsOfDirectory(atPath: regressions).filter { !$0.hasPrefix(".") }
        #expect(inputs.count >= 30, "the seed corpus is missing: \(corpus)")

        let (status, output, error) = try SpawnedProcess.run(binary.path, [corpus, regressions])
        let text = output + error
        #expect(status == 0, "fuzz-rpc failed on the corpus:\n\(text)")
        #expect(text.contains("fuzz-rpc: \(inputs.count) inputs replayed, no crash"), "\(text)")
    }
}
