package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
	"github.com/xvr-project/xvr/vrouter/route"
)

const frameSize = 2048

var (
	rtrMAC = [6]byte{0x02, 0x78, 0x76, 0x72, 0, 1}
	macA   = [6]byte{0x02, 0, 0, 0, 0, 0xa}
	macB   = [6]byte{0x02, 0, 0, 0, 0, 0xb}
	macC   = [6]byte{0x02, 0, 0, 0, 0, 0xc}
	ipA    = [4]byte{198, 18, 10, 1}
	ipB    = [4]byte{198, 18, 10, 2}
	ipC    = [4]byte{198, 18, 20, 1}
	gw10   = [4]byte{198, 18, 10, 254}
)

// testSnapshot: vif 1 (A) and 2 (B) on VRF 1 (198.18.10.0/24), vif 3 (C) on
// VRF 2 (198.18.20.0/24). Next hops 2, 3, 4 deliver to vifs 1, 2, 3.
func testSnapshot(t testing.TB) *Snapshot {
	var tables route.Tables
	t1, t2 := tables.Ensure(1), tables.Ensure(2)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(t1.Insert(netip.MustParsePrefix("198.18.10.1/32"), 2))
	must(t1.Insert(netip.MustParsePrefix("198.18.10.2/32"), 3))
	must(t1.Insert(netip.MustParsePrefix("198.18.10.254/32"), NHIDReceive))
	must(t1.Insert(netip.MustParsePrefix("198.18.99.0/24"), NHIDDiscard))
	must(t2.Insert(netip.MustParsePrefix("198.18.20.1/32"), 4))
	return &Snapshot{
		MAC:  rtrMAC,
		Vifs: []Vif{{}, {Valid: true, VRF: 1, MAC: macA, IP: ipA}, {Valid: true, VRF: 1, MAC: macB, IP: ipB}, {Valid: true, VRF: 2, MAC: macC, IP: ipC}},
		NextHops: []NextHop{{Type: NHDiscard}, {Type: NHReceive}, {Type: NHEncap, Vif: 1, DstMAC: macA},
			{Type: NHEncap, Vif: 2, DstMAC: macB}, {Type: NHEncap, Vif: 3, DstMAC: macC}},
		VRFs: []VRF{{}, {Valid: true, Gateway: gw10, DNS: [4]byte{198, 18, 10, 253}, Net: 0xc6120a00, Mask: 0xffffff00, Table: t1},
			{Valid: true, Gateway: [4]byte{198, 18, 20, 254}, Net: 0xc6121400, Mask: 0xffffff00, Table: t2}},
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func udpFrame(t testing.TB, src, dst [4]byte, ttl uint8, n int) []byte {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: rtrMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: src[:], DstIP: dst[:]}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload(make([]byte, n)))
}

func pingFrame(t testing.TB, dst [4]byte) []byte {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: rtrMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipA[:], DstIP: dst[:]}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 9, Seq: 1}
	return serialize(t, eth, ip, ic, gopacket.Payload([]byte("ping")))
}

func arpFrame(t testing.TB, target [4]byte) []byte {
	eth := &layers.Ethernet{SrcMAC: macA[:], DstMAC: packet.Broadcast[:], EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: macA[:], SourceProtAddress: ipA[:],
		DstHwAddress: make([]byte, 6), DstProtAddress: target[:]}
	return serialize(t, eth, a)
}

// umem lays frames out in chunks after 256 bytes of headroom, like the kernel.
func umem(frames ...[]byte) ([]byte, []afxdp.Desc) {
	mem := make([]byte, frameSize*len(frames))
	descs := make([]afxdp.Desc, len(frames))
	for i, f := range frames {
		addr := uint64(i*frameSize + 256)
		copy(mem[addr:], f)
		descs[i] = afxdp.Desc{Addr: addr, Len: uint32(len(f))}
	}
	return mem, descs
}

func process(t testing.TB, in uint32, frames ...[]byte) ([]byte, []afxdp.Desc, []Verdict) {
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	p.Process(testSnapshot(t), mem, descs, in, v)
	return mem, descs, v
}

func frameAt(mem []byte, d afxdp.Desc) []byte { return mem[d.Addr : d.Addr+uint64(d.Len)] }

func TestForwardSameVN(t *testing.T) {
	mem, d, v := process(t, 1, udpFrame(t, ipA, ipB, 64, 100))
	if v[0] != (Verdict{Vif: 2}) {
		t.Fatalf("verdict %+v", v[0])
	}
	p := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if [6]byte(eth.DstMAC) != macB || [6]byte(eth.SrcMAC) != rtrMAC || ip.TTL != 63 {
		t.Fatalf("rewrite: dst %v src %v ttl %d", eth.DstMAC, eth.SrcMAC, ip.TTL)
	}
	if packet.Checksum(frameAt(mem, d[0])[14:34]) != 0 {
		t.Fatal("IP checksum broken by TTL decrement")
	}
}

