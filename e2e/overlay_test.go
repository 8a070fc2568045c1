package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Overlay UDP ports and the flow-entropy source port range (RFC 7510 §3).
const (
	portMPLSoUDP  = 6635
	portVXLAN     = 4789
	minEntropyPrt = 49152
)

// TestOverlay runs the two-node suite once with MPLSoUDP first in xvrd's
// encapsulation priority and once with VXLAN only.
func TestOverlay(t *testing.T) {
	for _, encap := range []string{"MPLSoUDP,VXLAN", "VXLAN"} {
		t.Run(strings.Split(encap, ",")[0], func(t *testing.T) { testOverlay(t, encap) })
	}
}

func testOverlay(t *testing.T, encap string) {
	o := newOverlayTopo(t, encap)
	t.Run("status", func(t *testing.T) { testOverlayStatus(t, o) })
	t.Run("ping", func(t *testing.T) { testOverlayPing(t, o) })
	t.Run("tunnel-nexthops", func(t *testing.T) { testTunnelNextHops(t, o) })
	t.Run("wire", func(t *testing.T) { testOverlayWire(t, o) })
	t.Run("tcp-100MB", func(t *testing.T) { testOverlayTCP(t, o) })
	t.Run("isolation", func(t *testing.T) { testOverlayIsolation(t, o) })
	t.Run("host-traffic", func(t *testing.T) { testHostTraffic(t, o) })
	t.Run("kernel-vtep", func(t *testing.T) { testKernelVTEP(t, o) })
	t.Run("kernel-vtep-dynamic", func(t *testing.T) { testKernelVTEPDynamic(t, o) })
}

// wantEncap is the encapsulation xvrd should pick towards another xvrd.
func (o *overlayTopo) wantEncap() string { return strings.Split(o.encap, ",")[0] }

func testOverlayStatus(t *testing.T, o *overlayTopo) {
	for i, n := range o.nodes {
		var st api.Status
		n.ctlJSON(t, &st, "status")
		if st.FabricIf != n.fabric || st.NodeIP != n.ip || len(st.Encap) == 0 || st.Encap[0] != o.wantEncap() {
			t.Fatalf("node %d status %+v, want fabric %s node IP %s encap %s first", i, st, n.fabric, n.ip, o.wantEncap())
		}
		if out := n.ns.Run(t, "ip", "-d", "link", "show", "dev", n.fabric); !strings.Contains(out, "prog/xdp") {
			t.Fatalf("node %d: no XDP program on the fabric NIC %s:\n%s", i, n.fabric, out)
		}
		if st.PodMTU != 1500-50 { // the fabric veth's 1500 less VXLAN's 50
			t.Fatalf("node %d: pod MTU %d, want 1450", i, st.PodMTU)
		}
	}
	// The CNI config sets no mtu: pods get xvrd's pod MTU on every interface.
	if out := o.left1.ns.Run(t, "ip", "-o", "link", "show", "dev", "eth1"); !strings.Contains(out, "mtu 1450 ") {
		t.Fatalf("pod interface MTU is not xvrd's pod MTU 1450:\n%s", out)
	}
}

func testOverlayPing(t *testing.T, o *overlayTopo) {
	for _, c := range []struct {
		from *cniPod
		dst  string
	}{{o.left1, left2IP}, {o.left2, left1IP}} {
		if !warmUp(t, c.from.ns, c.dst) {
			t.Fatalf("ping %s from %s: no reply to 5 probes\n%s", c.dst, c.from.name, o.diag(t))
		}
		if out, err := c.from.ping(c.dst, 5); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping %s from %s: %v\n%s\n%s", c.dst, c.from.name, err, out, o.diag(t))
		}
	}
}

// warmUp sends single pings from ns (at most 5) until one is answered:
// the first packets of a flow may go while xvrd resolves the remote node's
// MAC. It logs how many were lost and reports whether one was answered.
func warmUp(t *testing.T, ns *nettest.NS, dst string) bool {
	t.Helper()
	for k := range 5 {
		if _, err := ns.Try("ping", "-c", "1", "-W", "1", dst); err == nil {
			if k > 0 {
				t.Logf("ping %s from %s: %d probe(s) lost before the first reply", dst, ns.Name, k)
			}
			return true
		}
	}
	return false
}

