import FuzzReplay

#if !FUZZING
/// Replay driver (plain builds): `fuzz-channel FILE|DIR...` runs every input through the fuzz target
/// once; exit 0 means none crashed. libFuzzer builds (`-D FUZZING`) use libFuzzer's own main.
@main
enum ReplayMain {
    static func main() {
        FuzzReplay.replay(program: "fuzz-channel", arguments: CommandLine.arguments.dropFirst(), trace: FuzzChannelDaemon.trace) { fuzzOne($0) }
    }
}
#else
/// SwiftPM links an executable's entry point as `<module>_main`; in a libFuzzer build it hands
/// over to libFuzzer's driver.
@_cdecl("fuzz_channel_main")
func fuzzChannelMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzReplay.runLibFuzzer(argc, argv) { data, size in LLVMFuzzerTestOneInput(data, size) }
}
#endif
