package dataplane

import (
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

var (
	vtepMAC  = [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55} // a standard VTEP's own MAC
	vtepAddr = [4]byte{198, 18, 10, 50}
)

// fromFabric encapsulates inner (an Ethernet frame) as a remote node sends
// it to this node (VNI 77 or this node's label for VRF 1) and returns the
// UMEM and descriptor of the frame received on the fabric.
func fromFabric(t testing.TB, kind encap.Kind, inner []byte) ([]byte, []afxdp.Desc) {
	t.Helper()
	mem, descs := umem(inner)
	label := uint32(LabelBase + 1)
	if kind == encap.VXLAN {
		label = 77
	}
	o := encap.Outer{SrcMAC: remoteMAC, DstMAC: fabricMAC, Src: remoteIP, Dst: nodeIP}
	off, n, err := encap.Encap(mem[:frameSize], int(descs[0].Addr), int(descs[0].Len), kind, label, &o, 7)
	if err != nil {
		t.Fatal(err)
	}
	descs[0] = afxdp.Desc{Addr: uint64(off), Len: uint32(n)}
	return mem, descs
}

func processFabric(t testing.TB, s *Snapshot, kind encap.Kind, inner []byte) ([]byte, afxdp.Desc, Verdict) {
	t.Helper()
	mem, d := fromFabric(t, kind, inner)
	v := make([]Verdict, 1)
	p := Pipeline{FrameSize: frameSize}
	p.Process(s, mem, d, 0, v)
	return mem, d[0], v[0]
}

// vtepARP is the ARP request a Linux VXLAN device sends (inside VXLAN) for
// target, from vtepAddr at vtepMAC.
func vtepARP(t testing.TB, op uint16, dst [6]byte, target [4]byte) []byte {
	eth := &layers.Ethernet{SrcMAC: vtepMAC[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: op, SourceHwAddress: vtepMAC[:], SourceProtAddress: vtepAddr[:],
		DstHwAddress: make([]byte, 6), DstProtAddress: target[:]}
	return serialize(t, eth, a)
}

// TestOverlayARP: an ARP request inside VXLAN for a local pod is answered
// with the vRouter MAC, back in VXLAN (same VNI) to the sending VTEP.
func TestOverlayARP(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	for _, dst := range [][6]byte{packet.Broadcast, rtrMAC} { // a Linux re-probe is unicast
		mem, d, v := processFabric(t, s, encap.VXLAN, vtepARP(t, layers.ARPRequest, dst, ipB))
		if v != (Verdict{Vif: 0}) {
			t.Fatalf("dst %x: verdict %+v", dst, v)
		}
		f := frameAt(mem, d)
		pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pk.Layer(layers.LayerTypeUDP).(*layers.UDP)
		x, _ := pk.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if ip == nil || udp == nil || x == nil {
			t.Fatalf("reply is not VXLAN: %v", pk)
		}
		if [6]byte(eth.SrcMAC) != fabricMAC || [6]byte(eth.DstMAC) != remoteMAC ||
			[4]byte(ip.SrcIP.To4()) != nodeIP || [4]byte(ip.DstIP.To4()) != remoteIP ||
			udp.DstPort != 4789 || udp.SrcPort < 49152 || x.VNI != 77 || packet.Checksum(f[14:34]) != 0 {
			t.Fatalf("outer headers: %v", pk)
		}
		inner := gopacket.NewPacket(x.Payload, layers.LayerTypeEthernet, gopacket.Default)
		ie := inner.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		a, _ := inner.Layer(layers.LayerTypeARP).(*layers.ARP)
		if a == nil || [6]byte(ie.SrcMAC) != rtrMAC || [6]byte(ie.DstMAC) != vtepMAC || a.Operation != layers.ARPReply ||
			[6]byte(a.SourceHwAddress) != rtrMAC || [4]byte(a.SourceProtAddress) != ipB ||
			[6]byte(a.DstHwAddress) != vtepMAC || [4]byte(a.DstProtAddress) != vtepAddr {
			t.Fatalf("inner reply: %v", inner)
		}
		if int(ip.Length) != len(f)-14 || int(udp.Length) != len(f)-34 || len(x.Payload) != 42 {
			t.Fatalf("lengths: ip %d udp %d inner %d, frame %d", ip.Length, udp.Length, len(x.Payload), len(f))
		}
	}
}

func TestOverlayARPDrops(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	bad := vtepARP(t, layers.ARPRequest, packet.Broadcast, ipB)
	bad[14+4] = 8 // hardware address length
	probe := vtepARP(t, layers.ARPRequest, packet.Broadcast, ipB)
	copy(probe[14+14:14+18], []byte{0, 0, 0, 0})
	for _, c := range []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"gateway", vtepARP(t, layers.ARPRequest, packet.Broadcast, gw10), OverlayARPNotMe},
		{"remote-pod", vtepARP(t, layers.ARPRequest, packet.Broadcast, ipRemote), OverlayARPNotMe},
		{"other-vn", vtepARP(t, layers.ARPRequest, packet.Broadcast, ipC), OverlayARPNotMe},
		{"reply", vtepARP(t, layers.ARPReply, packet.Broadcast, ipB), OverlayARPNotMe},
		{"probe", probe, OverlayARPNotMe},
		{"malformed", bad, OverlayInvalidARP},
		{"truncated", vtepARP(t, layers.ARPRequest, packet.Broadcast, ipB)[:30], OverlayInvalidARP},
		{"other-mac", vtepARP(t, layers.ARPRequest, macC, ipB), OverlayL2DstMismatch},
	} {
		if _, _, v := processFabric(t, s, encap.VXLAN, c.frame); v.Reason != c.want {
			t.Errorf("%s: verdict %+v, want %v", c.name, v, c.want)
		}
	}
}

