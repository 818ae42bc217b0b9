import IommufdRPC

// MARK: p2p

extension Clients {
    /// A one-page dma-buf of the simulator's selftest exporter (`test.dmabuf_get`, as admin).
    func newDmabuf() throws -> Int32 {
        let (result, fds) = try admin.call("test.dmabuf_get", params: ["length": 4096])
        guard let fd = fds.first else { throw DaemonTestError("test.dmabuf_get answered \(result) without an fd") }
        return fd
    }
}
