import Foundation

// Guest-side end-to-end checks for the test VM (scripts/vm-test runs them inside the guest).
//   vm-e2e kernel-backend   the kernel backend on the VM's VT-d and edu devices, with real DMA
//   vm-e2e daemon           iommufdd --backend kernel driven over its socket: discovery,
//                           policies, mock-device dirty tracking and vIOMMU, real DMA by a VMM
//                           (iommufdd is taken from beside this binary, or $IOMMUFDD)
//   vm-e2e restart          iommufdd --backend kernel under a guest-side systemd-like
//                           supervisor: state built, SIGKILL, restart from the fd store
//   vm-e2e systemd          iommufdd as scripts/install installed it, under the real systemd
//                           (PID 1 of the guest's systemd boot), driven with systemctl
//   vm-e2e crash            the crash-point sweep of the map and dirty paths on the kernel
//                           backend with mock devices (SIGKILL at each point, restart, check)
//   vm-e2e mini-vmm         libiommufdd's example VMM (mini-vmm, beside this binary or
//                           $MINI_VMM) on a delegated channel: maps, takes the edu device,
//                           confines itself, DMAs, and cannot attach its device elsewhere
//   vm-e2e queues           fault queues and vEVENTQs through an in-process broker over the
//                           kernel backend with a mock device (QueueChecks.swift)
//   vm-e2e qemu-guest       QEMU with the iommufdd backend (integrations/qemu; qemu-system-x86_64
//                           and edu-dma-guest.bin beside this binary, or $QEMU, $QEMU_GUEST) runs
//                           a bare-metal guest whose passed-through edu DMAs through the daemon
//   vm-e2e fail-nth         the kernel's fail-nth/failslab under broker requests on a mock
//                           device (KernelFailNthChecks.swift)
//   vm-e2e channel-nested   the channel's NESTED_ALLOC, REPLACE, INVALIDATE and HWPT_DESTROY
//                           against iommufdd --backend kernel on a mock device
//   vm-e2e invalidate-bench IOMMU_HWPT_INVALIDATE one entry a call in this process against the
//                           daemon's channel at 64 entries a message, 1 to 8 in flight, busy
//                           poll off and on (InvalidateBench.swift)
//   vm-e2e p2p              ioas.map of the selftest exporter's dma-bufs through an in-process
//                           broker over the kernel backend: P2P bytes, revoke, event (P2PChecks.swift)
let usage = "usage: vm-e2e kernel-backend | daemon | restart | crash | systemd | mini-vmm | queues | fail-nth | qemu-guest | channel-nested | invalidate-bench | p2p"
let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let suite = arguments.first else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}
let run = CheckRunner(suite: suite)
switch suite {
case "kernel-backend":
    do {
        try KernelBackendChecks(run: run).runAll()
    } catch {
        print("FAIL  \(suite): cannot open the kernel backend: \(error)")
        exit(1)
    }
case "daemon":
    if !DaemonChecks.runAll(run: run) { exit(1) }
case "restart":
    if !RestartChecks.runAll(run: run) { exit(1) }
case "crash":
    if !CrashChecks.runAll(run: run) { exit(1) }
case "systemd":
    if !SystemdChecks.runAll(run: run) { exit(1) }
case "queues":
    if !QueueChecks.runAll(run: run) { exit(1) }
case "p2p":
    if !P2PChecks.runAll(run: run) { exit(1) }
case "fail-nth":
    if !KernelFailNthChecks.runAll(run: run) { exit(1) }
case "mini-vmm":
    if !MiniVMMChecks.runAll(run: run) { exit(1) }
case "qemu-guest":
    if !QEMUGuestChecks.runAll(run: run) { exit(1) }
case "channel-nested":
    if !ChannelNestedChecks.runAll(run: run, bench: false) { exit(1) }
case "invalidate-bench":
    if !ChannelNestedChecks.runAll(run: run, bench: true) { exit(1) }
default:
    FileHandle.standardError.write(Data("vm-e2e: unknown suite '\(suite)'\n\(usage)\n".utf8))
    exit(2)
}
exit(run.finish() ? 0 : 1)
