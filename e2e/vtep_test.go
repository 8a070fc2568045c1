package e2e

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// A second kernel VTEP, set up only the dynamic way docs/operations.md
// documents (learning, one all-zero fdb entry to the node).
const (
	dynVTEPIP   = "198.18.200.4"
	dynVTEPAddr = "198.18.10.51" // its address inside vn-left-1
)

// testKernelVTEPDynamic: a Linux VXLAN device that resolves addresses by
// ARP and learns MACs (nothing static but the all-zero fdb entry that sends
// broadcasts to node 0) reaches left1 and is reached by it, with ping and
// TCP both ways. Its neighbour entry for the pod must be the vRouter MAC,
// learned by ARP (not permanent), and its fdb must have learned that MAC
// behind node 0's IP from xvr's ARP reply.
func testKernelVTEPDynamic(t *testing.T, o *overlayTopo) {
	n0 := o.nodes[0]
	vtep := nettest.NewNS(t, "xvd")
	dev, _ := o.fabricLink(t, vtep, "xvf", dynVTEPIP)
	vx := nettest.Name(t, "xvy")
	vni := strconv.FormatUint(uint64(o.vni[leftVN]), 10)
	// The documented Linux side: a learning vxlan device and the all-zero entry.
	vtep.Run(t, "ip", "link", "add", vx, "type", "vxlan", "id", vni, "dstport", "4789", "local", dynVTEPIP, "dev", dev)
	delLinkOnCleanup(t, vtep, vx)
	vtep.Run(t, "sysctl", "-qw", "net.ipv6.conf."+vx+".disable_ipv6=1")
	vtep.Run(t, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vx, "dst", n0.ip)
	vtep.Run(t, "ip", "addr", "add", dynVTEPAddr+"/24", "dev", vx)
	vtep.Run(t, "ip", "link", "set", vx, "up")
	// The documented xvr side: a tunnel route to the VTEP, its device's MAC.
	n0.mustCtl(t, "route", "add", "--network", leftVN, "--prefix", dynVTEPAddr+"/32", "--tunnel", dynVTEPIP,
		"--encaps", "VXLAN", "--vni", vni, "--mac", vtep.MAC(t, vx))
	defer n0.mustCtl(t, "route", "del", "--network", leftVN, "--prefix", dynVTEPAddr+"/32")
	before := dropCounts(t, n0.node)
	for _, c := range []struct {
		name string
		ns   *nettest.NS
		dst  string
	}{{"vtep -> pod", vtep, left1IP}, {"pod -> vtep", o.left1.ns, dynVTEPAddr}} {
		ok := warmUp(t, c.ns, c.dst)
		out, err := c.ns.Try("ping", "-c", "5", "-W", "1", "-i", "0.2", c.dst)
		if !ok || err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("%s: %v\n%s\nvtep %s inner frames:\n%s\n%s", c.name, err, out, vx,
				vtepFrames(t, vtep, vx, c.ns, c.dst), o.diag(t))
		}
	}
	checkVTEPLearned(t, vtep, vx, n0)
	const size = 16 << 20
	o.left1.ns.TCPTransfer(t, vtep, addr(left1IP), 5401, size)
	vtep.TCPTransfer(t, o.left1.ns, addr(dynVTEPAddr), 5402, size)
	after := dropCounts(t, n0.node)
	for _, r := range []string{"overlay_arp_not_me", "overlay_invalid_arp", "overlay_l2_dst_mismatch",
		"overlay_unknown_ethertype", "overlay_invalid_ip_header", "decap_error"} {
		if after[r] != before[r] {
			t.Errorf("node 0 %s went from %d to %d while the VTEP talked to the pod", r, before[r], after[r])
		}
	}
	t.Run("strict-drops", func(t *testing.T) { testStrictDrops(t, o, vtep, vx) })
}

