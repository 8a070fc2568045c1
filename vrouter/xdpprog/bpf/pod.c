// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// xvr_pod: the XDP program on the host side of every pod veth.
//
// Every frame is redirected into the AF_XDP socket registered for its
// (device, rx queue), except the one case the shortcut maps decide (below).
// The Go side (package xdpprog) owns every map; the program only reads them
// and counts. Constants here must match program.go (Load checks the map
// sizes against them).
//
// The shortcut: the vRouter's own decision for an unpoliced pod's IPv4
// packet to another unpoliced local pod of its network, replayed in the
// kernel. The agent installs, per ingress device, the VRF and the vRouter
// MAC (short_in), and per (VRF, pod address) the pod's device and MAC
// (short_out), only where the forwarder would do exactly this: TTL - 1, the
// destination pod's MAC, the vRouter's MAC as source, out of the pod's veth.
// Anything else the forwarder must see (other EtherTypes, another
// destination MAC, IPv4 options or fragments, a bad header checksum, TTL
// <= 1, an address without an entry, a hairpin) goes to the socket as
// before, untouched.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// XVR_MAX_PORTS is how many devices may carry xvr_pod at once.
#define XVR_MAX_PORTS 4096
// XVR_MAX_QUEUES is how many rx queues per device may have a socket.
#define XVR_MAX_QUEUES 8
// XVR_MAX_SHORTCUTS is how many (VRF, pod address) deliveries fit.
#define XVR_MAX_SHORTCUTS 65536

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

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

struct short_port {
	__u32 vrf;
	__u8 mac[6];            // the vRouter MAC: destination in, source out
	__u8 pad[2];
};

struct short_key {
	__u32 vrf;
	__be32 addr;            // the pod's address, network order
};

struct short_dst {
	__u32 ifindex;          // the pod's host-side veth
	__u8 mac[6];            // the pod's MAC
	__u8 pad[2];
};

struct short_count {
	__u64 packets;
	__u64 bytes;
};

// short_in: ingress ifindex -> the port's VRF; no entry: no shortcut.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVR_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct short_port);
} short_in SEC(".maps");

// short_out: (VRF, pod address) -> the pod's device and MAC.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVR_MAX_SHORTCUTS);
	__type(key, struct short_key);
	__type(value, struct short_dst);
} short_out SEC(".maps");

// short_tx: the devices short_out names, by ifindex (redirect targets).
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, XVR_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} short_tx SEC(".maps");

// short_stats: port slot -> frames the shortcut took in on that port.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVR_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct short_count);
} short_stats SEC(".maps");

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) |
		(a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

// header_ok: an option-less IPv4 header whose checksum verifies.
static __always_inline int header_ok(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

// shortcut returns the verdict of a frame the shortcut delivers, or -1 for
// one the forwarder must see (the frame is then untouched).
static __always_inline int shortcut(struct xdp_md *ctx, __u32 slot)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 ifindex = ctx->ingress_ifindex;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct short_port *in;
	struct short_dst *out;
	struct short_count *st;
	struct short_key key;
	__u32 check;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	in = bpf_map_lookup_elem(&short_in, &ifindex);
	if (!in || !mac_eq(eth->h_dest, in->mac))
		return -1;
	if (*(__u8 *)ip != 0x45 || ip->ttl <= 1 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return -1;
	if (bpf_ntohs(ip->tot_len) < sizeof(*ip) || bpf_ntohs(ip->tot_len) > end - (void *)ip)
		return -1;
	if (!header_ok(ip))
		return -1;
	key.vrf = in->vrf;
	key.addr = ip->daddr;
	out = bpf_map_lookup_elem(&short_out, &key);
	if (!out || out->ifindex == ifindex)
		return -1;
	// TTL - 1 with the RFC 1624 update (as the kernel's ip_decrease_ttl).
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
	__builtin_memcpy(eth->h_dest, out->mac, 6);
	__builtin_memcpy(eth->h_source, in->mac, 6);
	st = bpf_map_lookup_elem(&short_stats, &slot);
	if (st) {
		st->packets++;
		st->bytes += end - data;
	}
	return bpf_redirect_map(&short_tx, out->ifindex, XDP_DROP);
}

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
	int verdict;

	if (!slot)
		return XDP_PASS;
	if (queue >= XVR_MAX_QUEUES || *slot >= XVR_MAX_PORTS)
		return XDP_DROP;
	verdict = shortcut(ctx, *slot);
	if (verdict >= 0)
		return verdict;
	return bpf_redirect_map(&xsks, *slot * XVR_MAX_QUEUES + queue, XDP_DROP);
}

char __license[] SEC("license") = "Dual BSD/GPL";
