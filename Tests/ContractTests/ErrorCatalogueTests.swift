import Foundation
import IommufdChannel
import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

/// The contract's catalogue of error names against what the transport, the channel and
/// libiommufdd actually use.
@Suite("The contract's error catalogue")
struct ErrorCatalogueTests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test("names are unique, prefixed, and read back from their wire form")
    func names() {
        let wire = ErrorName.allCases.map(\.wireName)
        #expect(Set(wire).count == wire.count)
        for name in ErrorName.allCases {
            #expect(name.wireName == "iommufdd." + name.rawValue)
            #expect(ErrorName(wireName: name.wireName) == name)
            #expect(!name.meaning.isEmpty, "\(name) says nothing of what it means")
        }
        #expect(ErrorName(wireName: "iommufdd.SomethingNew") == nil)
        #expect(ErrorName(wireName: "NotFound") == nil)
    }

    @Test("codes: the broker's are distinct domain codes (or -32602), the control socket's are codes it sends, the rest travel without one")
    func codes() {
        let broker = ErrorName.allCases.filter { $0.origin == .broker }
        let brokerCodes = broker.compactMap(\.rpcCode)
        #expect(brokerCodes.count == broker.count)
        #expect(Set(brokerCodes).count == brokerCodes.count)
        for name in broker where name != .invalidParams {
            #expect(RPCError.Code.domainRange.contains(name.rpcCode ?? 0), "\(name)")
        }
        #expect(ErrorName.invalidParams.rpcCode == RPCError.Code.invalidParams)
        for name in ErrorName.allCases where name.origin == .controlSocket {
            let code = name.rpcCode ?? 0
            #expect(code == RPCError.Code.invalidRequest || RPCError.Code.domainRange.contains(code), "\(name): \(code)")
        }
        for name in ErrorName.allCases where name.origin == .channel || name.origin == .library {
            #expect(name.rpcCode == nil, "\(name) never travels on the control socket")
        }
    }

    @Test("the transport's and the channel's names are the catalogue's, with the origin it says")
    func transportAndChannelUseTheCatalogue() {
        let transport = [
            RPCError.Name.messageTooLarge, RPCError.Name.tooManyFileDescriptors, RPCError.Name.fileDescriptorsLost,
            RPCError.Name.tooManyClients, RPCError.Name.fileDescriptorsInBatch, RPCError.Name.shuttingDown,
        ]
        #expect(Set(transport.compactMap { ErrorName(wireName: $0) }) == Set(ErrorName.allCases.filter { $0.origin == .controlSocket }))
        #expect(ErrorName(wireName: RPCError.Name.kernel) == .kernel)
        let channel = [
            ChannelWire.ErrorName.badMessage, ChannelWire.ErrorName.unknownOp, ChannelWire.ErrorName.badFD,
            ChannelWire.ErrorName.notRegistered, ChannelWire.ErrorName.noBitmap, ChannelWire.ErrorName.ownerGone,
        ]
        #expect(Set(channel.compactMap { ErrorName(wireName: $0) }) == Set(ErrorName.allCases.filter { $0.origin == .channel }))
    }

    @Test("a raw kernel failure answers with the catalogue's code for iommufdd.Kernel, as a wrapped one does")
    func kernelCode() {
        let error = RPCError(IommuError(.EBUSY, "IOMMU_DESTROY"))
        #expect(error.name == ErrorName.kernel.wireName && error.code == ErrorName.kernel.rpcCode)
        let errno = RPCError(converting: Errno.EINVAL)
        #expect(errno.name == ErrorName.kernel.wireName && errno.code == ErrorName.kernel.rpcCode)
    }

    @Test("every name a channel answer can carry fits libiommufdd's char name[32] with its NUL")
    func namesFitTheLibrary() {
        for name in ErrorName.allCases where name.origin != .controlSocket {
            #expect(name.wireName.utf8.count < ChannelWire.errorNameBytes, "\(name.wireName)")
        }
    }

    /// Every `"iommufdd.X"` error name in the C library (header, sources, tests, example, tools).
    static func libraryNames() throws -> [String: [String]] {
        let root = repository.appendingPathComponent("libiommufdd")
        let pattern = try NSRegularExpression(pattern: #""iommufdd\.([A-Z][A-Za-z]*)""#)
        var found: [String: [String]] = [:]
        let files = try #require(FileManager.default.enumerator(atPath: root.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".c") || $0.hasSuffix(".h") }
        #expect(files.contains("include/iommufdd.h") && files.contains("src/iommufdd.c"), "\(files)")
        for file in files.sorted() {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let name = (text as NSString).substring(with: match.range(at: 0)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                found[name, default: []].append(file)
            }
        }
        return found
    }

    @Test("libiommufdd's error names (iommufdd.h and the library) are the catalogue's, and its own names are in the catalogue")
    func libraryNamesMatch() throws {
        let used = try Self.libraryNames()
        #expect(used.count > 5, "found only \(used.keys.sorted())")
        for (name, files) in used.sorted(by: { $0.key < $1.key }) {
            let entry = ErrorName(wireName: name)
            #expect(entry != nil, "\(name) (in \(Set(files).sorted())) is not in IommufdContract's ErrorName catalogue")
            #expect(entry?.origin != .controlSocket, "\(name) (in \(Set(files).sorted())) is a control-socket name; the channel never sends it")
        }
        for name in ErrorName.allCases where name.origin == .library {
            #expect(used[name.wireName]?.contains { $0.hasPrefix("src/") } == true, "\(name.wireName) is catalogued as libiommufdd's but the library never makes it")
        }
    }
}