// testTunnelNextHops: each node shows one tunnel next hop to the other node
// with the chosen encapsulation, the remote's label, the VNI and the remote
// fabric MAC as resolved through the kernel's neighbour table.
func testTunnelNextHops(t *testing.T, o *overlayTopo) {
	for i, n := range o.nodes {
		peer := o.nodes[1-i]
		var nhs []api.NextHop
		n.ctlJSON(t, &nhs, "nh")
		var found []api.NextHop
		for _, nh := range nhs {
			if nh.Type == api.NextHopTunnel {
				found = append(found, nh)
			}
		}
		want := api.NextHop{Encap: o.wantEncap(), Node: peer.ip, Label: o.labels[1-i][leftVN], VNI: o.vni[leftVN],
			DstMAC: peer.ns.MAC(t, peer.fabric)}
		if len(found) != 1 || found[0].Encap != want.Encap || found[0].Node != want.Node ||
			!strings.EqualFold(found[0].DstMAC, want.DstMAC) || !sameKey(found[0], want) {
			t.Fatalf("node %d tunnel next hops %+v, want one like %+v", i, found, want)
		}
	}
}

// sameKey compares what identifies the VN at the far end: the label for
// MPLSoUDP, the VNI for VXLAN.
func sameKey(got, want api.NextHop) bool {
	if want.Encap == "MPLSoUDP" {
		return got.Label == want.Label
	}
	return got.VNI == want.VNI
}

// testOverlayWire captures on node 0's bridge port while left1 pings left2
// and decodes every UDP frame: the overlay headers must be exactly what the
// contract says, in both directions.
func testOverlayWire(t *testing.T, o *overlayTopo) {
	const pings = 5
	pkts := capture(t, o.underlay, o.nodes[0].port, 2*pings, func() {
		if out, err := o.left1.ping(left2IP, pings); err != nil {
			t.Errorf("ping during capture: %v\n%s", err, out)
		}
	})
	if len(pkts) < 2*pings {
		t.Fatalf("captured %d UDP frames on %s, want %d\n%s", len(pkts), o.nodes[0].port, 2*pings, o.diag(t))
	}
	sports := map[string]map[uint16]bool{} // direction -> outer source ports
	for k, p := range pkts {
		dir, sport, err := o.checkFrame(p)
		if err != nil {
			t.Fatalf("frame %d: %v\n%s", k, err, p.Dump())
		}
		if sports[dir] == nil {
			sports[dir] = map[uint16]bool{}
		}
		sports[dir][sport] = true
	}
	if len(sports) != 2 {
		t.Fatalf("frames in directions %v, want both", sports)
	}
	for dir, ps := range sports {
		if len(ps) != 1 { // one flow per direction: its entropy is one port
			t.Errorf("%s: one ICMP flow used source ports %v, want one stable port", dir, ps)
		}
	}
}

// checkFrame checks one captured frame and returns its direction and outer
// UDP source port.
func (o *overlayTopo) checkFrame(p gopacket.Packet) (dir string, sport uint16, err error) {
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip == nil || udp == nil {
		return "", 0, fmt.Errorf("not IPv4/UDP")
	}
	src, dst := ip.SrcIP.String(), ip.DstIP.String()
	from := map[string]int{nodeIPs[0]: 0, nodeIPs[1]: 1}
	i, ok1 := from[src]
	j, ok2 := from[dst]
	if !ok1 || !ok2 || i == j {
		return "", 0, fmt.Errorf("outer %s -> %s, want between the node IPs %v", src, dst, nodeIPs)
	}
	if err := checkIPv4Sum(ip.Contents); err != nil {
		return "", 0, err
	}
	if udp.SrcPort < minEntropyPrt {
		return "", 0, fmt.Errorf("outer UDP source port %d, want >= %d (flow entropy)", udp.SrcPort, minEntropyPrt)
	}
	pods := [2]string{left1IP, left2IP}
	if err := o.checkInner(udp, j, pods[i], pods[j]); err != nil {
		return "", 0, err
	}
	return src + "->" + dst, uint16(udp.SrcPort), nil
}

