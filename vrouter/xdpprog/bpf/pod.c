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
// packet to another unpoliced pod of its network, replayed in the kernel.
// The agent installs, per ingress device, the VRF and the vRouter MAC
// (short_in), and per (VRF, pod address) where the pod is (short_out, in
// short.h), only where the forwarder would do exactly this: for a local pod
// TTL - 1, the pod's MAC, the vRouter's MAC as source, out of the pod's
// veth; for a pod on another node TTL - 1 and the tunnel's outer headers
// (MPLSoUDP or VXLAN, as package encap writes them) or the next hop's MACs
// (fabric forwarding), out of the fabric NIC. Anything else the forwarder
// must see (other EtherTypes, another destination MAC, IPv4 options or
// fragments, a bad header checksum, TTL <= 1, an address without an entry,
// a hairpin, a packet too big for the fabric) goes to the socket as before,
// untouched. xvr_fabric's half (fabric.c) delivers what arrives.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "short.h"

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

struct short_port {
	__u32 vrf;
	__u8 mac[6];            // the vRouter MAC: destination in, source out
	__u8 pad[2];
};

// short_in: ingress ifindex -> the port's VRF; no entry: no shortcut.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVR_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct short_port);
} short_in SEC(".maps");

// flow_entropy is encap.FlowEntropy of a plain_ipv4 header: the 16 bits
// whose low 14 make the outer UDP source port.
static __always_inline __u16 flow_entropy(const struct iphdr *ip, const void *end)
{
	__u64 h = ((__u64)bpf_ntohl(ip->saddr) << 32) | bpf_ntohl(ip->daddr);
	__u64 key = ip->protocol;

	if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) && (void *)ip + 24 <= end)
		key |= (__u64)bpf_ntohl(*(__be32 *)((void *)ip + 20)) << 8;
	h ^= key * 0x9e3779b97f4a7c15ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (__u16)(h ^ h >> 16 ^ h >> 32 ^ h >> 48);
}

// outer_csum is the outer IPv4 header's checksum, summed from the values
// as encap's writeIPv4 does.
static __always_inline __u16 outer_csum(__u32 total, __u32 frag, __u32 ttl, __be32 s, __be32 d)
{
	__u32 a = bpf_ntohl(s), b = bpf_ntohl(d);
	__u32 acc = 0x4500 + total + frag + (ttl << 8) + IPPROTO_UDP;

	acc += (a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	return ~acc & 0xffff;
}

// write_outer fills the outer Ethernet, IPv4 and UDP headers (42 bytes at
// data, checked by the caller) of a frame of n bytes, as encap's
// writeOuter: IP ID 0, UDP checksum 0.
static __always_inline void write_outer(void *data, __u32 n, const struct short_dst *out,
					__u16 entropy, __u16 dport)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 total = n - sizeof(*eth);
	__u32 frag = out->df ? 0x4000 : 0;

	__builtin_memcpy(eth->h_dest, out->mac, 6);
	__builtin_memcpy(eth->h_source, out->src_mac, 6);
	eth->h_proto = bpf_htons(ETH_P_IP);
	*(__u8 *)ip = 0x45;
	ip->tos = 0;
	ip->tot_len = bpf_htons(total);
	ip->id = 0;
	ip->frag_off = bpf_htons(frag);
	ip->ttl = out->ttl;
	ip->protocol = IPPROTO_UDP;
	ip->check = bpf_htons(outer_csum(total, frag, out->ttl, out->saddr, out->daddr));
	ip->saddr = out->saddr;
	ip->daddr = out->daddr;
	udp->source = bpf_htons(0xc000 | (entropy & 0x3fff));
	udp->dest = bpf_htons(dport);
	udp->len = bpf_htons(total - sizeof(*ip));
	udp->check = 0;
}

// Bytes a tunnel adds (encap.Overhead): MPLSoUDP's outer headers replace the
// inner Ethernet header; VXLAN carries the whole frame.
#define MPLS_OVERHEAD (14 + 20 + 8 + 4 - 14)
#define VXLAN_OVERHEAD (14 + 20 + 8 + 8)

