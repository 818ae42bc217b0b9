// swift-tools-version:6.1
import PackageDescription

// Architecture (BRIEF section 8):
//   CIommufd            C shim: uAPI struct mirrors + ioctl numbers + SCM_RIGHTS/SO_PEERCRED helpers
//   CSystemd            libsystemd (sd_notify, sd_listen_fds_with_names)
//   IommufdCore         types shared by every layer and the `IommuBackend` protocol
//   IommufdKernel       the kernel backend: /dev/iommu + VFIO cdev ioctls, sysfs discovery, probing
//   IommufdSim          the simulator backend: an in-memory iommufd, errno for errno
//   IommufdConformance  one conformance suite, run against any backend
//   IommufdContract     the wire contract: params and results, the method catalogue, the error names
//                       and codes. The broker and daemon implement it; clients import it, never the broker
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
        // The wire contract: every method's params and results, the method catalogue, the error
        // names and codes. The broker and daemon implement it; clients import it.
        .target(name: "IommufdContract", dependencies: ["IommufdCore"]),
        .target(
            name: "IommufdBroker",
            dependencies: ["IommufdCore", "IommufdContract", .product(name: "Logging", package: "swift-log")]
        ),
        // The VMM channel (owner.delegate): its binary wire format and the server that runs it
        // on the broker (docs/vmm-channel.md).
        .target(
            name: "IommufdChannel",
            dependencies: ["IommufdCore", "IommufdBroker", "IommufdContract", "CIommufd", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "IommufdRPC",
            dependencies: ["IommufdCore", "IommufdContract", "CIommufd", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "IommufdDaemon",
            dependencies: [
                "IommufdCore", "IommufdKernel", "IommufdSim", "IommufdBroker", "IommufdContract", "IommufdRPC", "IommufdChannel",
                "CSystemd", "CIommufd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "iommufdd", dependencies: ["IommufdDaemon"]),
        // A client: the contract and the transport, never the broker (ContractTests checks that
        // iommuctl does not link it).
        .target(
            name: "IommuctlKit",
            dependencies: [
                "IommufdCore", "IommufdRPC", "IommufdContract", "CIommufd",
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
        // The benchmarks are clients of the contract; InProcessDaemon.swift alone runs a broker in
        // this process (the in-process floors), and it is the only file that imports the broker.
        .executableTarget(
            name: "iommufdd-bench",
            dependencies: [
                "IommufdCore", "IommufdSim", "IommufdBroker", "IommufdContract", "IommufdRPC", "IommufdChannel",
                // SplitMix64, the one copy the tests use too.
                "TestProcesses",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // systemd's side of the fd-store protocol, for the restart tests and vm-e2e.
        .target(name: "IommufdTestSupervisor", dependencies: ["IommufdCore", "CIommufd"]),
        // A client of the daemon in the VM; KernelFailNthChecks.swift and QueueChecks.swift drive a
        // broker in this process over the real kernel, the only files that import the broker.
        .executableTarget(
            name: "vm-e2e",
            dependencies: ["IommufdCore", "IommufdKernel", "IommufdBroker", "IommufdContract", "IommufdRPC", "IommufdChannel", "CIommufd", "IommufdTestSupervisor"]
        ),
        .testTarget(name: "IommufdCoreTests", dependencies: ["IommufdCore"]),
        .testTarget(name: "IommufdKernelTests", dependencies: ["IommufdKernel", "IommufdCore", "CIommufd"]),
        .testTarget(name: "IommufdSimTests", dependencies: ["IommufdSim", "IommufdCore", "TestProcesses"]),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["IommufdConformance", "IommufdSim", "IommufdCore"]
        ),
        .testTarget(name: "IommufdRPCTests", dependencies: ["IommufdRPC", "IommufdCore", "CIommufd", "TestProcesses"]),
        .testTarget(
            name: "IommuctlTests",
            dependencies: [
                "IommuctlKit", "IommufdRPC", "IommufdCore", "IommufdContract", "CIommufd", "TestProcesses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The contract: its golden file (contract.golden), the daemon's method table against it, its
        // error catalogue against the transport, the channel and libiommufdd, and that no client
        // imports (iommuctl: links) the broker. Depends on the executables it checks.
        .testTarget(
            name: "ContractTests",
            dependencies: [
                "iommuctl", "iommufdd", "IommufdContract", "IommufdCore", "IommufdRPC", "IommufdChannel",
                // The daemon's method table against the contract (ContractCatalogueTests).
                "IommufdDaemon", "IommufdBroker", "IommufdSim", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "IommufdBrokerTests", dependencies: ["IommufdBroker", "IommufdContract", "IommufdSim", "IommufdCore", "FaultInjection", "TestProcesses"]),
        // Test-only: a backend wrapper that fails the Nth call (the fail-nth sweep).
        .target(name: "FaultInjection", dependencies: ["IommufdCore"], path: "Tests/FaultInjection"),
        // Test-only: start child processes with posix_spawn (Foundation's Process trips ASan).
        .target(name: "TestProcesses", dependencies: ["IommufdCore"], path: "Tests/TestProcesses"),
        // Test-only C: connect as another uid (thread-scoped credentials) for the access tests.
        .target(name: "CTestIdentity", path: "Tests/CTestIdentity"),
        .testTarget(
            name: "RestartTests",
            dependencies: ["IommufdRPC", "IommufdBroker", "IommufdContract", "IommufdChannel", "IommufdSim", "IommufdCore", "CIommufd", "IommufdTestSupervisor", "TestProcesses"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["IommufdRPC", "IommufdCore", "CIommufd", "IommufdDaemon", "IommufdContract", "IommufdChannel", "CTestIdentity", "TestProcesses"]
        ),
        // Isolation matrix, hostile clients and fuzz regressions, against the real iommufdd binary
        // (depending on the executable makes `swift test` build it).
        .testTarget(
            name: "SecurityTests",
            dependencies: [
                "iommufdd", "fuzz-rpc", "fuzz-channel", "IommufdRPC", "IommufdCore", "IommufdContract", "IommufdDaemon", "IommufdChannel", "CIommufd",
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
                "FuzzReplay", "IommufdDaemon", "IommufdChannel", "IommufdContract", "IommufdRPC", "IommufdCore", "CIommufd",
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
