import Foundation

#if !FUZZING
/// Replay driver (plain builds): `fuzz-channel FILE|DIR...` runs every input through the fuzz target
/// once; exit 0 means none crashed. libFuzzer builds (`-D FUZZING`) use libFuzzer's own main.
@main
enum ReplayMain {
    static func main() {
        var files: [String] = []
        for argument in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                fail("\(argument) does not exist")
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().filter { !$0.hasPrefix(".") }.map { argument + "/" + $0 }
            } else {
                files.append(argument)
            }
        }
        if files.isEmpty { fail("usage: fuzz-channel FILE|DIR... (replays fuzz inputs; scripts/fuzz runs libFuzzer)") }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { fail("cannot read \(file)") }
            if FuzzChannelDaemon.trace { print(file) }
            fuzzOne(Array(data))
        }
        print("fuzz-channel: \(files.count) inputs replayed, no crash")
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("fuzz-channel: \(message)\n".utf8))
        exit(2)
    }
}
#endif

#if FUZZING
/// libFuzzer's entry point for programs that have their own `main` (LLVM >= 11).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links an executable's entry point as `<module>_main` and points `main` at it; in a
/// libFuzzer build that entry point hands over to libFuzzer's driver.
@_cdecl("fuzz_channel_main")
func fuzzChannelMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in LLVMFuzzerTestOneInput(data, size) }
}
#endif
