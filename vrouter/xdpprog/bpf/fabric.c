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
#include <linux/icmp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

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

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

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
	struct icmphdr *icmp = l4;

	if ((void *)(icmp + 1) > end || room < sizeof(*icmp))
		return 0;
	return (cfg->flags & XVR_FABRIC_F_SNAT) &&
	       icmp->type == ICMP_ECHOREPLY &&
	       in_range(bpf_ntohs(icmp->un.echo.id), cfg->udp_lo, cfg->udp_hi);
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

SEC("xdp")
int xvr_fabric(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	struct fabric_config *cfg = bpf_map_lookup_elem(&config, &zero);
	int ours = 0;

	if (!cfg || (void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		ours = ipv4_ours((struct iphdr *)(eth + 1), end, cfg);
	else if (eth->h_proto == bpf_htons(ETH_P_ARP))
		ours = arp_ours((struct arp_eth *)(eth + 1), end);
	if (!ours)
		return XDP_PASS;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char __license[] SEC("license") = "Dual BSD/GPL";
