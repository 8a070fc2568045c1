// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// xvr_fabric: the XDP program on the node's fabric NIC.
//
// It redirects only what is the vRouter's into the AF_XDP socket of the
// frame's rx queue and gives XDP_PASS to everything else, so the host's own
// traffic (SSH, kubelet, the node's TCP) never notices it:
//
//   1. IPv4 UDP to the node IP, destination port 6635 (MPLSoUDP) or 4789
//      (VXLAN): overlay traffic.
//   2. IPv4 to an address inside a fabric-forwarded pod subnet (prefixes).
//   3. ARP whose target protocol address is inside such a subnet.
//   4. Fabric SNAT return traffic to the node IP: TCP to a port in
//      [tcp_lo, tcp_hi], UDP to a port in [udp_lo, udp_hi], ICMP echo
//      replies whose identifier is in [udp_lo, udp_hi].
//
// Of what is the vRouter's, the shortcut (short.h's maps, xvr_pod's) takes
// IPv4 for an unpoliced local pod, as the forwarder's fabricIn and
// fabricNative would: MPLSoUDP or VXLAN with an option-less outer header,
// a zero UDP checksum and no bytes beyond the datagram (VXLAN: an inner
// destination MAC that overlayL2 accepts), decapsulated; or
// natively forwarded with TTL - 1. It writes the pod's MAC and the
// vRouter's and redirects to the pod's veth.
//
// Frames to the node IP are judged by classes 1 and 4 only, never by the
// prefixes. Fragments to the node IP, malformed or truncated frames, VLAN
// tagged frames and IPv6 pass. A queue without a socket passes too (the
// fallback of bpf_redirect_map). docs/xdp.md explains each choice.
//
// The Go side (fabric.go) owns the maps; constants here must match it
// (LoadFabric checks the map sizes).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "short.h"

// XVR_FABRIC_MAX_QUEUES is how many rx queues of the fabric NIC may have a
// socket; frames on a higher queue pass.
#define XVR_FABRIC_MAX_QUEUES 64
// XVR_FABRIC_MAX_PREFIXES is how many fabric-forwarded subnets fit.
#define XVR_FABRIC_MAX_PREFIXES 4096

// fabric_config.flags: which node-IP classes are on.
#define XVR_FABRIC_F_OVERLAY 1
#define XVR_FABRIC_F_SNAT 2

#define PORT_MPLSOUDP 6635
#define PORT_VXLAN 4789

// icmp_echo is the start of an ICMP echo message (RFC 792); linux/icmp.h
// would pull in libc's headers, which a BPF target cannot have.
struct icmp_echo {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id;
	__be16 sequence;
};

#define ICMP_ECHOREPLY 0

struct fabric_config {
	__be32 node_ip;         // network order; 0: unknown
	__u16 tcp_lo, tcp_hi;   // SNAT TCP ports, host order, inclusive
	__u16 udp_lo, udp_hi;   // SNAT UDP ports and ICMP ids, host order, inclusive
	__u32 flags;            // XVR_FABRIC_F_*
};

struct fabric_lpm_key {
	__u32 prefixlen;
	__u8 addr[4];           // network order
};

// arp_eth is an Ethernet/IPv4 ARP body (RFC 826), byte arrays only so no
// field is read unaligned.
struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

// config: key 0 -> the one fabric_config.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fabric_config);
} config SEC(".maps");

// prefixes: fabric-forwarded pod subnets; the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XVR_FABRIC_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fabric_lpm_key);
	__type(value, __u8);
} prefixes SEC(".maps");

// xsks: rx_queue_index -> AF_XDP socket.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVR_FABRIC_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

static __always_inline int in_prefixes(const __u8 *addr)
{
	struct fabric_lpm_key key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, addr, 4);
	return bpf_map_lookup_elem(&prefixes, &key) != NULL;
}

static __always_inline int in_range(__u16 v, __u16 lo, __u16 hi)
{
	return v >= lo && v <= hi;
}

