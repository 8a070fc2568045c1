// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// xvr_pod: the XDP program on the host side of every pod veth.
//
// Every frame is redirected into the AF_XDP socket registered for its
// (device, rx queue). The Go side (package xdpprog) owns both maps; the
// program only reads them. Constants here must match xdpprog.go
// (Load checks the map sizes against them).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// XVR_MAX_PORTS is how many devices may carry xvr_pod at once.
#define XVR_MAX_PORTS 4096
// XVR_MAX_QUEUES is how many rx queues per device may have a socket.
#define XVR_MAX_QUEUES 8

// xsks: slot = port_slot * XVR_MAX_QUEUES + rx_queue_index -> AF_XDP socket.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVR_MAX_PORTS * XVR_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// ports: ingress ifindex -> port slot.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVR_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} ports SEC(".maps");

// A device xvr does not know is none of our business: XDP_PASS.
// A known device whose queue has no socket (daemon starting, restarting,
// or the queue is beyond XVR_MAX_QUEUES) drops: passing would hand pod
// frames to the node's own stack and bypass the vRouter's isolation.
SEC("xdp")
int xvr_pod(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 queue = ctx->rx_queue_index;
	__u32 *slot = bpf_map_lookup_elem(&ports, &ifindex);

	if (!slot)
		return XDP_PASS;
	if (queue >= XVR_MAX_QUEUES || *slot >= XVR_MAX_PORTS)
		return XDP_DROP;
	return bpf_redirect_map(&xsks, *slot * XVR_MAX_QUEUES + queue, XDP_DROP);
}

char __license[] SEC("license") = "Dual BSD/GPL";
