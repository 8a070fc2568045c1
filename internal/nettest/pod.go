package nettest

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// PodIf is the name of a pod's interface inside its namespace.
const PodIf = "eth0"

// Pod is a network namespace attached to a node namespace by a veth pair:
// IfName (eth0) inside the pod, HostIf in the node, where xvrd opens it.
type Pod struct {
	NS     *NS
	Node   *NS
	IfName string
	HostIf string
	IP     netip.Prefix
	MAC    net.HardwareAddr
	GW     netip.Addr
}

// AddPod creates a pod namespace and a veth pair whose host end (up, no
// address) stays in node and whose other end is eth0 in the pod, with mac,
// ip, a default route via gw (onlink), transmit checksum offload off (a
// partial checksum would break TCP through an XDP path) and IPv6 disabled
// on both ends to keep stray traffic out. Everything is deleted in t.Cleanup.
func AddPod(t testing.TB, node *NS, prefix string, ip netip.Prefix, gw netip.Addr, mac net.HardwareAddr) *Pod {
	t.Helper()
	p := &Pod{NS: NewNS(t, prefix), Node: node, IfName: PodIf, HostIf: Name(t, prefix), IP: ip, MAC: mac, GW: gw}
	node.Run(t, "ip", "link", "add", p.HostIf, "type", "veth", "peer", "name", PodIf, "netns", p.NS.Name)
	node.delLinkOnCleanup(t, p.HostIf)
	node.disableIPv6(t, p.HostIf)
	node.Run(t, "ip", "link", "set", p.HostIf, "up")
	p.configureInside(t)
	return p
}

func (p *Pod) configureInside(t testing.TB) {
	t.Helper()
	ns := p.NS
	ns.disableIPv6(t, PodIf)
	ns.Run(t, "ip", "link", "set", PodIf, "address", p.MAC.String())
	ns.Run(t, "ethtool", "-K", PodIf, "tx", "off")
	ns.Run(t, "ip", "addr", "add", p.IP.String(), "dev", PodIf)
	ns.Run(t, "ip", "link", "set", PodIf, "up")
	ns.Run(t, "ip", "route", "add", "default", "via", p.GW.String(), "dev", PodIf, "onlink")
}

// Ping pings dst from the pod: count probes 0.2 s apart, 1 s timeout each.
func (p *Pod) Ping(dst netip.Addr, count int, extra ...string) (string, error) {
	args := append([]string{"ping", "-c", strconv.Itoa(count), "-W", "1", "-i", "0.2"}, extra...)
	return p.NS.Try(append(args, dst.String())...)
}

// RawSend sends count frames of kind (see NS.RawSend) out of the pod's eth0,
// addressed to the host end's MAC, and returns how many were sent.
func (p *Pod) RawSend(t testing.TB, count int, kind string) int {
	t.Helper()
	dst, err := net.ParseMAC(p.Node.MAC(t, p.HostIf))
	if err != nil {
		t.Fatalf("nettest: host MAC of %s: %v", p.HostIf, err)
	}
	return p.NS.RawSend(t, PodIf, dst, count, kind)
}
