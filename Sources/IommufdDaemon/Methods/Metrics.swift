import IommufdBroker
import IommufdContract
import IommufdCore
import IommufdRPC

/// `daemon.metrics`: the Prometheus text exposition format (version 0.0.4). The histograms'
/// buckets are `LatencyHistogram`'s fixed bounds, 10 µs to 10 s.
enum Metrics {
    static func exposition(_ service: DaemonService) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP iommufdd_\(name) \(help)\n# TYPE iommufdd_\(name) \(type)\n"
            for s in samples { out += "iommufdd_\(name)\(s.labels) \(s.value)\n" }
        }
        func one(_ name: String, _ type: String, _ help: String, _ value: some CustomStringConvertible) {
            metric(name, type, help, [("", value.description)])
        }
        let info = service.info()
        let c = info.counts
        metric("build_info", "gauge", "Version and backend of the running daemon.",
               [("{version=\"\(info.version)\",backend=\"\(info.backend)\"}", "1")])
        one("uptime_seconds", "gauge", "Seconds since the daemon started.", info.uptimeSeconds)
        one("owners", "gauge", "Owners (VMs) known to the daemon.", c.owners)
        one("ioas", "gauge", "IO address spaces.", c.ioas)
        one("hwpts", "gauge", "Hardware page tables.", c.hwpts)
        one("viommus", "gauge", "vIOMMU objects.", c.viommus)
        one("vdevices", "gauge", "vDevice objects.", c.vdevices)
        one("mappings", "gauge", "IOAS mappings.", c.mappings)
        one("pinned_bytes", "gauge", "Bytes mapped for DMA, counted against owner quotas.", c.pinnedBytes)
        one("devices_leased", "gauge", "Devices leased to an owner.", c.devicesLeased)
        one("devices_attached", "gauge", "Devices attached to a page table.", c.devicesAttached)
        one("dirty_tracking_ioas", "gauge", "IOAS with dirty tracking on.", c.dirtyTrackingIOAS)
        one("subscribers", "gauge", "Event subscriptions.", c.subscribers)
        metric("feature_supported", "gauge", "Whether the backend supports an iommufd feature (1) or not (0).",
               info.features.map { ("{feature=\"\($0.name)\"}", $0.supported ? "1" : "0") })
        if let m = service.server?.metrics {
            one("connections_open", "gauge", "Client connections open.", m.connectionsOpen)
            one("connections_accepted_total", "counter", "Client connections admitted.", m.connectionsAccepted)
            one("connections_rejected_total", "counter", "Connections closed because max_clients were open.", m.connectionsRejectedLimit)
            one("connections_refused_total", "counter", "Connections from identities without a role.", m.connectionsRefused)
            metric("disconnects_total", "counter", "Connections closed by the daemon, by reason.",
                   m.disconnects.sorted { $0.key < $1.key }.map { ("{reason=\"\($0.key)\"}", "\($0.value)") })
            one("requests_total", "counter", "JSON-RPC requests handled.", m.requests)
            metric("errors_total", "counter", "JSON-RPC error responses, by code.",
                   m.errorsByCode.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", "\($0.value)") })
            one("notifications_sent_total", "counter", "Event notifications pushed to clients.", m.notificationsSent)
            one("fds_received_total", "counter", "File descriptors received with SCM_RIGHTS.", m.fileDescriptorsReceived)
            one("fds_sent_total", "counter", "File descriptors sent with SCM_RIGHTS.", m.fileDescriptorsSent)
        }
        // MARK: chspin: what the VMM channels' adaptive spin did ([limits] channel_busy_poll_us).
        let spin = service.channels.spinCounters
        one("channel_spins_total", "counter", "Waits of a VMM channel's thread that began by polling without sleeping (its VMM came back within channel_busy_poll_us the time before).", spin.spins)
        one("channel_spin_hits_total", "counter", "Of those, the ones that found the VMM's next request (no thread wake-up).", spin.hits)
        one("channel_spin_lost_cpu_total", "counter", "Spins that lost their CPU to other work; each stops every channel from spinning for 100 ms.", spin.lostCPU)
        one("channel_spin_paused_total", "counter", "Waits of a quick VMM that did not spin because spinning was paused.", spin.paused)
        // MARK: pinggap: what the control socket's lingering worker did ([limits] rpc_linger_us, rpc_spin_us).
        if let l = service.server?.lingerCounters {
            one("rpc_lingers_total", "counter", "Waits of a worker that just answered a request for the same client's next one (rpc_linger_us), instead of going back to Dispatch.", l.waits)
            one("rpc_spins_total", "counter", "Of those, the ones that began by polling without sleeping (the client came back within rpc_spin_us the time before).", l.spin.spins)
            one("rpc_spin_hits_total", "counter", "Spins that found the client's next request (no thread wake-up).", l.spin.hits)
            one("rpc_spin_lost_cpu_total", "counter", "Spins that lost their CPU to other work; each stops every linger from spinning for 100 ms.", l.spin.lostCPU)
            one("rpc_spin_paused_total", "counter", "Waits of a quick client that did not spin because spinning was paused.", l.spin.paused)
            one("rpc_linger_sleeps_total", "counter", "Waits that slept in ppoll (no spin, or a spin that found nothing).", l.sleeps)
            one("rpc_linger_sleep_hits_total", "counter", "Sleeps woken by the client's next request (served on the same thread after one wake-up).", l.sleepHits)
        }
        metric("method_calls_total", "counter", "Calls by method.",
               service.methodCallCounts().sorted { $0.key < $1.key }.map { ("{method=\"\($0.key)\"}", "\($0.value)") })
        let latencies = service.methodLatencies().sorted { $0.key < $1.key }
        out += "# HELP iommufdd_request_duration_seconds Time the daemon took to run a request, by method (from dispatch to its result, broker lock wait included; not reading or writing the socket).\n"
        out += "# TYPE iommufdd_request_duration_seconds histogram\n"
        for (method, h) in latencies {
            out += h.exposition(name: "iommufdd_request_duration_seconds", labels: "method=\"\(method)\"")
        }
        out += "# HELP iommufdd_broker_owner_wait_seconds Time each map, copy, unmap, dirty read, ioas.destroy, dirty.stop or owner.release waited for an earlier one of the same owner (they run one at a time per owner; other owners' requests do not wait for them).\n"
        out += "# TYPE iommufdd_broker_owner_wait_seconds histogram\n"
        out += service.broker.ownerWaitHistogram().exposition(name: "iommufdd_broker_owner_wait_seconds", labels: "")
        out += "# HELP iommufdd_broker_lock_wait_seconds Time each acquisition of the broker's state lock waited for another request to release it.\n"
        out += "# TYPE iommufdd_broker_lock_wait_seconds histogram\n"
        out += service.broker.lockWaitHistogram().exposition(name: "iommufdd_broker_lock_wait_seconds", labels: "")
        return out
    }
}
