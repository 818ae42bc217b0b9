import Foundation
import IommufdCore

/// A failed expectation inside a check: what was expected and what happened instead.
struct CheckFailure: Error, CustomStringConvertible {
    let description: String
}

/// Fails the running check with `message` unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CheckFailure(description: message()) }
}

/// Runs `body`, which must fail with `expected` from the backend (an `IommuError`).
func expectErrno<T>(_ expected: Errno, _ what: String, _ body: () throws -> T) throws {
    do {
        _ = try body()
    } catch let error as IommuError {
        try expect(error.errno == expected, "\(what): expected \(expected.name), got \(error)")
        return
    }
    throw CheckFailure(description: "\(what): expected \(expected.name), but it succeeded")
}

/// Runs named checks in order, printing one line per check (`ok` / `FAIL`) and a summary line
/// that scripts/vm-test shows next to the test's result.
final class CheckRunner {
    private(set) var passed = 0
    private(set) var failed: [String] = []
    let suite: String

    init(suite: String) {
        self.suite = suite
    }

    func check(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
            passed += 1
            print("ok    \(suite)/\(name)")
        } catch {
            failed.append(name)
            print("FAIL  \(suite)/\(name): \(error)")
        }
        fflush(nil)  // the log survives a crash in the next check
    }

    /// Prints the summary; true when every check passed.
    func finish() -> Bool {
        let total = passed + failed.count
        print("summary: \(suite): \(passed) of \(total) checks passed" + (failed.isEmpty ? "" : "; failed: \(failed.joined(separator: ", "))"))
        return failed.isEmpty
    }
}
