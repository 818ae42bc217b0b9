#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Where a command's output goes: the process's stdout/stderr, or a buffer in tests.
/// Each write is a whole line (the newline is added) and reaches the fd at once, so `watch`
/// output is seen as it happens even through a pipe.
public struct Terminal: Sendable {
    public var writeOutput: @Sendable (String) -> Void
    public var writeError: @Sendable (String) -> Void

    public init(writeOutput: @escaping @Sendable (String) -> Void, writeError: @escaping @Sendable (String) -> Void) {
        self.writeOutput = writeOutput
        self.writeError = writeError
    }

    public static let standard = Terminal(
        writeOutput: { writeAll(1, $0 + "\n") },
        writeError: { writeAll(2, $0 + "\n") })

    /// A terminal that keeps what is written, for tests.
    public static func capturing() -> (Terminal, CapturedOutput) {
        let captured = CapturedOutput()
        let terminal = Terminal(
            writeOutput: { line in captured.append(line, error: false) },
            writeError: { line in captured.append(line, error: true) })
        return (terminal, captured)
    }

    public func print(_ line: String) { writeOutput(line) }

    public func printError(_ line: String) { writeError(line) }

    /// Writes all of `text` to `fd`, retrying short writes and EINTR; gives up silently on other
    /// errors (a closed pipe is not worth a second error).
    static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw in
                Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
        bytes.removeAll()
    }
}

/// Lines written to a capturing `Terminal`.
public final class CapturedOutput: Sendable {
    private let state = Mutex<(output: [String], error: [String])>(([], []))

    func append(_ line: String, error: Bool) {
        state.withLock { s in
            if error { s.error.append(line) } else { s.output.append(line) }
        }
    }

    /// Everything written to the output, lines joined with `\n`.
    public var output: String { state.withLock { $0.output.joined(separator: "\n") } }

    /// Everything written to the error stream, lines joined with `\n`.
    public var error: String { state.withLock { $0.error.joined(separator: "\n") } }
}
