// Replay driver (plain builds): `fuzz-rpc FILE|DIR...` runs every input through the fuzz
// target once; exit 0 means none crashed. libFuzzer builds (`-D FUZZING`) use libFuzzer's main.
#if !FUZZING
import Foundation

var files: [String] = []
for argument in CommandLine.arguments.dropFirst() {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
        FileHandle.standardError.write(Data("fuzz-rpc: \(argument) does not exist\n".utf8))
        exit(2)
    }
    if isDirectory.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
        files += names.sorted().filter { !$0.hasPrefix(".") }.map { argument + "/" + $0 }
    } else {
        files.append(argument)
    }
}
if files.isEmpty {
    FileHandle.standardError.write(Data("usage: fuzz-rpc FILE|DIR... (replays fuzz inputs; scripts/fuzz runs libFuzzer)\n".utf8))
    exit(2)
}
for file in files {
    guard let data = FileManager.default.contents(atPath: file) else {
        FileHandle.standardError.write(Data("fuzz-rpc: cannot read \(file)\n".utf8))
        exit(2)
    }
    fuzzOne(Array(data))
}
print("fuzz-rpc: \(files.count) inputs replayed, no crash")
#endif
