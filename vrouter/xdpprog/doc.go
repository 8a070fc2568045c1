// Package xdpprog owns xvr's XDP programs: the BPF C sources under bpf/,
// the bpf2go-generated loaders committed beside them, and the Go code that
// loads, attaches and feeds them.
//
// xvr_pod runs on the host side of every pod veth and redirects every frame
// into the AF_XDP socket registered for its (device, rx queue). A device the
// program does not know gets XDP_PASS; a known device whose queue has no
// socket gets XDP_DROP, because passing would hand pod frames to the node's
// own stack and bypass the vRouter (see bpf/pod.c).
//
// xvr_fabric (Fabric, LoadFabric) runs on the node's fabric NIC and
// redirects only xvr's frames (overlay UDP and SNAT return traffic to the
// node IP, IPv4 and ARP for fabric-forwarded pod subnets); everything else,
// and everything on a queue without a socket, gets XDP_PASS so the host's
// own traffic is untouched (see bpf/fabric.c and docs/xdp.md).
//
// Who may import it: the agent and the forwarder's port setup in xvrd, and
// tests. Nothing on the packet path calls it.
//
// Lifecycle traps:
//   - One Program per xvrd: Load once, Attach and Register per port, Close on
//     shutdown. The maps are not pinned, so a restart starts from empty maps;
//     an attachment is a bpf_link, so the kernel detaches it when the process
//     dies.
//   - Interface indexes are resolved in the network namespace of the calling
//     thread, by netlink and by the kernel's link_create alike. Call from the
//     host namespace, or from a goroutine locked to a thread in the right one.
//   - Register a device's sockets before Attach to lose no frame: once
//     attached, a queue without a socket drops.
//   - One Fabric per xvrd and fabric NIC: the first Attach or Register fixes
//     the device until Detach or Close.
//   - Attach replaces a stale xvr_pod attached through netlink (a crashed
//     older run, a manual ip link set xdp) but never a foreign program nor an
//     xvr_pod held by another process's bpf_link: it returns a *BusyError.
//
// Regenerating the objects needs clang and libbpf-dev (Debian 12: clang 14):
//
//	cd vrouter/xdpprog && go generate
//
// which runs
//
//	go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror" pod bpf/pod.c
//
// and the same with "-type fabric_config -type fabric_lpm_key fabric
// bpf/fabric.c" (gen_fabric.go), rewriting pod_bpfel.go, pod_bpfel.o,
// fabric_bpfel.go and fabric_bpfel.o. Commit them all; go build needs no
// clang. The same clang version reproduces the object byte for byte.
package xdpprog
