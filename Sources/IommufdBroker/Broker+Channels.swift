import IommufdContract
import IommufdCore

/// A delegated channel the fd store gave back at a restart: the daemon serves `fd` again as
/// owner `owner` (the VMM's end never saw it close).
public struct RecoveredChannel: Sendable, Hashable {
    public var id: UInt64
    public var owner: String
    public var fd: Int32
}

/// Delegation by capability (`owner.delegate`): a channel is one end of a socket pair that acts
/// as one owner, whoever holds it. The broker keeps which owner each channel acts as, journals
/// it, and keeps the daemon's end in the fd store; the daemon's channel server owns the sockets.
extension Broker {
    /// At most this many open channels per owner (a VMM needs one, a few with helpers).
    public static let maxChannelsPerOwner = 64

    /// `owner.delegate`, the broker's half: checks the caller may change `owner`, records a new
    /// channel acting as it, and hands `daemonEnd` (the daemon's end of the pair) to the fd store
    /// so a restarted daemon serves it again. Returns the channel's ID.
    public func channelOpen(_ caller: Caller, owner name: String, daemonEnd: Int32) throws -> UInt64 {
        try locked {
            let owner = try writableOwner(caller, name, "owner.delegate")
            let open = channels.values.filter { $0 == owner.name }.count
            guard open < Self.maxChannelsPerOwner else {
                throw BrokerError(.limitExceeded, "owner '\(owner.name)' already has \(open) channels open, the most there may be; close one (or owner.revoke_channels) before delegating another")
            }
            let id = nextChannelID
            nextChannelID += 1
            channels[id] = owner.name
            journal?.store.store(daemonEnd, name: StoredFDName.channel(id))
            logger.info("channel delegated", metadata: ["owner": "\(owner.name)", "channel": "\(id)", "identity": "\(caller.identity)"])
            return id
        }
    }

    /// The channel is closed (its VMM hung up, or it was revoked): forgets it and drops its fd
    /// from the fd store. Unknown IDs are ignored.
    public func channelClosed(_ id: UInt64) {
        _ = try? locked {
            guard let owner = channels.removeValue(forKey: id) else { return }
            markOwnerChanged(owner)  // ownerjournal
            journal?.store.remove(name: StoredFDName.channel(id))
        }
    }

    /// `owner.revoke_channels`, the broker's half: checks the caller may change `owner` and
    /// returns the IDs of its open channels (the daemon closes them).
    public func channelsToRevoke(_ caller: Caller, owner name: String) throws -> [UInt64] {
        try locked {
            let owner = try writableOwner(caller, name, "owner.revoke_channels")
            return channels.filter { $0.value == owner.name }.map(\.key).sorted()
        }
    }

    /// The caller a request on channel `id` acts as: the owner's identity with the manager role,
    /// scoped to that one owner (every other owner and its objects are absent to it). The
    /// identity's current `trusted_vmm` (from the config) decides `device.fd`, as on the control
    /// plane; the owner's quota applies. Nil when the channel or its owner is gone.
    public func channelCaller(_ id: UInt64) -> Caller? {
        readLocked {
            guard let name = channels[id], let owner = owners[name] else { return nil }
            let rule = config.access.rule(forIdentity: owner.identity)
            var caller = Caller(
                uid: owner.creatorUID, gid: owner.creatorUID, pid: 0, role: .manager, identity: owner.identity,
                trustedVMM: rule?.trustedVMM ?? (owner.identity == "root" && config.access.rootIsAdmin),
                quotaBytes: owner.quotaBytes)
            caller.scopeOwner = name
            return caller
        }
    }

    /// The channels taken back from the fd store at a restart (once; the daemon then owns them).
    public func takeRecoveredChannels() -> [RecoveredChannel] {
        readLocked {
            defer { recoveredChannels = [] }
            return recoveredChannels
        }
    }

    /// Open channels per owner, for `owner.info`-like reporting and tests.
    public func channelCount(owner name: String) -> Int {
        readLocked { channels.values.filter { $0 == name }.count }
    }
}
