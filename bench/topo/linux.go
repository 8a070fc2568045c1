package topo

import (
	"net"
	"net/netip"
)

// Addresses of the kernel topologies (all in 198.18.0.0/15).
var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0x32, 0x01}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0x32, 0x02}
	// VXLAN tunnel device MACs of node 1 and node 2.
	vtepMAC1 = "02:00:00:00:35:01"
	vtepMAC2 = "02:00:00:00:35:02"
)

// routedNode makes a node namespace that forwards IPv4 without reverse-path
// filtering.
func (t *Topology) routedNode() (*NS, error) {
	node, err := newNS("xbn", &t.u)
	if err != nil {
		return nil, err
	}
	_, err = node.Run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0")
	return node, err
}

// routedPod adds a pod to node whose host veth holds the gateway address
// gw/32 and a /32 route to the pod, and answers ARP for routed addresses
// (proxy ARP: pods on one /24 ARP for each other directly).
func (t *Topology) routedPod(node *NS, ip netip.Prefix, mac net.HardwareAddr, gw netip.Addr) (Endpoint, error) {
	p, err := t.addPod(node, ip, mac, gw)
	if err != nil {
		return p, err
	}
	err = node.runAll(
		[]string{"sysctl", "-qw", "net.ipv4.conf." + p.HostIf + ".rp_filter=0", "net.ipv4.conf." + p.HostIf + ".proxy_arp=1",
			"net.ipv4.neigh." + p.HostIf + ".proxy_delay=0"},
		[]string{"ip", "addr", "add", gw.String() + "/32", "dev", p.HostIf},
		[]string{"ip", "route", "add", ip.Addr().String() + "/32", "dev", p.HostIf})
	return p, err
}

// staticNeigh pins B's neighbour entry on its host veth, so no trial waits
// for ARP.
func (t *Topology) staticNeigh() error {
	_, err := t.B.Node.Run("ip", "neigh", "replace", t.B.IP.Addr().String(), "lladdr", t.B.MAC.String(),
		"dev", t.B.HostIf, "nud", "permanent")
	return err
}

// dstIsHostA addresses generated frames to A's host veth (the router).
func (t *Topology) dstIsHostA() error {
	s, err := t.A.Node.MAC(t.A.HostIf)
	if err != nil {
		return err
	}
	t.DstMAC, err = net.ParseMAC(s)
	return err
}

// buildRouting: one node routes between the pods' host veths.
func (t *Topology) buildRouting(o Options) error {
	t.Notes = "node netns, ip_forward, gateway /32 on each host veth, /32 routes, static neighbour"
	t.restore = true
	node, err := t.routedNode()
	if err != nil {
		return err
	}
	gw := netip.MustParseAddr("198.18.50.254")
	if t.A, err = t.routedPod(node, netip.MustParsePrefix("198.18.50.1/24"), macA, gw); err != nil {
		return err
	}
	if t.B, err = t.routedPod(node, netip.MustParsePrefix("198.18.50.2/24"), macB, gw); err != nil {
		return err
	}
	if err := t.staticNeigh(); err != nil {
		return err
	}
	if err := steerRPS(node, t.A.HostIf, o.ForwarderCPU); err != nil {
		return err
	}
	return t.dstIsHostA()
}

// buildBridge: the pods' host veths are ports of one Linux bridge.
func (t *Topology) buildBridge(o Options) error {
	t.Notes = "node netns, Linux bridge with both host veths, static FDB entry for pod b"
	t.restore = true // bridging rewrites nothing, but live frames need XDP on the peer
	node, err := newNS("xbn", &t.u)
	if err != nil {
		return err
	}
	br, err := Name("xbbr")
	if err != nil {
		return err
	}
	if err := node.addLink(&t.u, br, "type", "bridge"); err != nil {
		return err
	}
	if err := upNoIPv6(node, br); err != nil {
		return err
	}
	none := netip.Addr{}
	if t.A, err = t.addPod(node, netip.MustParsePrefix("198.18.51.1/24"), macA, none); err != nil {
		return err
	}
	if t.B, err = t.addPod(node, netip.MustParsePrefix("198.18.51.2/24"), macB, none); err != nil {
		return err
	}
	err = node.runAll(
		[]string{"ip", "link", "set", t.A.HostIf, "master", br},
		[]string{"ip", "link", "set", t.B.HostIf, "master", br},
		[]string{"bridge", "fdb", "replace", macB.String(), "dev", t.B.HostIf, "master", "static"})
	if err != nil {
		return err
	}
	t.DstMAC = macB
	return steerRPS(node, t.A.HostIf, o.ForwarderCPU)
}
