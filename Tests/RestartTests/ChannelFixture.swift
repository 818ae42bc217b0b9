import Foundation
import IommufdChannel
import IommufdCore
import IommufdSim
import Logging
import Testing

@testable import IommufdBroker

#if canImport(Glibc)
import Glibc
import IommufdContract
#endif

/// The in-process set-up of the channel tests (ChannelNestedTests, ChannelPipelineTests): a
/// broker on the journaled simulator (`Incarnation`), owner "vm" with what `Setup` asks for, a
/// `ChannelServer` over the broker and a channel delegated to "vm". `hangUp()` closes the
/// client's end and waits until the server has forgotten it.
struct ChannelFixture {
    typealias W = ChannelWire
    static let admin = Incarnation.admin
    static let owner = "vm"

    /// What the owner has before the channel is delegated.
    enum Setup {
        /// The owner alone.
        case owner
        /// An IOAS with sim0 attached.
        case attached
        /// An IOAS with sim0 attached and a nest-parent HWPT for sim0 on it (`parent`).
        case nestParent
    }

    let inc: Incarnation
    /// The owner's IOAS (0 with `.owner`).
    let ioas: ObjectID
    /// sim0's attachment (nil with `.owner`).
    let attached: DeviceAttachResult?
    /// The nest-parent HWPT (0 unless `.nestParent`).
    let parent: ObjectID
    let server: ChannelServer
    let ch: ChannelClient

    var broker: Broker { inc.broker }
    var sim: PersistentSimBackend { inc.sim }

    /// A first start on `store`; `busyPollMicroseconds` is set on the server before the
    /// channel is delegated.
    init(_ setup: Setup, store: MemoryFDStore = MemoryFDStore(), busyPollMicroseconds: UInt32? = nil) throws {
        let inc = try Incarnation.fresh(store)
        let b = inc.broker
        let a = Self.admin
        _ = try b.ownerCreate(a, OwnerCreateParams(name: Self.owner))
        var ioas: ObjectID = 0
        var attached: DeviceAttachResult?
        var parent: ObjectID = 0
        if setup != .owner {
            ioas = try b.ioasCreate(a, IOASCreateParams(owner: Self.owner)).ioas
            attached = try b.deviceAttach(a, DeviceAttachParams(owner: Self.owner, device: "sim0", ioas: ioas))
        }
        if setup == .nestParent {
            parent = try b.hwptAlloc(a, HWPTAllocParams(ioas: ioas, device: "sim0", nestParent: true)).hwpt
        }
        self.inc = inc
        self.ioas = ioas
        self.attached = attached
        self.parent = parent
        (server, ch) = try Self.delegate(b, busyPollMicroseconds: busyPollMicroseconds)
    }

    /// A server over `broker` and a channel it delegates to "vm" (which must exist).
    static func delegate(_ broker: Broker, busyPollMicroseconds: UInt32? = nil) throws -> (ChannelServer, ChannelClient) {
        let server = Self.server(broker)
        if let busyPollMicroseconds { server.busyPollMicroseconds = busyPollMicroseconds }
        let (_, fd) = try server.delegate(admin, owner: owner)
        return (server, ChannelClient(adopting: fd))
    }

    static func server(_ broker: Broker) -> ChannelServer {
        var logger = Logger(label: "test.channel")
        logger.logLevel = .critical
        return ChannelServer(broker: broker, logger: logger)
    }

    /// Closes the client's end and waits until the server has forgotten the channel.
    func hangUp() { Self.hangUp(ch, server) }

    static func hangUp(_ ch: ChannelClient, _ server: ChannelServer) {
        ch.close()
        for _ in 0..<2000 where server.openChannels > 0 { usleep(1000) }
    }

    /// The error answer `body` gets; records an issue when it succeeds or fails otherwise.
    static func failure(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> W.ErrorReply? {
        do {
            try body()
            Issue.record("the channel request succeeded; an error was expected", sourceLocation: sourceLocation)
            return nil
        } catch let f as ChannelClient.Failure {
            return f.reply
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }
}
