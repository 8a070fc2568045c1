// Package packet reads and rewrites the headers the forwarder touches:
// Ethernet, ARP and IPv4, and builds the replies a router owes in place
// (ARP replies, ICMP echo replies and ICMP errors).
//
// Everything works on a frame's bytes where they lie (a UMEM chunk) and never
// allocates. Parse functions validate lengths before they index, so any byte
// slice is safe input; builders are given the chunk's capacity and refuse to
// write past it.
//
// Importers: vrouter/dataplane and tests. It imports nothing of xvr's.
package packet
