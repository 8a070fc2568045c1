// Package gen is the traffic generator and exact-counting sink of xvr's
// forwarding benchmarks.
//
// A Generator injects copies of one frame into a veth with the kernel's XDP
// live-frames test run (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): a
// trivial XDP_TX program runs as if the frame had arrived on the veth, and
// XDP_TX there means "redirect out of that veth", so every copy is
// transmitted to the veth's peer. Where the kernel refuses live frames
// (LiveFramesErr; some sandboxed kernels answer EPERM even to root), a
// Generator sends through an AF_XDP socket's TX ring in copy mode instead
// (Mode tells which): about 2 Mpps on one core rather than 5, frames reach
// the peer as skbs, and the Generators of one interface share its socket.
// A live-frames Generator also paces (SendPaced, pacer.go): a second XDP
// program reads the clock every iteration and transmits only when the next
// frame is due, optionally from a cycle of UDP source ports (SetFlows).
// A Sink is an XDP program attached in driver
// mode that counts every frame in a per-CPU array and drops it.
//
// Benchmarks and root tests of this module may import it; it is not for the
// daemon.
//
// Lifecycle traps:
//   - The kernel resolves an ifindex in the network namespace of the calling
//     OS thread. Call NewGenerator and AttachSink inside InNetNS (or in a
//     process that lives in the right namespace). Generator.Send switches to
//     the generator's namespace by itself.
//   - Live frames (not AF_XDP) leave a veth only when its peer can receive XDP frames:
//     the peer needs an XDP program attached (a Sink, or xvrd's AF_XDP
//     program) or GRO enabled. Otherwise frames are dropped silently; the
//     kernel reports redirect errors only through tracepoints.
//   - Programs, maps and the sink's XDP link are file descriptors: Close
//     them, or they live until the process exits.
package gen
