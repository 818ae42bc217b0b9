#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import IommuctlKit

exit(IommuCtl.run(arguments: Array(CommandLine.arguments.dropFirst())))
