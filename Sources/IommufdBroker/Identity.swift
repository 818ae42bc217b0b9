#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

/// What a connection may do (BRIEF section 6).
public enum Role: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    /// Reads and changes everything, including other managers' owners.
    case admin
    /// Creates owners and acts on its own owners only.
    case manager
    /// list / info / metrics / subscribe: reads everything, changes nothing.
    case reader

    private var rank: Int {
        switch self {
        case .reader: 0
        case .manager: 1
        case .admin: 2
        }
    }
    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// An identified, authorised client connection.
public struct Caller: Hashable, Sendable, Codable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public var role: Role
    /// The identity owners are tagged with: the matching rule's name, else `"uid:N"`.
    /// Two connections with the same identity are the same manager.
    public var identity: String
    /// May receive bound device fds (`device.fd`).
    public var trustedVMM: Bool
    /// Pinned-byte limit for each owner this identity creates; nil = unlimited.
    public var quotaBytes: UInt64?
    /// The one owner a delegated channel acts as (`owner.delegate`): every other owner, and
    /// every object of another owner, is answered as absent, whatever the identity's role.
    public var scopeOwner: String?

    public init(uid: UInt32, gid: UInt32, pid: Int32, role: Role, identity: String, trustedVMM: Bool = false, quotaBytes: UInt64? = nil) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.role = role
        self.identity = identity
        self.trustedVMM = trustedVMM
        self.quotaBytes = quotaBytes
    }

    enum CodingKeys: String, CodingKey {
        case uid, gid, pid, role, identity
        case trustedVMM = "trusted_vmm"
        case quotaBytes = "quota_bytes"
        case scopeOwner = "scope_owner"
    }
}

/// One access rule of the config: who (a uid or a group) gets which role.
public struct AccessRule: Hashable, Sendable, Codable {
    public enum Subject: Hashable, Sendable, Codable {
        case uid(UInt32)
        /// Matches the primary gid of the peer or any supplementary group of its uid.
        case gid(UInt32)
    }
    public var subject: Subject
    public var role: Role
    /// Identity name; defaults to `"uid:N"` / `"gid:N"`.
    public var name: String?
    public var trustedVMM: Bool
    public var quotaBytes: UInt64?

    /// The identity of callers this rule matches: `name`, else `"uid:N"` / `"gid:N"`.
    public var identity: String {
        switch subject {
        case .uid(let u): name ?? "uid:\(u)"
        case .gid(let g): name ?? "gid:\(g)"
        }
    }

    public init(_ subject: Subject, role: Role, name: String? = nil, trustedVMM: Bool = false, quotaBytes: UInt64? = nil) {
        self.subject = subject
        self.role = role
        self.name = name
        self.trustedVMM = trustedVMM
        self.quotaBytes = quotaBytes
    }
}

/// Maps peer credentials (SO_PEERCRED) to a `Caller`, or refuses them.
///
/// Rules on a uid win over rules on a group; among group rules the highest role wins (ties: the
/// first in the config). uid 0 is an admin when `rootIsAdmin` (default) even without a rule.
public struct AccessControl: Sendable {
    public var rules: [AccessRule]
    public var rootIsAdmin: Bool
    /// Supplementary groups of a uid (whose primary gid is the second argument).
    public var groupsOf: @Sendable (UInt32, UInt32) -> [UInt32]

    public init(rules: [AccessRule], rootIsAdmin: Bool = true, groupsOf: @escaping @Sendable (UInt32, UInt32) -> [UInt32] = AccessControl.systemGroups) {
        self.rules = rules
        self.rootIsAdmin = rootIsAdmin
        self.groupsOf = groupsOf
    }

    /// The caller for these peer credentials, or nil: refuse the connection.
    public func resolve(uid: UInt32, gid: UInt32, pid: Int32) -> Caller? {
        if let rule = rules.first(where: { $0.subject == .uid(uid) }) {
            return caller(rule, uid: uid, gid: gid, pid: pid)
        }
        let groups = Set([gid] + groupsOf(uid, gid))
        var best: AccessRule?
        for rule in rules {
            guard case .gid(let g) = rule.subject, groups.contains(g) else { continue }
            if let current = best, !(current.role < rule.role) { continue }
            best = rule
        }
        if let best { return caller(best, uid: uid, gid: gid, pid: pid) }
        if uid == 0 && rootIsAdmin {
            return Caller(uid: 0, gid: gid, pid: pid, role: .admin, identity: "root", trustedVMM: true)
        }
        return nil
    }

    private func caller(_ rule: AccessRule, uid: UInt32, gid: UInt32, pid: Int32) -> Caller {
        Caller(uid: uid, gid: gid, pid: pid, role: rule.role, identity: rule.identity, trustedVMM: rule.trustedVMM, quotaBytes: rule.quotaBytes)
    }

    /// The rule that defines `identity`, if the config still has one.
    public func rule(forIdentity identity: String) -> AccessRule? {
        rules.first { $0.identity == identity }
    }

    /// Supplementary groups from the group database (`getgrouplist` on the uid's user name).
    public static let systemGroups: @Sendable (UInt32, UInt32) -> [UInt32] = { uid, gid in
        guard let user = userName(uid: uid) else { return [] }
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var n = count
            if getgrouplist(user, gid, &groups, &n) >= 0 {
                return Array(groups.prefix(Int(n)))
            }
            if n <= count { return [] }
            count = n
        }
    }

    /// The user name of `uid`, nil when the passwd database has none.
    public static func userName(uid: UInt32) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil, let name = pwd.pw_name else { return nil }
        return String(cString: name)
    }

    /// A user name's uid (for configs that name users).
    public static func uid(ofUser name: String) -> UInt32? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwnam_r(name, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return pwd.pw_uid
    }

    /// A group name's gid (for configs that name groups).
    public static func gid(ofGroup name: String) -> UInt32? {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return grp.gr_gid
    }
}