static __always_inline int udp_ours(void *l4, void *end, __u32 room,
				    const struct fabric_config *cfg)
{
	struct udphdr *udp = l4;
	__u16 dport;

	if ((void *)(udp + 1) > end || room < sizeof(*udp))
		return 0;
	dport = bpf_ntohs(udp->dest);
	if ((cfg->flags & XVR_FABRIC_F_OVERLAY) &&
	    (dport == PORT_MPLSOUDP || dport == PORT_VXLAN))
		return 1;
	return (cfg->flags & XVR_FABRIC_F_SNAT) &&
	       in_range(dport, cfg->udp_lo, cfg->udp_hi);
}

static __always_inline int tcp_ours(void *l4, void *end, __u32 room,
				    const struct fabric_config *cfg)
{
	struct tcphdr *tcp = l4;

	if ((void *)(tcp + 1) > end || room < sizeof(*tcp))
		return 0;
	return (cfg->flags & XVR_FABRIC_F_SNAT) &&
	       in_range(bpf_ntohs(tcp->dest), cfg->tcp_lo, cfg->tcp_hi);
}

// icmp_ours: echo replies to pings SNATed with an identifier from the UDP
// pool. Echo requests and errors are the host's.
static __always_inline int icmp_ours(void *l4, void *end, __u32 room,
				     const struct fabric_config *cfg)
{
	struct icmp_echo *icmp = l4;

	if ((void *)(icmp + 1) > end || room < sizeof(*icmp))
		return 0;
	return (cfg->flags & XVR_FABRIC_F_SNAT) &&
	       icmp->type == ICMP_ECHOREPLY &&
	       in_range(bpf_ntohs(icmp->id), cfg->udp_lo, cfg->udp_hi);
}

// node_ours judges an IPv4 packet to the node IP whose header (hlen bytes)
// and total length (tot bytes) are known to fit in the frame.
static __always_inline int node_ours(struct iphdr *ip, void *end, __u32 hlen,
				     __u32 tot, const struct fabric_config *cfg)
{
	void *l4 = (void *)ip + hlen;
	__u32 room = tot - hlen;

	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return 0;
	switch (ip->protocol) {
	case IPPROTO_UDP:
		return udp_ours(l4, end, room, cfg);
	case IPPROTO_TCP:
		return tcp_ours(l4, end, room, cfg);
	case IPPROTO_ICMP:
		return icmp_ours(l4, end, room, cfg);
	}
	return 0;
}

static __always_inline int ipv4_ours(struct iphdr *ip, void *end,
				     const struct fabric_config *cfg)
{
	__u32 hlen, tot;

	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return 0;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen || tot > (__u32)(end - (void *)ip))
		return 0;
	if (cfg->node_ip && ip->daddr == cfg->node_ip)
		return node_ours(ip, end, hlen, tot, cfg);
	return in_prefixes((const __u8 *)&ip->daddr);
}

static __always_inline int arp_ours(struct arp_eth *arp, void *end)
{
	if ((void *)(arp + 1) > end)
		return 0;
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != ETH_ALEN || arp->plen != 4)
		return 0;
	if (arp->op != bpf_htons(1) && arp->op != bpf_htons(2))
		return 0;
	return in_prefixes(arp->tpa);
}

// deliver writes the local pod's Ethernet header at the frame's (new)
// start and redirects it to the pod's veth.
static __always_inline int deliver(struct xdp_md *ctx, const struct short_dst *out, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_DROP; // cannot be: the caller saw more than this
	__builtin_memcpy(eth->h_dest, out->mac, 6);
	__builtin_memcpy(eth->h_source, out->src_mac, 6);
	eth->h_proto = bpf_htons(ETH_P_IP);
	count(XVR_SHORT_FABRIC_SLOT, n);
	return bpf_redirect_map(&short_tx, out->ifindex, XDP_DROP);
}

static __always_inline struct short_dst *local_pod(__u32 vrf, __be32 addr)
{
	struct short_key key = { .vrf = vrf, .addr = addr };
	struct short_dst *out = bpf_map_lookup_elem(&short_out, &key);

	if (!out || out->kind != XVR_SHORT_LOCAL)
		return NULL;
	return out;
}

