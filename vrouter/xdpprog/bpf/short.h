// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// short.h: the shortcut maps xvr_pod owns and xvr_fabric shares (the Go
// side loads xvr_fabric with xvr_pod's maps in their place), and the
// helpers both programs use. Constants must match shortcut.go.

#ifndef XVR_SHORT_H
#define XVR_SHORT_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// XVR_MAX_PORTS is how many devices may carry xvr_pod at once.
#define XVR_MAX_PORTS 4096
// XVR_MAX_SHORTCUTS is how many (VRF, pod address) deliveries fit.
#define XVR_MAX_SHORTCUTS 65536
// XVR_MAX_LABELS is how many MPLS labels and VNIs xvr_fabric decapsulates.
#define XVR_MAX_LABELS 8192
// XVR_SHORT_FABRIC_SLOT is short_stats' slot for frames xvr_fabric's
// shortcut delivered (port slots are below it).
#define XVR_SHORT_FABRIC_SLOT XVR_MAX_PORTS
// XVR_SHORT_NATIVE_VRF is the short_out VRF of pods reached natively from
// the fabric (fabric-forwarded VNs): the fabric program knows no VRF then.
#define XVR_SHORT_NATIVE_VRF 0xffffffff

// short_dst.kind: how a destination is reached.
#define XVR_SHORT_LOCAL 0       // a local pod: its veth, its MAC
#define XVR_SHORT_FABRIC 1      // another node, natively on the fabric
#define XVR_SHORT_MPLSOUDP 2    // another node, in MPLSoUDP (RFC 7510)
#define XVR_SHORT_VXLAN 3       // another node, in VXLAN (RFC 7348)

#define XVR_PORT_MPLSOUDP 6635
#define XVR_PORT_VXLAN 4789

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct short_key {
	__u32 vrf;
	__be32 addr;            // the pod's address, network order
};

struct short_dst {
	__u32 ifindex;          // local: the pod's host-side veth; else the fabric NIC
	__u8 mac[6];            // local: the pod's MAC; else the next hop's underlay MAC
	__u8 kind;              // XVR_SHORT_*
	__u8 ttl;               // tunnels: the outer TTL
	__u8 src_mac[6];        // local: the vRouter MAC; else the fabric NIC's
	__u16 mtu;              // remote: the fabric's IP MTU; 0: not checked
	__be32 saddr;           // tunnels: this node's fabric IP
	__be32 daddr;           // tunnels: the remote node's
	__u32 label;            // tunnels: the MPLS label or the VNI
	__u8 inner_mac[6];      // VXLAN: the inner frame's destination MAC
	__u8 df;                // tunnels: 1 sets Don't Fragment outside
	__u8 pad;
};

struct short_label_key {
	__u32 kind;             // XVR_SHORT_MPLSOUDP or XVR_SHORT_VXLAN
	__u32 label;
};

struct short_label {
	__u32 vrf;
	__u8 mac[6];            // the vRouter MAC (VXLAN's inner destination)
	__u8 pad[2];
};

struct short_count {
	__u64 packets;
	__u64 bytes;
};

// short_out: (VRF, pod address) -> where the pod is and how to get there.
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

// short_labels: the overlay labels xvr_fabric's shortcut decapsulates.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVR_MAX_LABELS);
	__type(key, struct short_label_key);
	__type(value, struct short_label);
} short_labels SEC(".maps");

// short_stats: port slot (or XVR_SHORT_FABRIC_SLOT) -> frames the shortcut
// took in there.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVR_MAX_PORTS + 1);
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

// plain_ipv4: version 4, no options, not a fragment, total length within
// the end of the frame and a verified header checksum.
static __always_inline int plain_ipv4(const struct iphdr *ip, const void *end)
{
	if ((void *)(ip + 1) > end || *(__u8 *)ip != 0x45)
		return 0;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return 0;
	if (bpf_ntohs(ip->tot_len) < sizeof(*ip) || bpf_ntohs(ip->tot_len) > end - (void *)ip)
		return 0;
	return header_ok(ip);
}

// dec_ttl: TTL - 1 with the RFC 1624 update (as the kernel's ip_decrease_ttl).
static __always_inline void dec_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
}

static __always_inline void count(__u32 slot, __u64 bytes)
{
	struct short_count *st = bpf_map_lookup_elem(&short_stats, &slot);

	if (st) {
		st->packets++;
		st->bytes += bytes;
	}
}

#endif
