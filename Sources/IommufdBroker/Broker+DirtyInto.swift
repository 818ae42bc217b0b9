#if canImport(Glibc)
import Glibc
#endif
import IommufdContract
import IommufdCore

extension Broker {
    /// A bitmap file a client hands over for `dirty.read` `into`: a memfd (tmpfs or hugetlbfs)
    /// open for writing. Anything else is refused before the read: the daemon writes into it
    /// while it holds the broker, and a file on a FUSE or network filesystem could block that
    /// write (and every other owner) for as long as its server likes.
    public static func checkBitmapMemfd(_ fd: Int32) throws {
        // F_GET_SEALS answers only for shmem (tmpfs, memfd) and hugetlbfs files; EINVAL otherwise.
        let fGetSeals: Int32 = 1034
        guard fcntl(fd, fGetSeals) >= 0 else {
            let err = Errno.current
            throw BrokerError.invalid("dirty.read: the 'into' file is not a memfd (fcntl(F_GET_SEALS) failed with \(err.name): it is not on tmpfs or hugetlbfs); create one with memfd_create and send it")
        }
        let mode = fcntl(fd, F_GETFL)
        guard mode >= 0, (mode & O_ACCMODE) != O_RDONLY else {
            throw BrokerError.invalid("dirty.read: the 'into' memfd is open read-only; send it open for writing (memfd_create gives O_RDWR)")
        }
    }
}