// overlay_shortcut decapsulates MPLSoUDP or VXLAN to the node IP for a
// local pod (ip: the outer header, plain_ipv4 already); -1: the forwarder's.
static __always_inline int overlay_shortcut(struct xdp_md *ctx, struct iphdr *ip, void *end)
{
	struct udphdr *udp = (void *)(ip + 1);
	struct short_label_key lk;
	struct short_label *l;
	struct short_dst *out;
	struct iphdr *inner;
	__u32 tot = bpf_ntohs(ip->tot_len);
	__u32 n = end - (void *)(long)ctx->data;
	__u32 e;

	if (ip->protocol != IPPROTO_UDP || tot != (__u32)(end - (void *)ip) || (void *)(udp + 1) > end)
		return -1;
	if (bpf_ntohs(udp->len) != tot - sizeof(*ip) || udp->check != 0)
		return -1;
	if (udp->dest == bpf_htons(XVR_PORT_MPLSOUDP)) {
		__be32 *mpls = (void *)(udp + 1);

		inner = (void *)(mpls + 1);
		if ((void *)inner > end)
			return -1;
		e = bpf_ntohl(*mpls);
		if (!(e & 0x100) || (e >> 12) < 16)
			return -1;
		lk.kind = XVR_SHORT_MPLSOUDP;
		lk.label = e >> 12;
		l = bpf_map_lookup_elem(&short_labels, &lk);
		if (!l || !plain_ipv4(inner, end))
			return -1;
		out = local_pod(l->vrf, inner->daddr);
		if (!out || bpf_xdp_adjust_head(ctx, 14 + 20 + 8 + 4 - 14))
			return -1;
		return deliver(ctx, out, n);
	}
	if (udp->dest == bpf_htons(XVR_PORT_VXLAN)) {
		__u8 *vx = (void *)(udp + 1);
		struct ethhdr *ieth = (void *)(vx + 8);

		inner = (void *)(ieth + 1);
		if ((void *)inner > end || !(vx[0] & 0x08) || ieth->h_proto != bpf_htons(ETH_P_IP))
			return -1;
		lk.kind = XVR_SHORT_VXLAN;
		lk.label = bpf_ntohl(*(__be32 *)(vx + 4)) >> 8;
		l = bpf_map_lookup_elem(&short_labels, &lk);
		if (!l || !plain_ipv4(inner, end))
			return -1;
		// overlayL2's rule: to the vRouter MAC, or to the sender's own
		// unicast MAC (what an xvr sender writes when it knows no other).
		if (!mac_eq(ieth->h_dest, l->mac) &&
		    (!mac_eq(ieth->h_dest, ieth->h_source) || (ieth->h_dest[0] & 1)))
			return -1;
		out = local_pod(l->vrf, inner->daddr);
		if (!out || bpf_xdp_adjust_head(ctx, 14 + 20 + 8 + 8))
			return -1;
		return deliver(ctx, out, n);
	}
	return -1;
}

// native_shortcut delivers a natively forwarded packet (ip, plain_ipv4
// already) to a local pod of a fabric-forwarded VN: TTL - 1.
static __always_inline int native_shortcut(struct xdp_md *ctx, struct iphdr *ip, void *end)
{
	struct short_dst *out;

	if (ip->ttl <= 1)
		return -1;
	out = local_pod(XVR_SHORT_NATIVE_VRF, ip->daddr);
	if (!out)
		return -1;
	dec_ttl(ip);
	return deliver(ctx, out, end - (void *)(long)ctx->data);
}

// shortcut: a frame ours to the node IP or to a fabric-forwarded subnet.
static __always_inline int shortcut(struct xdp_md *ctx, const struct fabric_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || !plain_ipv4(ip, end))
		return -1;
	if (cfg->node_ip && ip->daddr == cfg->node_ip)
		return overlay_shortcut(ctx, ip, end);
	return native_shortcut(ctx, ip, end);
}

SEC("xdp")
int xvr_fabric(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	struct fabric_config *cfg = bpf_map_lookup_elem(&config, &zero);
	int ours = 0, verdict;

	if (!cfg || (void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		ours = ipv4_ours((struct iphdr *)(eth + 1), end, cfg);
	else if (eth->h_proto == bpf_htons(ETH_P_ARP))
		ours = arp_ours((struct arp_eth *)(eth + 1), end);
	if (!ours)
		return XDP_PASS;
	verdict = shortcut(ctx, cfg);
	if (verdict >= 0)
		return verdict;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char __license[] SEC("license") = "Dual BSD/GPL";
