package topo

import (
	"net/netip"
)

// vxNode is one side of the VXLAN topology.
type vxNode struct {
	ns         *NS
	underIf    string
	underIP    string // underlay address, 198.18.52.x
	vtep, mac  string // VXLAN device and its MAC
	podNet     string // this node's pod /24
	gwIP       string
	podIP      string
	peerUnder  string
	peerMAC    string
	peerPodNet string
}

// buildVXLAN: two routed nodes joined by a veth underlay (MTU 1600, so
// 1500-byte frames fit after 50 bytes of VXLAN), each with a kernel VXLAN
// device (VNI 1, UDP 4789) routed flannel-style: a .0/32 address per node,
// a route to the peer's pod /24 via the peer's .0 onlink, a static
// neighbour and FDB entry for the peer's VTEP.
func (t *Topology) buildVXLAN(o Options) error {
	t.Notes = "two node netns joined by a veth underlay (MTU 1600), kernel VXLAN VNI 1 dstport 4789, flannel-style routes/neigh/fdb"
	t.restore = true
	n1, n2, err := t.vxNodes()
	if err != nil {
		return err
	}
	if err := t.vxUnderlay(n1, n2); err != nil {
		return err
	}
	for _, n := range []*vxNode{n1, n2} {
		if err := t.vxDevice(n); err != nil {
			return err
		}
	}
	a, b := netip.MustParsePrefix(n1.podIP), netip.MustParsePrefix(n2.podIP)
	if t.A, err = t.routedPod(n1.ns, a, macA, netip.MustParseAddr(n1.gwIP)); err != nil {
		return err
	}
	if t.B, err = t.routedPod(n2.ns, b, macB, netip.MustParseAddr(n2.gwIP)); err != nil {
		return err
	}
	if err := t.staticNeigh(); err != nil {
		return err
	}
	if err := steerRPS(n1.ns, t.A.HostIf, o.ForwarderCPU); err != nil {
		return err
	}
	return t.dstIsHostA()
}

func (t *Topology) vxNodes() (*vxNode, *vxNode, error) {
	var ns [2]*NS
	var names [4]string
	for i := range ns {
		var err error
		if ns[i], err = t.routedNode(); err != nil {
			return nil, nil, err
		}
	}
	for i := range names {
		var err error
		if names[i], err = Name("xbv"); err != nil {
			return nil, nil, err
		}
	}
	n1 := &vxNode{ns: ns[0], underIf: names[0], underIP: "198.18.52.1", vtep: names[2], mac: vtepMAC1,
		podNet: "198.18.53.0", gwIP: "198.18.53.254", podIP: "198.18.53.1/24"}
	n2 := &vxNode{ns: ns[1], underIf: names[1], underIP: "198.18.52.2", vtep: names[3], mac: vtepMAC2,
		podNet: "198.18.54.0", gwIP: "198.18.54.254", podIP: "198.18.54.2/24"}
	n1.peerUnder, n1.peerMAC, n1.peerPodNet = n2.underIP, n2.mac, n2.podNet
	n2.peerUnder, n2.peerMAC, n2.peerPodNet = n1.underIP, n1.mac, n1.podNet
	return n1, n2, nil
}

// vxUnderlay joins the nodes with a veth pair, MTU 1600.
func (t *Topology) vxUnderlay(n1, n2 *vxNode) error {
	if err := n1.ns.addLink(&t.u, n1.underIf, "type", "veth", "peer", "name", n2.underIf, "netns", n2.ns.Name); err != nil {
		return err
	}
	for _, n := range []*vxNode{n1, n2} {
		err := n.ns.runAll(
			[]string{"ip", "link", "set", n.underIf, "mtu", "1600"},
			[]string{"ip", "addr", "add", n.underIP + "/24", "dev", n.underIf})
		if err != nil {
			return err
		}
		if err := upNoIPv6(n.ns, n.underIf); err != nil {
			return err
		}
	}
	return nil
}

// vxDevice creates n's VXLAN device and its flannel-style routing state.
func (t *Topology) vxDevice(n *vxNode) error {
	err := n.ns.addLink(&t.u, n.vtep, "type", "vxlan", "id", "1", "local", n.underIP, "dev", n.underIf,
		"dstport", "4789", "nolearning")
	if err != nil {
		return err
	}
	if err := upNoIPv6(n.ns, n.vtep); err != nil {
		return err
	}
	return n.ns.runAll(
		[]string{"ip", "link", "set", n.vtep, "address", n.mac, "mtu", "1500"},
		[]string{"ip", "addr", "add", n.podNet + "/32", "dev", n.vtep},
		[]string{"ip", "route", "add", n.peerPodNet + "/24", "via", n.peerPodNet, "dev", n.vtep, "onlink"},
		[]string{"ip", "neigh", "replace", n.peerPodNet, "lladdr", n.peerMAC, "dev", n.vtep, "nud", "permanent"},
		[]string{"bridge", "fdb", "append", n.peerMAC, "dev", n.vtep, "dst", n.peerUnder})
}
