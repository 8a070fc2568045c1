package topo

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
)

// The across-node xvr topologies: pod a on node 1, pod b on node 2, both
// on vn-xbov (198.18.56.0/24), the nodes joined by a veth pair that is each
// xvrd's fabric NIC (198.18.57.1 and .2, MTU 1600, static neighbours).
const (
	ovNetwork = "default/vn-xbov"
	ovGW      = "198.18.56.254"
	ovPodA    = "198.18.56.1/24"
	ovPodB    = "198.18.56.2/24"
	ovNAD     = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-xbov
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.56.0/24"%s
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
`
	ovFabricAnno = `
    opencontrail.org/ip_fabric_forwarding: "true"`
)

var (
	ovNodeIPs  = [2]string{"198.18.57.1", "198.18.57.2"}
	ovNodeMACs = [2]string{VrouterMAC, "02:78:76:72:00:02"}
)

// ovNode is one node of an across-node xvr topology.
type ovNode struct {
	ns     *NS
	fabric string // the fabric veth in ns
	ip     string
	x      *Xvrd
	vni    uint32 // of ovNetwork, as this node reports it
	label  uint32
}

// overlayEncap is the -encap of xvrd (and --encaps of the routes) for an
// across-node kind; "" for the fabric-forwarding kind.
func overlayEncap(k Kind) string {
	switch k {
	case XVRMPLSoUDP:
		return "MPLSoUDP"
	case XVRVXLAN:
		return "VXLAN"
	}
	return ""
}

// buildOverlay: two xvrd nodes joined by a fabric veth; pod a on node 1,
// pod b on node 2, /32 routes to the other node's pod through a tunnel
// (MPLSoUDP or VXLAN) or natively on the fabric (ip_fabric_forwarding).
func (t *Topology) buildOverlay(o Options) error {
	encap := overlayEncap(t.Kind)
	t.Notes = "two node netns joined by a veth fabric (MTU 1600, static neighbours), an xvrd on each " +
		"(1 poller, AF_XDP copy mode, both pollers on the one forwarder CPU), "
	if encap != "" {
		t.Notes += "/32 tunnel routes, -encap " + encap
	} else {
		t.Notes += "VN with ip_fabric_forwarding, /32 --fabric routes (no encapsulation)"
	}
	if err := checkBins(o.BinDir); err != nil {
		return err
	}
	nodes, err := t.ovNodes()
	if err != nil {
		return err
	}
	for i, n := range nodes {
		if err := t.ovStart(n, i, encap, o); err != nil {
			return err
		}
	}
	t.Forwarder = nodes[0].x
	t.Forwarders = []*Xvrd{nodes[0].x, nodes[1].x}
	return t.ovPods(nodes, encap)
}

func checkBins(dir string) error {
	for _, b := range []string{"xvrd", "xvrctl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s not built (make build): %w", b, err)
		}
	}
	return nil
}

// ovNodes makes both node namespaces and the fabric veth between them.
func (t *Topology) ovNodes() ([2]*ovNode, error) {
	var nodes [2]*ovNode
	for i := range nodes {
		ns, err := newNS("xbn", &t.u)
		if err != nil {
			return nodes, err
		}
		dev, err := Name("xbf")
		if err != nil {
			return nodes, err
		}
		nodes[i] = &ovNode{ns: ns, fabric: dev, ip: ovNodeIPs[i]}
	}
	n1, n2 := nodes[0], nodes[1]
	if err := n1.ns.addLink(&t.u, n1.fabric, "type", "veth", "peer", "name", n2.fabric, "netns", n2.ns.Name); err != nil {
		return nodes, err
	}
	for _, n := range nodes {
		if err := n.configureFabric(); err != nil {
			return nodes, err
		}
	}
	if err := n1.neighbour(n2); err != nil {
		return nodes, err
	}
	return nodes, n2.neighbour(n1)
}

// configureFabric: MTU 1600 (1500-byte frames plus encapsulation), transmit
// checksum offload off (AF_XDP cannot complete partial checksums), the node
// IP, no IPv6, no reverse-path filter.
func (n *ovNode) configureFabric() error {
	err := n.ns.runAll(
		[]string{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"},
		[]string{"ip", "link", "set", n.fabric, "mtu", "1600"},
		[]string{"ethtool", "-K", n.fabric, "tx", "off"},
		[]string{"ip", "addr", "add", n.ip + "/24", "dev", n.fabric})
	if err != nil {
		return err
	}
	return upNoIPv6(n.ns, n.fabric)
}

// neighbour pins peer's fabric MAC in n's neighbour table (xvrd resolves
// underlay MACs there), so no trial waits for ARP.
func (n *ovNode) neighbour(peer *ovNode) error {
	mac, err := peer.ns.MAC(peer.fabric)
	if err != nil {
		return err
	}
	_, err = n.ns.Run("ip", "neigh", "replace", peer.ip, "lladdr", mac, "dev", n.fabric, "nud", "permanent")
	return err
}

// ovStart starts node i's xvrd on its fabric, applies the NAD and reads
// the VN's VNI and this node's label.
func (t *Topology) ovStart(n *ovNode, i int, encap string, o Options) error {
	if encap == "" {
		encap = "MPLSoUDP,VXLAN"
	}
	var err error
	n.x, err = startXvrd(n.ns, o, &t.u, "-mac", ovNodeMACs[i], "-default-cidr=", "-fabric-if", n.fabric,
		"-node-ip", n.ip, "-encap", encap)
	if err != nil {
		return err
	}
	anno := ""
	if t.Kind == XVRFabric {
		anno = ovFabricAnno
	}
	if err := n.x.apply(fmt.Sprintf(ovNAD, anno)); err != nil {
		return err
	}
	return n.readVN()
}

// readVN records the VNI and label of ovNetwork on n's xvrd.
func (n *ovNode) readVN() error {
	out, err := n.x.Ctl("network", "get", ovNetwork, "-o", "json")
	if err != nil {
		return err
	}
	var nw struct {
		VNI   uint32 `json:"vni"`
		Label uint32 `json:"label"`
	}
	if err := json.Unmarshal([]byte(out), &nw); err != nil {
		return fmt.Errorf("decode network %s: %w", ovNetwork, err)
	}
	if nw.VNI == 0 || nw.Label == 0 {
		return fmt.Errorf("network %s has vni %d label %d, want both set", ovNetwork, nw.VNI, nw.Label)
	}
	n.vni, n.label = nw.VNI, nw.Label
	return nil
}

// ovPods adds pod a on node 1 and pod b on node 2 and the routes between.
func (t *Topology) ovPods(nodes [2]*ovNode, encap string) error {
	var err error
	if t.A, err = t.xvrPod(nodes[0].x, nodes[0].ns, ovPodA, macA, ovNetwork, ovGW); err != nil {
		return err
	}
	if t.B, err = t.xvrPod(nodes[1].x, nodes[1].ns, ovPodB, macB, ovNetwork, ovGW); err != nil {
		return err
	}
	if err := ovRoute(nodes[0], nodes[1], t.B.IP.Addr(), encap); err != nil {
		return err
	}
	if err := ovRoute(nodes[1], nodes[0], t.A.IP.Addr(), encap); err != nil {
		return err
	}
	t.DstMAC, err = net.ParseMAC(ovNodeMACs[0])
	return err
}

// ovRoute adds on from a /32 route to pod on to: natively on the fabric
// when encap is "", else through a tunnel with to's label and the VNI.
func ovRoute(from, to *ovNode, pod netip.Addr, encap string) error {
	args := []string{"route", "add", "--network", ovNetwork, "--prefix", pod.String() + "/32"}
	if encap == "" {
		args = append(args, "--fabric", to.ip)
	} else {
		args = append(args, "--tunnel", to.ip, "--label", strconv.FormatUint(uint64(to.label), 10),
			"--vni", strconv.FormatUint(uint64(to.vni), 10), "--encaps", encap)
	}
	_, err := from.x.Ctl(args...)
	return err
}
