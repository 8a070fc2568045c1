package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

var (
	nodeIP    = [4]byte{198, 18, 200, 1}
	remoteIP  = [4]byte{198, 18, 200, 2}
	fabricMAC = [6]byte{0x02, 0xfa, 0, 0, 0, 1}
	remoteMAC = [6]byte{0x02, 0xfa, 0, 0, 0, 2}
	ipRemote  = [4]byte{198, 18, 10, 9}
)

// overlaySnapshot adds a fabric (vif 0) and a tunnel next hop 5 for
// 198.18.10.9 to testSnapshot; kind picks MPLSoUDP (label 2001) or VXLAN (VNI 77).
func overlaySnapshot(t testing.TB, kind encap.Kind) *Snapshot {
	s := testSnapshot(t)
	s.Fabric = Fabric{Valid: true, Vif: 0, IP: nodeIP, MAC: fabricMAC}
	s.Vifs[0] = Vif{Valid: true}
	label := uint32(2001)
	if kind == encap.VXLAN {
		label = 77
	}
	s.NextHops = append(s.NextHops, NextHop{Type: NHTunnel, Kind: kind, Label: label,
		Outer: encap.Outer{SrcMAC: fabricMAC, DstMAC: remoteMAC, Src: nodeIP, Dst: remoteIP}})
	if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix("198.18.10.9/32"), 5); err != nil {
		t.Fatal(err)
	}
	s.VNIs = map[uint32]uint32{77: 1}
	return s
}

func processWith(s *Snapshot, in uint32, frames ...[]byte) ([]byte, []afxdp.Desc, []Verdict) {
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	p.Process(s, mem, descs, in, v)
	return mem, descs, v
}

func TestTunnelEncap(t *testing.T) {
	for _, kind := range []encap.Kind{encap.MPLSoUDP, encap.VXLAN} {
		s := overlaySnapshot(t, kind)
		mem, d, v := processWith(s, 1, udpFrame(t, ipA, ipRemote, 64, 100))
		if v[0] != (Verdict{Vif: 0}) {
			t.Fatalf("%v: verdict %+v", kind, v[0])
		}
		pk := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
		ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp := pk.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if [4]byte(ip.SrcIP.To4()) != nodeIP || [4]byte(ip.DstIP.To4()) != remoteIP || udp.SrcPort < 49152 {
			t.Fatalf("%v: outer %v -> %v sport %d", kind, ip.SrcIP, ip.DstIP, udp.SrcPort)
		}
		switch kind {
		case encap.MPLSoUDP:
			// gopacket does not map UDP 6635 to MPLS by itself: decode from the payload.
			mp := gopacket.NewPacket(udp.Payload, layers.LayerTypeMPLS, gopacket.Default)
			m, ok := mp.Layer(layers.LayerTypeMPLS).(*layers.MPLS)
			if !ok || udp.DstPort != 6635 || m.Label != 2001 || !m.StackBottom || mp.Layer(layers.LayerTypeIPv4) == nil {
				t.Fatalf("MPLSoUDP: dport %d mpls %+v", udp.DstPort, m)
			}
		case encap.VXLAN:
			x, ok := pk.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			if udp.DstPort != 4789 || !ok || x.VNI != 77 {
				t.Fatalf("VXLAN: dport %d vxlan %+v", udp.DstPort, x)
			}
		}
	}
	s := overlaySnapshot(t, encap.VXLAN)
	s.NextHops[5].Outer.DstMAC = [6]byte{}
	if _, _, v := processWith(s, 1, udpFrame(t, ipA, ipRemote, 64, 10)); v[0].Reason != NoNeighbor {
		t.Fatalf("unresolved underlay: %+v", v[0])
	}
}

