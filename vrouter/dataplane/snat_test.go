package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/packet"
)

var outside = [4]byte{198, 18, 201, 10}

func snatSnapshot(t *testing.T) *Snapshot {
	s := overlaySnapshot(t, encap.VXLAN)
	s.NextHops[5] = NextHop{Type: NHSNAT, Vif: 0, Outer: encap.Outer{SrcMAC: fabricMAC, DstMAC: remoteMAC}}
	if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix("0.0.0.0/0"), 5); err != nil {
		t.Fatal(err)
	}
	pools := flowtable.NewSNAT(nodeIP)
	flows, err := flowtable.New(flowtable.Config{Capacity: 1024, SNAT: []*flowtable.SNAT{pools}})
	if err != nil {
		t.Fatal(err)
	}
	s.Flows, s.SNAT = flows, pools
	return s
}

func tcpFrame(t testing.TB, src, dst [4]byte, sport, dport uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: rtrMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src[:], DstIP: dst[:]}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 7, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp, gopacket.Payload([]byte("hello")))
}

// l4ChecksumOK verifies a TCP/UDP checksum over its pseudo-header.
func l4ChecksumOK(f []byte) bool {
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	pseudo := make([]byte, 0, 12+total-ihl)
	pseudo = append(pseudo, ip[12:20]...)
	pseudo = append(pseudo, 0, ip[9], byte((total-ihl)>>8), byte(total-ihl))
	pseudo = append(pseudo, ip[ihl:total]...)
	return packet.Checksum(pseudo) == 0
}

func TestSNATRoundTrip(t *testing.T) {
	s := snatSnapshot(t)
	mem, d, v := processWith(s, 1, tcpFrame(t, ipA, outside, 40000, 80))
	if v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("out: %+v", v[0])
	}
	out := frameAt(mem, d[0])
	pk := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if [4]byte(ip.SrcIP.To4()) != nodeIP || tcp.SrcPort < 56000 || tcp.SrcPort > 57023 || ip.TTL != 63 {
		t.Fatalf("translated %v:%d ttl %d", ip.SrcIP, tcp.SrcPort, ip.TTL)
	}
	if packet.Checksum(out[14:34]) != 0 || !l4ChecksumOK(out) {
		t.Fatal("checksums broken by the rewrite")
	}
	// The same flow again: the same port.
	_, d2, _ := processWith(s, 1, tcpFrame(t, ipA, outside, 40000, 80))
	_ = d2
	natPort := uint16(tcp.SrcPort)
	// The reply, from the fabric, goes back to pod A's address and port.
	reply := tcpFrame(t, outside, nodeIP, 80, natPort)
	copy(reply[0:6], fabricMAC[:])
	mem, d, v = processWith(s, 0, reply)
	if v[0] != (Verdict{Vif: 1}) {
		t.Fatalf("reply: %+v", v[0])
	}
	back := frameAt(mem, d[0])
	pk = gopacket.NewPacket(back, layers.LayerTypeEthernet, gopacket.Default)
	ip = pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp = pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if [4]byte(ip.DstIP.To4()) != ipA || tcp.DstPort != 40000 || !l4ChecksumOK(back) {
		t.Fatalf("reply translated to %v:%d", ip.DstIP, tcp.DstPort)
	}
	// Unsolicited: no flow, dropped.
	in := tcpFrame(t, outside, nodeIP, 80, natPort+1)
	if _, _, v := processWith(s, 0, in); v[0].Reason != SNATNoFlow {
		t.Fatalf("unsolicited inbound: %+v", v[0])
	}
	if st := s.Flows.Stats(); st.Flows != 1 {
		t.Fatalf("%d flows, want 1", st.Flows)
	}
}

func TestSNATUDPAndICMP(t *testing.T) {
	s := snatSnapshot(t)
	mem, d, v := processWith(s, 1, udpFrame(t, ipA, outside, 64, 30))
	if v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("udp out: %+v", v[0])
	}
	out := frameAt(mem, d[0])
	udp := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp.SrcPort < 57024 || udp.SrcPort > 58047 || !l4ChecksumOK(out) {
		t.Fatalf("udp source port %d", udp.SrcPort)
	}
	mem, d, v = processWith(s, 1, pingFrame(t, outside))
	if v[0] != (Verdict{Vif: 0}) {
		t.Fatalf("ping out: %+v", v[0])
	}
	ic := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic.Id < 57024 || packet.Checksum(frameAt(mem, d[0])[34:]) != 0 {
		t.Fatalf("echo id %d", ic.Id)
	}
}

func TestSNATFlowTableFull(t *testing.T) {
	s := snatSnapshot(t)
	flows, err := flowtable.New(flowtable.Config{Capacity: 2, SNAT: []*flowtable.SNAT{s.SNAT}})
	if err != nil {
		t.Fatal(err)
	}
	s.Flows = flows
	for i := range 4 {
		_, _, v := processWith(s, 1, tcpFrame(t, ipA, outside, uint16(40000+i), 80))
		if i < 2 && v[0].Reason != Forward || i >= 2 && v[0].Reason != FlowTableFull {
			t.Fatalf("flow %d: %+v", i, v[0])
		}
	}
	// An existing flow keeps working.
	if _, _, v := processWith(s, 1, tcpFrame(t, ipA, outside, 40000, 80)); v[0].Reason != Forward {
		t.Fatalf("existing flow with a full table: %+v", v[0])
	}
	if st := s.Flows.Stats(); st.Full < 2 || s.SNAT.TCP.InUse() != 2 {
		t.Fatalf("stats %+v, %d tcp ports in use (refused flows must return theirs)", st, s.SNAT.TCP.InUse())
	}
}

// TestOverlayZeroAllocs: encapsulating, decapsulating and source-NATing
// (flow hit) allocate nothing per packet.
func TestOverlayZeroAllocs(t *testing.T) {
	s := snatSnapshot(t)
	s.NextHops = append(s.NextHops, NextHop{Type: NHTunnel, Kind: encap.VXLAN, Label: 77,
		Outer: encap.Outer{SrcMAC: fabricMAC, DstMAC: remoteMAC, Src: nodeIP, Dst: remoteIP}})
	if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix("198.18.10.9/32"), uint32(len(s.NextHops)-1)); err != nil {
		t.Fatal(err)
	}
	p := Pipeline{FrameSize: frameSize}
	v := make([]Verdict, 1)
	tunnel := udpFrame(t, ipA, ipRemote, 64, 18)
	snat := tcpFrame(t, ipA, outside, 40000, 80)
	mem, d := umem(tunnel)
	smem, sd := umem(snat)
	p.Process(s, smem, sd, 1, v) // create the flow
	allocs := testing.AllocsPerRun(100, func() {
		copy(mem[256:], tunnel)
		d[0].Addr, d[0].Len = 256, uint32(len(tunnel))
		p.Process(s, mem, d, 1, v)
		copy(smem[256:], snat)
		sd[0].Addr, sd[0].Len = 256, uint32(len(snat))
		p.Process(s, smem, sd, 1, v)
	})
	if allocs != 0 || v[0].Reason != Forward {
		t.Fatalf("%v allocations per tunnel+SNAT packet pair (last verdict %+v)", allocs, v[0])
	}
}
