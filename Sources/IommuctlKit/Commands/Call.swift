import ArgumentParser
import IommufdRPC

/// `iommuctl call METHOD [JSON]`: any JSON-RPC method, raw.
struct Call: DaemonCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any JSON-RPC method with raw JSON params and print the answer.",
        discussion: """
            For methods without a command of their own, and for trying the protocol. Params \
            are one JSON object (the daemon takes params by name, and refuses a name it does \
            not know); files given with --fd are opened and sent with \
            SCM_RIGHTS in that order, so params name them {"fd": 0}, {"fd": 1}... The answer \
            is always printed as JSON; file descriptors the daemon sends back are counted and \
            closed.

            Examples:
              iommuctl call daemon.ping
              iommuctl call rpc.discover --compact | jq '.methods[].name'
              iommuctl call ioas.map '{"ioas": 1, "fd": {"fd": 0}, "offset": 0, "length": 2097152, "iova": 0}' --fd /dev/hugepages/ram
            """)

    @Argument(help: "The method, e.g. daemon.info.")
    var method: String

    @Argument(help: "The params as a JSON object.")
    var params: String?

    @Option(name: .customLong("fd"), help: ArgumentHelp("Open this file (read-write, or read-only if that is refused) and send its descriptor. Repeatable.", valueName: "file"), completion: .file())
    var files: [String] = []

    @OptionGroup var global: GlobalOptions

    func execute(_ context: CommandContext) throws {
        var value: JSONValue?
        if let params {
            do {
                value = try JSONValue.parse(params)
            } catch {
                throw CtlError(.usage, "the params are not JSON: \(error)")
            }
            guard value?.objectValue != nil else {
                throw CtlError(.usage, "params must be a JSON object of named params, not \(value?.typeName ?? "nothing") (the daemon takes no params by position; see rpc.discover for each method's names)")
            }
        }
        var fds: [Int32] = []
        defer { context.closeAll(fds) }
        for file in files {
            do {
                fds.append(try LocalFiles.openMemory(file, writeable: true).fd)
            } catch {
                fds.append(try LocalFiles.openMemory(file, writeable: false).fd)
            }
        }
        let (result, received) = try context.callWithFDs(method, value, fds: fds)
        context.closeAll(received)
        context.terminal.print(JSONText.render(result, compact: context.options.compact))
        if !received.isEmpty {
            context.terminal.printError("(the daemon sent \(received.count) file descriptor(s); closed)")
        }
    }
}