func TestDrops(t *testing.T) {
	trunc := udpFrame(t, ipA, ipB, 64, 10)[:30]
	badIHL := udpFrame(t, ipA, ipB, 64, 10)
	badIHL[14] = 0x43
	badSum := udpFrame(t, ipA, ipB, 64, 10)
	badSum[24] ^= 1
	v6 := udpFrame(t, ipA, ipB, 64, 10)
	binary.BigEndian.PutUint16(v6[12:], packet.EtherTypeIPv6)
	vlan := udpFrame(t, ipA, ipB, 64, 10)
	binary.BigEndian.PutUint16(vlan[12:], packet.EtherTypeVLAN)
	notMe := udpFrame(t, ipA, ipB, 64, 10)
	notMe[0] = 0x04
	bcast := udpFrame(t, ipA, [4]byte{255, 255, 255, 255}, 64, 10)
	cases := []struct {
		name  string
		in    uint32
		frame []byte
		want  Reason
	}{
		{"cross-vn", 1, udpFrame(t, ipA, ipC, 64, 10), NoRoute},
		{"unknown-dst", 1, udpFrame(t, ipA, [4]byte{198, 18, 10, 77}, 64, 10), NoRoute},
		{"discard", 1, udpFrame(t, ipA, [4]byte{198, 18, 99, 1}, 64, 10), Discard},
		{"short", 1, []byte{1, 2, 3}, InvalidPacket},
		{"truncated-ip", 1, trunc, InvalidIPHeader},
		{"bad-ihl", 1, badIHL, InvalidIPHeader},
		{"bad-checksum", 1, badSum, IPChecksum},
		{"ipv6", 1, v6, IPv6Unsupported},
		{"vlan", 1, vlan, UnknownEtherType},
		{"not-for-router", 1, notMe, L2DstMismatch},
		{"broadcast", 1, bcast, NonUnicastIP},
		{"unknown-vif", 9, udpFrame(t, ipA, ipB, 64, 10), InvalidVif},
		{"arp-outside-vn", 1, arpFrame(t, ipC), ARPNotMe},
		{"udp-to-gateway", 1, udpFrame(t, ipA, gw10, 64, 10), ReceiveUnhandled},
	}
	for _, c := range cases {
		_, _, v := process(t, c.in, c.frame)
		if v[0].Reason != c.want {
			t.Errorf("%s: reason %v, want %v", c.name, v[0].Reason, c.want)
		}
	}
}

func TestProxyARPForGateway(t *testing.T) {
	for _, target := range [][4]byte{gw10, ipB} {
		mem, d, v := process(t, 1, arpFrame(t, target))
		if v[0] != (Verdict{Vif: 1}) {
			t.Fatalf("verdict %+v", v[0])
		}
		p := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
		a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		if a.Operation != layers.ARPReply || [6]byte(a.SourceHwAddress) != rtrMAC || [4]byte(a.SourceProtAddress) != target {
			t.Fatalf("reply %+v", a)
		}
	}
}

func TestPingGateway(t *testing.T) {
	mem, d, v := process(t, 1, pingFrame(t, gw10))
	if v[0] != (Verdict{Vif: 1}) {
		t.Fatalf("verdict %+v", v[0])
	}
	p := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply || [4]byte(ip.SrcIP.To4()) != gw10 {
		t.Fatalf("got %v from %v", ic.TypeCode, ip.SrcIP)
	}
}

func TestTTLExceeded(t *testing.T) {
	mem, d, v := process(t, 1, udpFrame(t, ipA, ipB, 1, 100))
	if v[0] != (Verdict{Vif: 1, Note: TTLExceeded}) {
		t.Fatalf("verdict %+v", v[0])
	}
	p := gopacket.NewPacket(frameAt(mem, d[0]), layers.LayerTypeEthernet, gopacket.Default)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ic == nil || ic.TypeCode.Type() != layers.ICMPv4TypeTimeExceeded || [4]byte(ip.SrcIP.To4()) != gw10 ||
		[4]byte(ip.DstIP.To4()) != ipA {
		t.Fatalf("got %v", p)
	}
}

func TestZeroAllocsPerPacket(t *testing.T) {
	s := testSnapshot(t)
	frames := make([][]byte, BatchSize)
	for i := range frames {
		frames[i] = udpFrame(t, ipA, ipB, 64, 18)
	}
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	allocs := testing.AllocsPerRun(200, func() {
		for i := range descs {
			mem[descs[i].Addr+22] = 64 // keep the TTL from running out
			binary.BigEndian.PutUint16(mem[descs[i].Addr+24:], 0)
			packet.SetIPv4Checksum(mem[descs[i].Addr+14:], 20)
		}
		p.Process(s, mem, descs, 1, v)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

func BenchmarkPipeline(b *testing.B) {
	s := testSnapshot(b)
	frames := make([][]byte, BatchSize)
	for i := range frames {
		frames[i] = udpFrame(b, ipA, ipB, 255, 18) // 64-byte frame
	}
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i%200 == 0 { // TTL runs down by one per pass: reset it outside the hot loop
			for j := range descs {
				mem[descs[j].Addr+22] = 255
				packet.SetIPv4Checksum(mem[descs[j].Addr+14:], 20)
			}
		}
		for j := range descs { // forwarding rewrote the destination MAC to B's
			copy(mem[descs[j].Addr:], rtrMAC[:])
		}
		p.Process(s, mem, descs, 1, v)
	}
	el := time.Since(start)
	if v[0] != (Verdict{Vif: 2}) {
		b.Fatalf("verdict %+v: the benchmark measured drops, not forwarding", v[0])
	}
	pkts := float64(b.N) * float64(len(descs))
	b.ReportMetric(el.Seconds()*1e9/pkts, "ns/pkt")
	b.ReportMetric(pkts/el.Seconds(), "pps")
}

var _ = net.HardwareAddr{}
