import FuzzReplay

#if !FUZZING
/// Replay driver (plain builds): `fuzz-rpc FILE|DIR...` runs every input through the fuzz target
/// once; exit 0 means none crashed. libFuzzer builds (`-D FUZZING`) use libFuzzer's own main.
@main
enum ReplayMain {
    static func main() {
        FuzzReplay.replay(program: "fuzz-rpc", arguments: CommandLine.arguments.dropFirst()) { fuzzOne($0) }
    }
}
#else
/// SwiftPM links an executable's entry point as `<module>_main`; in a libFuzzer build it hands
/// over to libFuzzer's driver.
@_cdecl("fuzz_rpc_main")
func fuzzRPCMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzReplay.runLibFuzzer(argc, argv) { data, size in LLVMFuzzerTestOneInput(data, size) }
}
#endif
