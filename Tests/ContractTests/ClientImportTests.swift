import Foundation
import Testing

/// Clients speak the contract (IommufdContract), never the broker: iommuctl does not link it at
/// all, and in the other clients only the files that run a broker in their own process import it.
@Suite("No client imports the broker")
struct ClientImportTests {
    static var repository: URL { ErrorCatalogueTests.repository }

    /// The client sources, and the files among them that run a broker in process.
    static let clients = ["Sources/IommuctlKit", "Sources/iommuctl", "Sources/iommufdd-bench", "Sources/vm-e2e", "Sources/fuzz-channel", "Sources/fuzz-rpc", "Tests/IommuctlTests"]
    static let inProcessBroker: Set<String> = [
        "Sources/iommufdd-bench/InProcessDaemon.swift",  // the benchmarks' in-process floors
        "Sources/vm-e2e/KernelFailNthChecks.swift",  // the kernel fail-nth sweep drives a broker directly
        "Sources/vm-e2e/QueueChecks.swift",  // the queue checks drive a broker over the real kernel
        "Sources/vm-e2e/NestedGapChecks.swift",  // nested gaps through a broker over the real kernel
        "Sources/vm-e2e/P2PChecks.swift",  // dma-buf mappings through a broker over the real kernel
    ]

    static func imports(_ module: String, under directory: String) throws -> [String] {
        let root = repository.appendingPathComponent(directory)
        let files = try #require(FileManager.default.enumerator(atPath: root.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(!files.isEmpty, "no Swift files under \(directory)")
        return try files.sorted().filter { file in
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            return text.split(separator: "\n").contains { line in
                let words = line.split(separator: " ")
                return words.count >= 2 && words[words.count - 2] == "import" && words.last == Substring(module)
            }
        }.map { directory + "/" + $0 }
    }

    @Test("client sources import IommufdContract, not IommufdBroker (but for the in-process files)")
    func sources() throws {
        var importing: [String] = []
        for directory in Self.clients { importing += try Self.imports("IommufdBroker", under: directory) }
        #expect(Set(importing) == Self.inProcessBroker, "files that import IommufdBroker: \(importing)")
        // The scan sees imports at all: iommuctl's commands import the contract.
        #expect(try Self.imports("IommufdContract", under: "Sources/IommuctlKit").count > 5)
    }

    /// The executables built next to this test bundle.
    static func binary(_ name: String) -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Whether the file holds a Swift symbol of `module` (its mangled module name, e.g.
    /// `13IommufdBroker`, in the symbol table).
    static func linksModule(_ module: String, binary path: String) throws -> Bool {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.range(of: Data("\(module.utf8.count)\(module)".utf8)) != nil
    }

    @Test("the iommuctl executable links the contract and not the broker")
    func iommuctlBinary() throws {
        let iommuctl = Self.binary("iommuctl"), iommufdd = Self.binary("iommufdd")
        try #require(FileManager.default.fileExists(atPath: iommuctl) && FileManager.default.fileExists(atPath: iommufdd),
                     "build them: swift build --build-tests")
        #expect(try Self.linksModule("IommufdContract", binary: iommuctl))
        #expect(try !Self.linksModule("IommufdBroker", binary: iommuctl), "iommuctl links IommufdBroker")
        // The search finds the broker where it is linked.
        #expect(try Self.linksModule("IommufdBroker", binary: iommufdd))
    }
}
