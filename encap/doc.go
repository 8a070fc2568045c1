// Package encap writes and strips the overlay headers xvr puts between
// compute nodes: MPLS over UDP (RFC 7510, UDP port 6635) and VXLAN (RFC 7348,
// UDP port 4789), both over IPv4 on Ethernet.
//
// It is pure byte manipulation on a frame where it lies in its UMEM chunk:
// no sockets, no kernel, no allocation. Encap prepends the outer headers into
// the headroom in front of the frame and never moves the payload; Decap
// validates the outer headers and reports where the inner packet lies;
// InnerEthernet gives an MPLS-carried IP packet an Ethernet header again, in
// the space the outer headers leave free. Every function takes the frame's
// whole chunk (buf) and the frame's bounds in it (off, n). For an AF_XDP
// descriptor d in aligned mode that is:
//
//	base := d.Addr &^ (frameSize - 1)
//	buf, off, n := mem[base:base+frameSize], int(d.Addr-base), int(d.Len)
//
// and after Encap the descriptor becomes Addr = base+newOff, Len = newLen.
// Encap needs Overhead(kind) bytes of headroom before off (32 or 50; the
// forwarder's chunks have at least 256).
//
// Choices the RFCs leave open, made here:
//   - The outer UDP checksum is sent as zero: RFC 7348 §5 says it SHOULD be
//     zero for IPv4, RFC 7510 §3 allows zero over IPv4. On receipt a zero
//     checksum is accepted, a non-zero one is verified.
//   - The UDP source port carries flow entropy (FlowEntropy) mapped into
//     49152–65535, the range both RFCs recommend, so one inner flow keeps one
//     outer 5-tuple and the fabric's ECMP keeps its packets in order.
//   - The MPLS label stack is one entry (S=1, TC 0). Its TTL is the inner IP
//     TTL (the uniform model of RFC 3443 at ingress); Decap does not copy it
//     back, since it is never larger than the inner TTL it came from.
//   - Outer IPv4: no options, ID 0, DF as the caller asks, TOS 0.
//
// Errors are values of type Error, comparable constants, so a caller counts
// drops by reason with err.(encap.Error) or errors.Is without allocating.
//
// Importers: the forwarder (vrouter/dataplane), the agent (for
// ParsePriority, Choose and PodMTU) and tests. It imports only vrouter/packet.
// Trap: the functions check every bound they are given, but Decap does not
// look at the outer destination MAC or IP; the caller has already decided the
// frame is addressed to this node.
package encap
