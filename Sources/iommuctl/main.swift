#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IommuctlKit

// A parent may have left signals blocked (signal masks survive exec); Ctrl-C must still stop
// `iommuctl watch`.
var none = sigset_t()
sigemptyset(&none)
sigprocmask(SIG_SETMASK, &none, nil)

exit(IommuCtl.run(arguments: Array(CommandLine.arguments.dropFirst())))
