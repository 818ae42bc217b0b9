#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestProcesses
import Testing

// MARK: i14audit

/// A walkthrough line `$ iommuctl ... &`: iommuctl started in the background, as a shell does.
/// The harness waits for the first line it writes on stderr (a command meant to run in the
/// background, like `queue read`, says there when it is ready) and shows that line as the
/// step's output, as a terminal shows it at once; a later `$ wait` line waits for the job and
/// shows the rest: its stdout, its other stderr lines, and `[exit status N]` when not 0.
final class WalkthroughBackgroundJob {
    let command: String
    private let process: SpawnedProcess
    private let outputPath: String
    private let errorPath: String
    /// Bytes of stderr already shown (the first line).
    private var errorShown = 0
    private var reaped = false

    init(command: String, arguments: [String], socketPath: String) throws {
        self.command = command
        let base = "/tmp/walkthrough-job-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        outputPath = base + ".out"
        errorPath = base + ".err"
        var env = ProcessInfo.processInfo.environment
        env["IOMMUFDD_SOCKET"] = socketPath
        process = try SpawnedProcess.start(Binary.path("iommuctl"), arguments, output: outputPath, errorOutput: errorPath, environment: env)
    }

    deinit {
        if !reaped {
            process.signal(SIGKILL)
            process.wait()
        }
        unlink(outputPath)
        unlink(errorPath)
    }

    /// Its first stderr line, once written (or everything, if it exits first); nil when
    /// neither happened within `seconds`.
    func firstLine(timeout seconds: Double = 30) -> [String]? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let text = readTextFile(errorPath)
            if let newline = text.firstIndex(of: "\n") {
                errorShown = text[...newline].utf8.count
                return [String(text[..<newline])]
            }
            if !process.isRunning { return [] }
            if Date() >= deadline { return nil }
            usleep(10_000)
        }
    }

    /// Waits for the exit (killing it after `seconds`) and returns what it printed after the
    /// first line, as a foreground step shows it.
    func finish(timeout seconds: Double = 60) -> [String] {
        var code = process.wait(timeout: seconds)
        if code == nil {
            Issue.record("the background job '\(command)' did not exit within \(seconds) s; killed")
            process.signal(SIGKILL)
            code = process.wait()
        }
        reaped = true
        func lines(_ s: String) -> [String] {
            var s = s
            while s.hasSuffix("\n") { s.removeLast() }
            return s.isEmpty ? [] : s.components(separatedBy: "\n")
        }
        let error = Array(readTextFile(errorPath).utf8.dropFirst(errorShown))
        var printed = lines(readTextFile(outputPath)) + lines(String(decoding: error, as: UTF8.self))
        if let code, code != 0 { printed.append("[exit status \(code)]") }
        return printed
    }
}
