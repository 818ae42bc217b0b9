// swift-tools-version:6.1
import PackageDescription

// Architecture (BRIEF section 8):
//   CIommufd            C shim: uAPI struct mirrors + ioctl numbers + SCM_RIGHTS/SO_PEERCRED helpers
//   CSystemd            libsystemd (sd_notify, sd_listen_fds_with_names)
//   IommufdCore         types shared by every layer and the `IommuBackend` protocol
//   IommufdKernel       the kernel backend: /dev/iommu + VFIO cdev ioctls, sysfs discovery, probing
//   IommufdSim          the simulator backend: an in-memory iommufd, errno for errno
//   IommufdConformance  one conformance suite, run against any backend
//   IommufdBroker       owners, roles, leases, policies (auto-domains, dirty, huge pages, quotas)
//   IommufdRPC          JSON-RPC 2.0 framing, codec and the Unix-socket server
//   IommufdDaemon       config (and its schema), systemd integration, method table, command line
//                       and man pages: the daemon as a library
//   IommuctlKit         iommuctl's commands, output formatting and exit codes (testable)
//   iommufdd / iommuctl / iommufd-conformance   thin executables
let package = Package(
    name: "iommufdd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "iommufdd", targets: ["iommufdd"]),
        .executable(name: "iommuctl", targets: ["iommuctl"]),
        .executable(name: "iommufd-conformance", targets: ["iommufd-conformance"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .target(
            name: "CIommufd",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(name: "IommufdCore"),
        .target(name: "IommufdKernel", dependencies: ["IommufdCore", "CIommufd"]),
        .target(name: "IommufdSim", dependencies: ["IommufdCore", "CIommufd"]),
        .target(name: "IommufdConformance", dependencies: ["IommufdCore"]),
        .target(
            name: "IommufdBroker",
            dependencies: ["IommufdCore", .product(name: "Logging", package: "swift-log")]
        ),
        // The VMM channel (owner.delegate): its binary wire format and the server that runs it
        // on the broker (docs/vmm-channel.md).
        .target(
            name: "IommufdChannel",
            dependencies: ["IommufdCore", "IommufdBroker", "CIommufd", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "IommufdRPC",
            dependencies: ["IommufdCore", "CIommufd", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "IommufdDaemon",
            dependencies: [
                "IommufdCore", "IommufdKernel", "IommufdSim", "IommufdBroker", "IommufdRPC", "IommufdChannel",
                "CSystemd", "CIommufd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "iommufdd", dependencies: ["IommufdDaemon"]),
        .target(
            name: "IommuctlKit",
            dependencies: [
                "IommufdCore", "IommufdRPC", "IommufdBroker", "CIommufd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "iommuctl", dependencies: ["IommuctlKit"]),
        .executableTarget(
            name: "iommufd-conformance",
            dependencies: [
                "IommufdConformance", "IommufdKernel", "IommufdSim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "iommufdd-bench",
            dependencies: [
                "IommufdCore", "IommufdSim", "IommufdBroker", "IommufdRPC", "IommufdChannel",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // systemd's side of the fd-store protocol, for the restart tests and vm-e2e.
        .target(name: "IommufdTestSupervisor", dependencies: ["IommufdCore", "CIommufd"]),
        .executableTarget(
            name: "vm-e2e",
            dependencies: ["IommufdCore", "IommufdKernel", "IommufdBroker", "IommufdRPC", "IommufdChannel", "CIommufd", "IommufdTestSupervisor"]
        ),
        .testTarget(name: "IommufdCoreTests", dependencies: ["IommufdCore"]),
        .testTarget(name: "IommufdKernelTests", dependencies: ["IommufdKernel", "IommufdCore", "CIommufd"]),
        .testTarget(name: "IommufdSimTests", dependencies: ["IommufdSim", "IommufdCore"]),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["IommufdConformance", "IommufdSim", "IommufdCore"]
        ),
        .testTarget(name: "IommufdRPCTests", dependencies: ["IommufdRPC", "IommufdCore", "CIommufd", "TestProcesses"]),
        .testTarget(
            name: "IommuctlTests",
            dependencies: [
                "IommuctlKit", "IommufdRPC", "IommufdCore", "IommufdBroker", "CIommufd", "TestProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "IommufdBrokerTests", dependencies: ["IommufdBroker", "IommufdSim", "IommufdCore", "FaultInjection"]),
        // Test-only: a backend wrapper that fails the Nth call (the fail-nth sweep).
        .target(name: "FaultInjection", dependencies: ["IommufdCore"], path: "Tests/FaultInjection"),
        // Test-only: start child processes with posix_spawn (Foundation's Process trips ASan).
        .target(name: "TestProcesses", dependencies: ["IommufdCore"], path: "Tests/TestProcesses"),
        // Test-only C: connect as another uid (thread-scoped credentials) for the access tests.
        .target(name: "CTestIdentity", path: "Tests/CTestIdentity"),
        .testTarget(
            name: "RestartTests",
            dependencies: ["IommufdRPC", "IommufdBroker", "IommufdChannel", "IommufdSim", "IommufdCore", "CIommufd", "IommufdTestSupervisor", "TestProcesses"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["IommufdRPC", "IommufdCore", "CIommufd", "IommufdDaemon", "IommufdBroker", "IommufdChannel", "CTestIdentity", "TestProcesses"]
        ),
        // Isolation matrix, hostile clients and fuzz regressions, against the real iommufdd binary
        // (depending on the executable makes `swift test` build it).
        .testTarget(
            name: "SecurityTests",
            dependencies: [
                "iommufdd", "fuzz-rpc", "fuzz-channel", "IommufdRPC", "IommufdCore", "IommufdBroker", "IommufdDaemon", "IommufdChannel", "CIommufd",
                "TestProcesses",
            ]
        ),
        // What both libFuzzer targets share: replaying saved inputs, handing over to libFuzzer.
        .target(name: "FuzzReplay"),
        // libFuzzer target over the VMM channel: its decoder, and the daemon serving a channel
        // (scripts/fuzz --target channel); a plain build replays inputs like fuzz-rpc.
        .executableTarget(
            name: "fuzz-channel",
            dependencies: [
                "FuzzReplay", "IommufdDaemon", "IommufdChannel", "IommufdBroker", "IommufdRPC", "IommufdCore", "CIommufd",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer target over the control socket (scripts/fuzz builds it with -sanitize=fuzzer);
        // a plain build replays inputs: `fuzz-rpc Fuzz/corpus/rpc Fuzz/regressions/rpc`.
        .executableTarget(
            name: "fuzz-rpc",
            dependencies: [
                "FuzzReplay", "IommufdDaemon", "IommufdRPC", "IommufdCore", "CIommufd",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