// innerTo is an inner frame (UDP to pod B) with the given MACs and EtherType.
func innerTo(t testing.TB, dst, src [6]byte, etherType uint16) []byte {
	f := udpFrame(t, ipRemote, ipB, 63, 100)
	packet.SetMACs(f, dst, src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return f
}

// TestOverlayInnerChecks: a decapsulated frame gets a pod frame's checks,
// with the overlay's own reasons; a valid IPv4 packet behind another
// EtherType is not delivered.
func TestOverlayInnerChecks(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	badSum := innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4)
	badSum[24] ^= 1
	badIHL := innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4)
	badIHL[14] = 0x43
	badVer := innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4)
	badVer[14] = 0x65
	cases := []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"to-vrouter", innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4), Verdict{Vif: 2}},
		{"xvr-peer", innerTo(t, remoteMAC, remoteMAC, packet.EtherTypeIPv4), Verdict{Vif: 2}},
		{"other-dst", innerTo(t, macC, vtepMAC, packet.EtherTypeIPv4), Verdict{Reason: OverlayL2DstMismatch}},
		{"broadcast", innerTo(t, packet.Broadcast, packet.Broadcast, packet.EtherTypeIPv4), Verdict{Reason: OverlayL2DstMismatch}},
		{"bad-checksum", badSum, Verdict{Reason: OverlayIPChecksum}},
		{"bad-ihl", badIHL, Verdict{Reason: OverlayInvalidIPHeader}},
		{"bad-version", badVer, Verdict{Reason: OverlayInvalidIPHeader}},
		{"truncated", innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4)[:30], Verdict{Reason: OverlayInvalidIPHeader}},
	}
	for _, et := range []uint16{packet.EtherTypeIPv6, packet.EtherTypeVLAN, 0x88b5, 0x88a8, 0x8847, 0x0000, 0xffff} {
		cases = append(cases, struct {
			name  string
			frame []byte
			want  Verdict
		}{"ethertype", innerTo(t, rtrMAC, vtepMAC, et), Verdict{Reason: OverlayUnknownEtherType}})
	}
	for _, c := range cases {
		if _, _, v := processFabric(t, s, encap.VXLAN, c.frame); v != c.want {
			t.Errorf("%s (%#04x): verdict %+v, want %+v", c.name, packet.EtherType(c.frame), v, c.want)
		}
	}
	// MPLSoUDP carries the IPv4 packet alone: the same IPv4 checks.
	m := overlaySnapshot(t, encap.MPLSoUDP)
	if _, _, v := processFabric(t, m, encap.MPLSoUDP, badSum); v.Reason != OverlayIPChecksum {
		t.Errorf("MPLSoUDP bad inner checksum: %+v", v)
	}
	if _, _, v := processFabric(t, m, encap.MPLSoUDP, badIHL); v.Reason != OverlayInvalidIPHeader {
		t.Errorf("MPLSoUDP bad inner IHL: %+v", v)
	}
}