// checkInner checks the tunnel header towards node j and the inner IPv4.
func (o *overlayTopo) checkInner(udp *layers.UDP, j int, src, dst string) error {
	var inner gopacket.Packet
	switch o.wantEncap() {
	case "MPLSoUDP":
		if udp.DstPort != portMPLSoUDP {
			return fmt.Errorf("UDP dst port %d, want %d (MPLSoUDP)", udp.DstPort, portMPLSoUDP)
		}
		inner = gopacket.NewPacket(udp.Payload, layers.LayerTypeMPLS, gopacket.Default)
		mpls, _ := inner.Layer(layers.LayerTypeMPLS).(*layers.MPLS)
		if mpls == nil || mpls.Label != o.labels[j][leftVN] || !mpls.StackBottom || mpls.TTL == 0 {
			return fmt.Errorf("MPLS %+v, want one label %d, bottom of stack, TTL > 0", mpls, o.labels[j][leftVN])
		}
		if inner.Layer(layers.LayerTypeEthernet) != nil {
			return fmt.Errorf("MPLSoUDP payload carries Ethernet, want IPv4 right after the label")
		}
	default:
		if udp.DstPort != portVXLAN {
			return fmt.Errorf("UDP dst port %d, want %d (VXLAN)", udp.DstPort, portVXLAN)
		}
		inner = gopacket.NewPacket(udp.Payload, layers.LayerTypeVXLAN, gopacket.Default)
		vx, _ := inner.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if vx == nil || !vx.ValidIDFlag || vx.VNI != o.vni[leftVN] || inner.Layer(layers.LayerTypeEthernet) == nil {
			return fmt.Errorf("VXLAN %+v, want VNI %d with the I flag, then Ethernet", vx, o.vni[leftVN])
		}
	}
	in, _ := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if in == nil || in.SrcIP.String() != src || in.DstIP.String() != dst {
		return fmt.Errorf("inner IPv4 %v, want %s -> %s", in, src, dst)
	}
	return nil
}

func checkIPv4Sum(h []byte) error {
	var sum uint32
	for k := 0; k+1 < len(h); k += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[k:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return fmt.Errorf("outer IPv4 header checksum wrong (folded sum %#x)", sum)
	}
	return nil
}

// testOverlayTCP moves 100 MiB from left1 to left2 with intact data and
// checks on the underlay bridge port of node 0 that it crossed the fabric.
func testOverlayTCP(t *testing.T, o *overlayTopo) {
	const size = 100 << 20
	before := o.portRXBytes(t, 0)
	o.left2.ns.TCPTransfer(t, o.left1.ns, addr(left2IP), 5201, size)
	if got := o.portRXBytes(t, 0) - before; got < size {
		t.Fatalf("node 0 sent %d bytes onto the fabric during a %d-byte transfer", got, size)
	}
}

// portRXBytes is what the underlay bridge port of node i received from it.
func (o *overlayTopo) portRXBytes(t *testing.T, i int) uint64 {
	t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	out := o.underlay.Run(t, "ip", "-j", "-s", "link", "show", "dev", o.nodes[i].port)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -s link show %s: %v\n%s", o.nodes[i].port, err, out)
	}
	return links[0].Stats.RX.Bytes
}

// testOverlayIsolation: left1 (vn-left-1, node 0) cannot reach right2
// (vn-right-1, node 1) and back, not even when node 0's vn-left-1 has a
// tunnel route for right2's address: node 1 looks it up in vn-left-1.
func testOverlayIsolation(t *testing.T, o *overlayTopo) {
	// Point the pods' traffic for the other VN at their own VN's gateway,
	// so that it reaches xvrd in the VN under test (not the default network).
	o.left1.ns.Run(t, "ip", "route", "replace", "198.18.20.0/24", "via", "198.18.10.254", "dev", "eth1")
	o.right2.ns.Run(t, "ip", "route", "replace", "198.18.10.0/24", "via", "198.18.20.254", "dev", "eth1")
	if out, err := o.left1.ping(right2IP, 3); err == nil {
		t.Fatalf("vn-left-1 pod on node 0 reached the vn-right-1 pod on node 1:\n%s", out)
	}
	if out, err := o.right2.ping(left1IP, 3); err == nil {
		t.Fatalf("vn-right-1 pod on node 1 reached the vn-left-1 pod on node 0:\n%s", out)
	}
	o.tunnelRoute(t, 0, leftVN, right2IP+"/32", 1)
	defer o.nodes[0].mustCtl(t, "route", "del", "--network", leftVN, "--prefix", right2IP+"/32")
	before := totalDrops(t, o.nodes[1].node)
	if out, err := o.left1.ping(right2IP, 3); err == nil {
		t.Fatalf("vn-left-1 pod reached the vn-right-1 pod through a vn-left-1 tunnel route:\n%s", out)
	}
	if after := totalDrops(t, o.nodes[1].node); after < before+3 {
		t.Fatalf("node 1 drops went from %d to %d, want +3 (vn-left-1 has no route to %s)\n%s",
			before, after, right2IP, o.diag(t))
	}
}

func totalDrops(t *testing.T, n *node) uint64 {
	t.Helper()
	var ds []api.DropStat
	n.ctlJSON(t, &ds, "dropstats", "--all")
	var sum uint64
	for _, d := range ds {
		sum += d.Count
	}
	return sum
}

