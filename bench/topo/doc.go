// Package topo builds and tears down the whole-path benchmark topologies of
// xvr-bench: two "pods" (network namespaces) joined through one datapath —
// xvrd, Linux routing, a Linux bridge, Open vSwitch's userspace datapath
// with AF_XDP ports, kernel VXLAN between two node namespaces, or two xvrds
// on two node namespaces joined by a veth fabric (MPLSoUDP, VXLAN or native
// fabric forwarding) — with the same live-frames generator (bench/gen) on
// pod a's eth0 and the same counting sink on pod b's eth0 for every
// datapath.
//
// It is for xvr-bench and root tests; it is not for the daemon. It runs
// commands (ip, sysctl, ethtool, taskset, ovs-*) and needs root.
//
// Lifecycle traps:
//   - Every namespace and link gets a unique name (prefix, pid, counter;
//     at most 15 bytes) and Topology.Close deletes them by that exact name,
//     in reverse order of creation. Call Close even after a failed Build
//     step: Build cleans up after itself, but a Topology you got must be
//     closed.
//   - Linux forwarding rewrites headers in place in pages that the
//     live-frames generator recycles without re-initialising them; Source
//     attaches an XDP program to the ingress host veth that restores the
//     headers of every frame (see restoreInsns). xvr copies frames into its
//     UMEM and needs no restore.
//   - xvrd is started by this package (taskset, ip netns exec, exec chain, so
//     the pid is xvrd's) in its own process group and killed by that pid.
//     Its pollers are pinned to the forwarder CPU (-poller-cpus), the rest
//     of it runs on the other CPUs. Across nodes there are two xvrds, both
//     polling on the one forwarder CPU; Topology.ForwarderCPU sums their
//     CPU time.
//   - OVS (ovsdb-server, ovs-vswitchd) is started the same way, with its
//     own database, sockets and logs in a temporary directory (OVS_RUNDIR
//     and friends point there, and every ovs-* command names its socket),
//     never a system instance; Close deletes the bridge, stops both by pid
//     and removes the directory.
//   - Addresses are from 198.18.0.0/15 only.
package topo