// TestOverlayARPZeroAllocs: answering ARP inside VXLAN allocates nothing.
func TestOverlayARPZeroAllocs(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	mem, d := fromFabric(t, encap.VXLAN, vtepARP(t, layers.ARPRequest, packet.Broadcast, ipB))
	saved := append([]byte(nil), mem[:frameSize]...)
	d0 := d[0]
	p := Pipeline{FrameSize: frameSize}
	v := make([]Verdict, 1)
	allocs := testing.AllocsPerRun(200, func() {
		copy(mem, saved)
		d[0] = d0
		p.Process(s, mem, d, 0, v)
	})
	if allocs != 0 || v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("%v allocations per overlay ARP (verdict %+v)", allocs, v[0])
	}
}

// badICMP is f (an IPv4 frame carrying ICMP) with its ICMP checksum broken.
func badICMP(f []byte) []byte {
	ihl := int(f[14]&0xf) * 4
	f[14+ihl+2] ^= 0x5a
	return f
}

// TestICMPChecksum: the vRouter answers or rewrites no ICMP message whose
// checksum is wrong, and its answers' checksums are right.
func TestICMPChecksum(t *testing.T) {
	ttl1 := pingFrame(t, ipB)
	ttl1[22] = 1
	packet.SetIPv4Checksum(ttl1[14:], 20)
	mem, d, v := process(t, 1, pingFrame(t, gw10), badICMP(pingFrame(t, gw10)), ttl1, badICMP(append([]byte(nil), ttl1...)))
	if v[0] != (Verdict{Vif: 1}) || packet.Checksum(frameAt(mem, d[0])[34:]) != 0 || packet.Checksum(frameAt(mem, d[0])[14:34]) != 0 {
		t.Errorf("echo reply: verdict %+v, checksums must verify", v[0])
	}
	if v[1].Reason != ICMPChecksum {
		t.Errorf("echo request with a wrong checksum: %+v, want icmp_checksum", v[1])
	}
	if v[2] != (Verdict{Vif: 1, Note: TTLExceeded}) || packet.Checksum(frameAt(mem, d[2])[34:]) != 0 {
		t.Errorf("time exceeded for a ping: %+v", v[2])
	}
	if v[3].Reason != ICMPChecksum {
		t.Errorf("time exceeded for a ping with a wrong checksum: %+v, want icmp_checksum", v[3])
	}
	frag := pingFrame(t, gw10)
	frag[14+6] |= 0x20 // MF
	packet.SetIPv4Checksum(frag[14:], 20)
	if _, _, v := process(t, 1, frag); v[0].Reason != ReceiveUnhandled {
		t.Errorf("fragment of an echo request to the gateway: %+v", v[0])
	}
	s := snatSnapshot(t)
	if _, _, v := processWith(s, 1, badICMP(pingFrame(t, outside))); v[0].Reason != ICMPChecksum {
		t.Errorf("SNAT of an echo request with a wrong checksum: %+v", v[0])
	}
	if st := s.Flows.Stats(); st.Flows != 0 {
		t.Errorf("a refused echo made a flow: %+v", st)
	}
}