// tunnel_at does toTunnel's work for one encapsulation (oh bytes of
// overhead, the inner IPv4 header at inner once they are in place; both
// constants after inlining): TTL - 1, VXLAN's inner MACs, the outer headers
// in the headroom, out of the fabric NIC. It returns -1, the frame
// untouched, where the forwarder must decide (too big once encapsulated,
// no headroom).
static __always_inline int tunnel_at(struct xdp_md *ctx, const struct short_dst *out,
				     const __u8 *router, __u32 slot, const __u32 oh,
				     const __u32 inner, const int mpls)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 n = end - data;

	if ((void *)(ip + 1) > end)
		return -1;
	if (out->mtu && bpf_ntohs(ip->tot_len) + oh > out->mtu)
		return -1;
	if (n + oh - sizeof(struct ethhdr) > 0xffff)
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)oh))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	ip = data + inner;
	if ((void *)(ip + 1) > end)
		return XDP_DROP; // cannot be: the frame had this header before the move
	dec_ttl(ip);
	if (mpls) {
		*(__be32 *)(data + 42) = bpf_htonl(out->label << 12 | 1 << 8 | ip->ttl);
		write_outer(data, n + oh, out, flow_entropy(ip, end), XVR_PORT_MPLSOUDP);
	} else {
		struct ethhdr *ieth = data + 50;

		__builtin_memcpy(ieth->h_dest, out->inner_mac, 6);
		__builtin_memcpy(ieth->h_source, router, 6);
		*(__be32 *)(data + 42) = bpf_htonl(0x08000000);
		*(__be32 *)(data + 46) = bpf_htonl(out->label << 8);
		write_outer(data, n + oh, out, flow_entropy(ip, end), XVR_PORT_VXLAN);
	}
	count(slot, n);
	return bpf_redirect_map(&short_tx, out->ifindex, XDP_DROP);
}

// Bytes a tunnel adds (encap.Overhead): MPLSoUDP's outer headers replace the
// inner Ethernet header; VXLAN carries the whole frame.
#define MPLS_OVERHEAD (14 + 20 + 8 + 4 - 14)
#define VXLAN_OVERHEAD (14 + 20 + 8 + 8)

static __always_inline int tunnel(struct xdp_md *ctx, const struct short_dst *out,
				  const __u8 *router, __u32 slot)
{
	if (out->kind == XVR_SHORT_MPLSOUDP)
		return tunnel_at(ctx, out, router, slot, MPLS_OVERHEAD, 14 + 20 + 8 + 4, 1);
	return tunnel_at(ctx, out, router, slot, VXLAN_OVERHEAD, 14 + 20 + 8 + 8 + 14, 0);
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
	struct short_key key;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	in = bpf_map_lookup_elem(&short_in, &ifindex);
	if (!in || !mac_eq(eth->h_dest, in->mac))
		return -1;
	if (!plain_ipv4(ip, end) || ip->ttl <= 1)
		return -1;
	key.vrf = in->vrf;
	key.addr = ip->daddr;
	out = bpf_map_lookup_elem(&short_out, &key);
	if (!out || out->ifindex == ifindex)
		return -1;
	switch (out->kind) {
	case XVR_SHORT_LOCAL:
		dec_ttl(ip);
		__builtin_memcpy(eth->h_dest, out->mac, 6);
		__builtin_memcpy(eth->h_source, in->mac, 6);
		break;
	case XVR_SHORT_FABRIC:
		if (out->mtu && bpf_ntohs(ip->tot_len) > out->mtu)
			return -1;
		dec_ttl(ip);
		__builtin_memcpy(eth->h_dest, out->mac, 6);
		__builtin_memcpy(eth->h_source, out->src_mac, 6);
		break;
	case XVR_SHORT_MPLSOUDP:
	case XVR_SHORT_VXLAN:
		return tunnel(ctx, out, in->mac, slot);
	default:
		return -1;
	}
	count(slot, end - data);
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