// testHostTraffic: with both xvrds on their fabric NICs, the nodes' own
// traffic passes: ping and TCP between a node and the underlay, and between
// the nodes, in both directions.
func testHostTraffic(t *testing.T, o *overlayTopo) {
	n0, n1 := o.nodes[0], o.nodes[1]
	for _, c := range []struct {
		ns  *nettest.NS
		dst string
	}{{n0.ns, n1.ip}, {n0.ns, underlayIP}, {n1.ns, n0.ip}, {o.underlay, n0.ip}} {
		if out, err := c.ns.Try("ping", "-c", "3", "-W", "1", "-i", "0.2", c.dst); err != nil {
			t.Fatalf("ping %s from %s: %v\n%s", c.dst, c.ns.Name, err, out)
		}
	}
	const size = 8 << 20
	o.underlay.TCPTransfer(t, n0.ns, addr(underlayIP), 5301, size)
	n0.ns.TCPTransfer(t, o.underlay, addr(n0.ip), 5302, size)
	n1.ns.TCPTransfer(t, n0.ns, addr(n1.ip), 5303, size)
	for i, n := range o.nodes {
		if err := n.proc.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("xvrd on node %d exited: %v\n%s", i, err, tail(n.proc.Output(), 2000))
		}
	}
}

// testKernelVTEP: a Linux VXLAN device in its own namespace on the underlay,
// a standard VTEP for vn-left-1's VNI with address vtepAddr, exchanges pings
// with left1 both ways. Node 0 reaches it by a tunnel route that accepts
// VXLAN only; the VTEP reaches the pod through a static neighbour at the
// vRouter's MAC and an fdb entry for that MAC towards node 0.
func testKernelVTEP(t *testing.T, o *overlayTopo) {
	n0 := o.nodes[0]
	vtep := nettest.NewNS(t, "xvt")
	dev, _ := o.fabricLink(t, vtep, "xve", vtepIP)
	vx := nettest.Name(t, "xvx")
	vni := strconv.FormatUint(uint64(o.vni[leftVN]), 10)
	vtep.Run(t, "ip", "link", "add", vx, "type", "vxlan", "id", vni, "dstport", "4789", "local", vtepIP,
		"remote", n0.ip, "nolearning", "dev", dev)
	delLinkOnCleanup(t, vtep, vx)
	vtep.Run(t, "sysctl", "-qw", "net.ipv6.conf."+vx+".disable_ipv6=1")
	vtep.Run(t, "ip", "addr", "add", vtepAddr+"/24", "dev", vx)
	vtep.Run(t, "ip", "link", "set", vx, "up")
	var st api.Status
	n0.ctlJSON(t, &st, "status")
	if _, err := net.ParseMAC(st.MAC); err != nil {
		t.Fatalf("status mac %q: %v", st.MAC, err)
	}
	vtep.Run(t, "ip", "neigh", "replace", left1IP, "lladdr", st.MAC, "dev", vx, "nud", "permanent")
	vtep.Run(t, "bridge", "fdb", "append", st.MAC, "dev", vx, "dst", n0.ip)
	n0.mustCtl(t, "route", "add", "--network", leftVN, "--prefix", vtepAddr+"/32", "--tunnel", vtepIP,
		"--encaps", "VXLAN", "--vni", vni, "--mac", vtep.MAC(t, vx))
	defer n0.mustCtl(t, "route", "del", "--network", leftVN, "--prefix", vtepAddr+"/32")
	for _, c := range []struct {
		name string
		ns   *nettest.NS
		dst  string
	}{{"vtep -> pod", vtep, left1IP}, {"pod -> vtep", o.left1.ns, vtepAddr}} {
		ok := warmUp(t, c.ns, c.dst)
		out, err := c.ns.Try("ping", "-c", "5", "-W", "1", "-i", "0.2", c.dst)
		if ok && err == nil && strings.Contains(out, " 0% packet loss") {
			continue
		}
		t.Errorf("%s: %v\n%s\nvtep %s (MAC %s) inner frames:\n%s\n%s", c.name, err, out, vx, vtep.MAC(t, vx),
			vtepFrames(t, vtep, vx, c.ns, c.dst), o.diag(t))
	}
}

// vtepFrames shows (tcpdump -e) the inner frames the VTEP device sees while
// ns pings dst again, for a failure message.
func vtepFrames(t *testing.T, vtep *nettest.NS, vx string, ns *nettest.NS, dst string) string {
	p := vtep.Start(t, "timeout", "5", "tcpdump", "-e", "-n", "-l", "-i", vx, "-c", "6")
	time.Sleep(500 * time.Millisecond)
	_, _ = ns.Try("ping", "-c", "3", "-W", "1", "-i", "0.2", dst)
	_ = p.Wait(8 * time.Second)
	out, _ := vtep.Try("ip", "-s", "link", "show", "dev", vx)
	return p.Output() + out
}