// testStrictDrops: a valid IPv4 packet to left1 behind EtherType 0x88b5 or
// 0x86dd, sent by the VTEP inside VXLAN to the vRouter MAC, is not
// delivered; 200 echo requests with a wrong ICMP checksum from left1 to its
// gateway get no answer. xvrctl dropstats shows each with its reason.
func testStrictDrops(t *testing.T, o *overlayTopo, vtep *nettest.NS, vx string) {
	n0 := o.nodes[0]
	var st api.Status
	n0.ctlJSON(t, &st, "status")
	rtr, _ := net.ParseMAC(st.MAC)
	vxMAC, _ := net.ParseMAC(vtep.MAC(t, vx))
	podMAC, _ := net.ParseMAC(o.left1.ns.MAC(t, "eth1"))
	before, rxBefore := dropCounts(t, n0.node), rxPackets(t, o.left1.ns, "eth1")
	const n = 100
	for _, et := range []layers.EthernetType{0x88b5, layers.EthernetTypeIPv6} {
		f := e2eFrame(t, &layers.Ethernet{SrcMAC: vxMAC, DstMAC: rtr, EthernetType: et},
			&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(dynVTEPAddr), DstIP: net.ParseIP(left1IP)},
			&layers.UDP{SrcPort: 7, DstPort: 9}, gopacket.Payload("not for the pod"))
		if sent := vtep.SendFrame(t, vx, f, n); sent != n {
			t.Fatalf("sent %d of %d frames of EtherType %v", sent, n, et)
		}
	}
	echo := e2eFrame(t, &layers.Ethernet{SrcMAC: podMAC, DstMAC: rtr, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(left1IP), DstIP: net.ParseIP("198.18.10.254")},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 77, Seq: 1}, gopacket.Payload("bad sum"))
	echo[14+20+2] ^= 0xff // the ICMP checksum
	if sent := o.left1.ns.SendFrame(t, "eth1", echo, 200); sent != 200 {
		t.Fatalf("sent %d of 200 echo requests", sent)
	}
	want := map[string]uint64{"overlay_unknown_ethertype": 2 * n, "icmp_checksum": 200}
	out := n0.mustCtl(t, "dropstats")
	shown := dropTableCounts(out)
	for r, w := range want {
		if got := shown[r] - before[r]; got != w {
			t.Errorf("xvrctl dropstats %s: +%d, want +%d\n%s", r, got, w, out)
		}
	}
	if rx := rxPackets(t, o.left1.ns, "eth1") - rxBefore; rx >= n {
		t.Errorf("left1 received %d packets on eth1 while %d frames of other EtherTypes and 200 bad echoes came", rx, 2*n)
	}
}

// e2eFrame serializes layers with lengths and checksums computed.
func e2eFrame(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for i, l := range ls {
		if u, ok := l.(*layers.UDP); ok {
			_ = u.SetNetworkLayerForChecksum(ls[i-1].(*layers.IPv4))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dropTableCounts reads xvrctl dropstats' table (REASON COUNT).
func dropTableCounts(out string) map[string]uint64 {
	m := map[string]uint64{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if c, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = c
			}
		}
	}
	return m
}

// rxPackets is dev's received packet count in ns.
func rxPackets(t *testing.T, ns *nettest.NS, dev string) uint64 {
	t.Helper()
	out := strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets"))
	c, err := strconv.ParseUint(out, 10, 64)
	if err != nil {
		t.Fatalf("rx_packets of %s: %q", dev, out)
	}
	return c
}

// checkVTEPLearned: the VTEP's neighbour for left1 is node 0's vRouter MAC
// and not permanent (ARP resolved it), and that MAC is in its fdb towards
// node 0 (learned from the ARP reply's outer source).
func checkVTEPLearned(t *testing.T, vtep *nettest.NS, vx string, n0 *overlayNode) {
	t.Helper()
	var st api.Status
	n0.ctlJSON(t, &st, "status")
	var neigh []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	out := vtep.Run(t, "ip", "-j", "neigh", "show", left1IP, "dev", vx)
	if err := json.Unmarshal([]byte(out), &neigh); err != nil || len(neigh) != 1 {
		t.Fatalf("ip -j neigh show %s: %v\n%s", left1IP, err, out)
	}
	if neigh[0].LLAddr != st.MAC || strings.Contains(strings.Join(neigh[0].State, ","), "PERMANENT") {
		t.Fatalf("VTEP neighbour for %s: %+v, want %s learned by ARP", left1IP, neigh[0], st.MAC)
	}
	fdb := vtep.Run(t, "bridge", "fdb", "show", "dev", vx)
	found := false
	for _, l := range strings.Split(fdb, "\n") {
		if strings.HasPrefix(l, st.MAC+" ") && strings.Contains(l, "dst "+n0.ip) && !strings.Contains(l, "permanent") {
			found = true
		}
	}
	if !found {
		t.Fatalf("VTEP fdb has not learned %s behind %s:\n%s", st.MAC, n0.ip, fdb)
	}
}

// dropCounts is node n's dropstats by reason name.
func dropCounts(t *testing.T, n *node) map[string]uint64 {
	t.Helper()
	var ds []api.DropStat
	n.ctlJSON(t, &ds, "dropstats", "--all")
	m := map[string]uint64{}
	for _, d := range ds {
		m[d.Reason] += d.Count
	}
	return m
}