func TestFabricDecap(t *testing.T) {
	for _, kind := range []encap.Kind{encap.MPLSoUDP, encap.VXLAN} {
		s := overlaySnapshot(t, kind)
		// Build what the remote node sends: encapsulate a frame to pod B.
		inner := udpFrame(t, ipRemote, ipB, 63, 100)
		mem, descs := umem(inner)
		label := uint32(LabelBase + 1) // this node's label for VRF 1
		if kind == encap.VXLAN {
			label = 77
		}
		o := encap.Outer{SrcMAC: remoteMAC, DstMAC: fabricMAC, Src: remoteIP, Dst: nodeIP}
		off, n, err := encap.Encap(mem[:frameSize], int(descs[0].Addr), int(descs[0].Len), kind, label, &o, 7)
		if err != nil {
			t.Fatal(err)
		}
		descs[0] = afxdp.Desc{Addr: uint64(off), Len: uint32(n)}
		v := make([]Verdict, 1)
		p := Pipeline{FrameSize: frameSize}
		p.Process(s, mem, descs, 0, v)
		if v[0] != (Verdict{Vif: 2}) {
			t.Fatalf("%v: verdict %+v", kind, v[0])
		}
		checkForwarded(t, frameAt(mem, descs[0]), len(inner), macB)
	}
	s := overlaySnapshot(t, encap.VXLAN)
	junk := udpFrame(t, remoteIP, nodeIP, 64, 20)
	if _, _, v := processWith(s, 0, junk); v[0].Reason != NoRoute {
		t.Fatalf("non-overlay frame from the fabric, no fabric-forwarded VN: %+v", v[0])
	}
}

func TestTunnelMTU(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	s.Fabric.MTU = 1500
	big := udpFrame(t, ipA, ipRemote, 64, 1500-20-8) // a 1500-byte IP packet: +50 does not fit
	big[14+6] |= 0x40                                // DF
	big[14+10], big[14+11] = 0, 0
	sum := packet.Checksum(big[14:34])
	big[14+10], big[14+11] = byte(sum>>8), byte(sum)
	mem, d, v := processWith(s, 1, big)
	if v[0] != (Verdict{Vif: 1, Note: MTUExceeded}) {
		t.Fatalf("DF too big: %+v", v[0])
	}
	pk := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
	ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || ic.Seq != 1450 {
		t.Fatalf("want fragmentation needed with MTU 1450, got %+v", ic)
	}
	fits := udpFrame(t, ipA, ipRemote, 64, 1450-20-8)
	if _, _, v := processWith(s, 1, fits); v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("1450-byte packet: %+v", v[0])
	}
}

func TestFabricForwarding(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	s.NextHops[5] = NextHop{Type: NHFabric, Vif: 0, Outer: encap.Outer{SrcMAC: fabricMAC, DstMAC: remoteMAC}}
	s.FabricVRFs = []uint32{1}
	// Pod A -> remote pod: no tunnel header, the remote node's MAC, TTL-1.
	mem, d, v := processWith(s, 1, udpFrame(t, ipA, ipRemote, 64, 100))
	if v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("to remote: %+v", v[0])
	}
	pk := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
	eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if [6]byte(eth.DstMAC) != remoteMAC || [6]byte(eth.SrcMAC) != fabricMAC || ip.TTL != 63 || pk.Layer(layers.LayerTypeVXLAN) != nil {
		t.Fatalf("native frame: %v -> %v ttl %d", eth.SrcMAC, eth.DstMAC, ip.TTL)
	}
	// From the fabric, natively, to local pod B.
	in := udpFrame(t, ipRemote, ipB, 63, 100)
	copy(in[0:6], fabricMAC[:])
	if _, _, v := processWith(s, 0, in); v[0] != (Verdict{Vif: 2}) {
		t.Fatalf("from the fabric to pod B: %+v", v[0])
	}
	// ARP from the fabric for pod B: answered with the fabric MAC.
	mem, d, v = processWith(s, 0, arpFrame(t, ipB))
	if v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("fabric ARP: %+v", v[0])
	}
	a := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeARP).(*layers.ARP)
	if a.Operation != layers.ARPReply || [6]byte(a.SourceHwAddress) != fabricMAC {
		t.Fatalf("fabric ARP reply %+v", a)
	}
	// A VN that is not fabric-forwarded is not reachable that way.
	s.FabricVRFs = nil
	if _, _, v := processWith(s, 0, in); v[0].Reason != NoRoute {
		t.Fatalf("not fabric-forwarded: %+v", v[0])
	}
}
