import IommufdContract
import IommufdCore

// `event.queue` notifications (branch `queues`).
extension BrokerEvent {
    private enum QueueKeys: String, CodingKey {
        case owner, queue, kind, sequence, flags, data
        case lostEvents = "lost_events"
        case device
        case deviceID = "device_id"
        case pasid, group, perm, address, cookie
        case lastPage = "last_page"
    }

    /// `{"owner", "queue", "kind": "veventq", "sequence", "flags", "lost_events", "data": hex}`
    /// or `{"owner", "queue", "kind": "fault", "device", "device_id", "pasid", "group", "perm",
    /// "address", "cookie", "flags", "last_page"}`.
    static func encodeQueueRecord(owner: String, queue: ObjectID, notice: QueueNotice, to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: QueueKeys.self)
        try c.encode(owner, forKey: .owner)
        try c.encode(queue, forKey: .queue)
        switch notice {
        case .vevent(let e):
            try c.encode("veventq", forKey: .kind)
            try c.encode(e.sequence, forKey: .sequence)
            try c.encode(e.flags, forKey: .flags)
            try c.encode(e.lostEvents, forKey: .lostEvents)
            let digits = Array("0123456789abcdef")
            try c.encode(String(e.data.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }), forKey: .data)
        case .fault(let f, let device):
            try c.encode("fault", forKey: .kind)
            try c.encodeIfPresent(device, forKey: .device)
            try c.encode(f.deviceID, forKey: .deviceID)
            try c.encode(f.pasid, forKey: .pasid)
            try c.encode(f.groupID, forKey: .group)
            try c.encode(f.perm, forKey: .perm)
            try c.encode(f.address, forKey: .address)
            try c.encode(f.cookie, forKey: .cookie)
            try c.encode(f.flags, forKey: .flags)
            try c.encode(f.flags & PageFault.lastPage != 0, forKey: .lastPage)
        }
    }
}
