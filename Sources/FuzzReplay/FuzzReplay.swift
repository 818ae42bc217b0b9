import Foundation

/// What the two libFuzzer targets (`fuzz-rpc`, `fuzz-channel`) share around their fuzz function:
/// the replay of saved inputs in plain builds, and the hand-over to libFuzzer's driver in
/// libFuzzer builds (`-D FUZZING`).
public enum FuzzReplay {
    /// `PROGRAM FILE|DIR...`: runs every input (a directory's files in name order, dot files
    /// skipped) through `body` once and says how many; a missing path, an unreadable file or no
    /// input at all exits 2. A crash in `body` is the failure the replay exists to show.
    public static func replay(program: String, arguments: ArraySlice<String>, trace: Bool = false, _ body: ([UInt8]) -> Void) {
        var files: [String] = []
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                fail(program, "\(argument) does not exist")
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().filter { !$0.hasPrefix(".") }.map { argument + "/" + $0 }
            } else {
                files.append(argument)
            }
        }
        if files.isEmpty { fail(program, "usage: \(program) FILE|DIR... (replays fuzz inputs; scripts/fuzz runs libFuzzer)") }
        for file in files {
            if trace { print(file) }
            guard let data = FileManager.default.contents(atPath: file) else { fail(program, "cannot read \(file)") }
            body(Array(data))
        }
        print("\(program): \(files.count) inputs replayed, no crash")
    }

    static func fail(_ program: String, _ message: String) -> Never {
        FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
        exit(2)
    }

    #if FUZZING
    /// Hands the program over to libFuzzer's driver (LLVM >= 11), which calls `testOneInput`.
    /// SwiftPM links an executable's entry point as `<module>_main`; a libFuzzer build's target
    /// defines that symbol and calls this.
    public static func runLibFuzzer(
        _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32 {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
    }
    #endif
}

#if FUZZING
/// libFuzzer's entry point for programs that have their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif
