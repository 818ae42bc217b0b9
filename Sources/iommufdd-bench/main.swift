#if canImport(Glibc)
import Glibc
#endif
import Foundation

// iommufdd-bench: the benchmarks of issue 7, each figure against a floor measured in the same
// run. `swift run -c release iommufdd-bench [--quick] [--only 1,2,3,4,5,6,7,8] [--daemon PATH]`.
signal(SIGPIPE, SIG_IGN)
// Figure 4's child: a simulator alone, its resident memory per mapping.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "--simulator-share",
    let ioas = Int(CommandLine.arguments[2]), let perIOAS = Int(CommandLine.arguments[3])
{
    do { try runSimulatorShare(ioas: ioas, mappingsPerIOAS: perIOAS) } catch {
        print("\(error)")
        exit(1)
    }
    exit(0)
}
// Figure 1's echo floor in a process of its own.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--echo-server" {
    ExternalEcho.serve(path: CommandLine.arguments[2])
}
var options = Options()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--quick": options.quick = true
    case "--only": options.only = Set((arguments.popFirst() ?? "").split(separator: ",").compactMap { Int($0) })
    case "--daemon": options.daemonBinary = arguments.popFirst()
    case "--mappings": options.scaleMappings = Int(arguments.popFirst() ?? "") ?? options.scaleMappings
    case "-h", "--help":
        print("usage: iommufdd-bench [--quick] [--only 1,2,3,4,5,6,7,8] [--daemon PATH-TO-iommufdd] [--mappings N]")
        exit(0)
    default:
        FileHandle.standardError.write("iommufdd-bench: unknown argument \(argument); see --help\n".data(using: .utf8)!)
        exit(2)
    }
}

let machine = machineDescription()
print("machine: \(machine)")
let report = Report()
do {
    // Scale first: its resident-memory figure wants a process the other figures have not grown.
    if options.runs(4) { try figureScale(report, options) }
    if options.runs(1) { try figureRPC(report, options) }
    if options.runs(2) { try figureControl(report, options) }
    if options.runs(3) { try figureDirty(report, options) }
    if options.runs(5) { try figureInvalidation(report, options) }
    if options.runs(6) { try figureOwners(report, options) }
    if options.runs(7) { try figureChannel(report, options) }
    if options.runs(7) { try figureChannelInvalidation(report, options) }
    if options.runs(8) { try figureOwnersAndClients(report, options) }
} catch {
    FileHandle.standardError.write("iommufdd-bench: \(error)\n".data(using: .utf8)!)
    print("\n" + report.table())
    exit(1)
}
print("\nmachine at the end: \(machineDescription())")
print("\n" + report.table())
