package encap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// checkOuter decodes f with gopacket and checks the outer Ethernet, IPv4 and
// UDP headers Encap wrote; it returns the UDP layer.
func checkOuter(t *testing.T, f []byte, k Kind, entropy uint16) (gopacket.Packet, *layers.UDP) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("gopacket could not decode outer headers: %v", p)
	}
	if !bytes.Equal(eth.SrcMAC, nodeA[:]) || !bytes.Equal(eth.DstMAC, nodeB[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("outer ethernet %v > %v type %v", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	if ip.Version != 4 || ip.IHL != 5 || ip.TOS != 0 || ip.Id != 0 || ip.Flags != layers.IPv4DontFragment ||
		ip.FragOffset != 0 || ip.TTL != 32 || ip.Protocol != layers.IPProtocolUDP {
		t.Errorf("outer ipv4 fields: %+v", ip)
	}
	if int(ip.Length) != len(f)-packet.EthLen {
		t.Errorf("outer ipv4 length %d, frame %d", ip.Length, len(f))
	}
	if !ip.SrcIP.Equal(net.IP(nodeAIP[:])) || !ip.DstIP.Equal(net.IP(nodeBIP[:])) {
		t.Errorf("outer ipv4 %v > %v", ip.SrcIP, ip.DstIP)
	}
	if packet.Checksum(f[14:34]) != 0 {
		t.Errorf("outer ipv4 checksum %#04x does not verify", ip.Checksum)
	}
	if udp.DstPort != layers.UDPPort(Port(k)) || udp.Checksum != 0 || int(udp.Length) != len(f)-34 {
		t.Errorf("outer udp %+v", udp)
	}
	if want := 49152 + entropy%16384; uint16(udp.SrcPort) != want {
		t.Errorf("source port %d, want %d", udp.SrcPort, want)
	}
	return p, udp
}

func TestEncapMPLSoUDPGopacket(t *testing.T) {
	inner := innerFrame(t, 1000, 2000, 64)
	buf, off, n := encapped(t, MPLSoUDP, 0xabcde, inner)
	if off != testHeadroom-32 || n != len(inner)+32 {
		t.Fatalf("encap bounds %d+%d", off, n)
	}
	f := buf[off : off+n]
	_, udp := checkOuter(t, f, MPLSoUDP, FlowEntropy(inner[14:]))
	p := gopacket.NewPacket(udp.Payload, layers.LayerTypeMPLS, gopacket.Default)
	m, _ := p.Layer(layers.LayerTypeMPLS).(*layers.MPLS)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if m == nil || ip == nil {
		t.Fatalf("gopacket could not decode MPLS payload: %v", p)
	}
	if m.Label != 0xabcde || m.TrafficClass != 0 || !m.StackBottom || m.TTL != innerTTL {
		t.Errorf("mpls %+v", m)
	}
	if !ip.SrcIP.Equal(podIP) || !ip.DstIP.Equal(peerIP) || ip.TTL != innerTTL {
		t.Errorf("inner ipv4 %+v", ip)
	}
	if !bytes.Equal(m.Payload, inner[14:]) || !bytes.Equal(buf[testHeadroom+14:testHeadroom+len(inner)], inner[14:]) {
		t.Error("inner IPv4 packet changed or moved")
	}
}

func TestEncapVXLANGopacket(t *testing.T) {
	inner := innerFrame(t, 1000, 2000, 64)
	buf, off, n := encapped(t, VXLAN, 0xfedcba, inner)
	if off != testHeadroom-50 || n != len(inner)+50 {
		t.Fatalf("encap bounds %d+%d", off, n)
	}
	f := buf[off : off+n]
	p, _ := checkOuter(t, f, VXLAN, FlowEntropy(inner[14:]))
	vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	if vx == nil {
		t.Fatalf("gopacket found no VXLAN: %v", p)
	}
	if !vx.ValidIDFlag || vx.VNI != 0xfedcba || vx.GBPExtension || vx.GBPGroupPolicyID != 0 {
		t.Errorf("vxlan %+v", vx)
	}
	if !bytes.Equal(f[42:50], []byte{0x08, 0, 0, 0, 0xfe, 0xdc, 0xba, 0}) {
		t.Errorf("vxlan header bytes % x", f[42:50])
	}
	eths := p.Layers()
	if len(eths) < 5 || eths[4].LayerType() != layers.LayerTypeEthernet {
		t.Fatalf("no inner ethernet after VXLAN: %v", p)
	}
	if !bytes.Equal(vx.Payload, inner) || !bytes.Equal(buf[testHeadroom:testHeadroom+len(inner)], inner) {
		t.Error("inner frame changed or moved")
	}
}

func TestEncapOuterOptions(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	buf, off := inChunk(inner)
	o := &Outer{Src: nodeAIP, Dst: nodeBIP}
	off, n, err := Encap(buf, off, len(inner), VXLAN, 1, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := buf[off : off+n]
	if f[14+8] != 64 {
		t.Errorf("default TTL %d, want 64", f[22])
	}
	if binary.BigEndian.Uint16(f[20:22]) != 0 {
		t.Errorf("DF false but flags/offset %#04x", binary.BigEndian.Uint16(f[20:22]))
	}
	if binary.BigEndian.Uint16(f[34:36]) != 49152 {
		t.Errorf("entropy 0 gives port %d", binary.BigEndian.Uint16(f[34:36]))
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		for _, size := range []int{42, 64, 1500, testFrameSize - testHeadroom} {
			inner := innerFrame(t, 7, 9, size)
			buf, off, n := encapped(t, k, 100, inner)
			var d Decapped
			if err := Decap(buf, off, n, &d); err != nil {
				t.Fatalf("%v %d: decap: %v", k, size, err)
			}
			if d.Kind != k || d.Label != 100 || d.Src != nodeAIP || d.Dst != nodeBIP || d.SrcPort < 49152 {
				t.Errorf("%v %d: decapped %+v", k, size, d)
			}
			io, in := InnerEthernet(buf, &d, rtrMAC, podMAC)
			if !bytes.Equal(buf[io:io+in], inner) {
				t.Errorf("%v %d: inner frame differs after round trip", k, size)
			}
		}
	}
}

func TestEncapErrors(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	arp := append([]byte(nil), inner...)
	binary.BigEndian.PutUint16(arp[12:14], packet.EtherTypeARP)
	v6 := append([]byte(nil), inner...)
	v6[14] = 0x60
	cases := []struct {
		name   string
		frame  []byte
		off, n int
		kind   Kind
		label  uint32
		want   error
	}{
		{"mpls label 0", inner, 256, 64, MPLSoUDP, 0, ErrBadLabel},
		{"mpls label 15", inner, 256, 64, MPLSoUDP, 15, ErrBadLabel},
		{"mpls label 2^20", inner, 256, 64, MPLSoUDP, MaxLabel + 1, ErrBadLabel},
		{"vni 2^24", inner, 256, 64, VXLAN, MaxVNI + 1, ErrBadLabel},
		{"mpls headroom 31", inner, 31, 64, MPLSoUDP, 16, ErrHeadroom},
		{"vxlan headroom 49", inner, 49, 64, VXLAN, 0, ErrHeadroom},
		{"mpls arp frame", arp, 256, 64, MPLSoUDP, 16, ErrInnerNotIPv4},
		{"mpls ipv6 version", v6, 256, 64, MPLSoUDP, 16, ErrInnerNotIPv4},
		{"mpls short", inner, 256, 33, MPLSoUDP, 16, ErrTruncated},
		{"vxlan short", inner, 256, 13, VXLAN, 16, ErrTruncated},
		{"kind 0", inner, 256, 64, 0, 16, ErrBadKind},
		{"kind 3", inner, 256, 64, 3, 16, ErrBadKind},
		{"negative off", inner, -1, 64, VXLAN, 16, ErrBounds},
		{"past end", inner, 256, testFrameSize, VXLAN, 16, ErrBounds},
		{"too big", inner, 60, 65535 - 20, VXLAN, 16, ErrTooBig},
	}
	for _, c := range cases {
		buf := make([]byte, 70000)
		copy(buf[max(c.off, 0):], c.frame)
		orig := append([]byte(nil), buf...)
		if c.n == testFrameSize {
			buf, orig = buf[:testFrameSize], orig[:testFrameSize]
		}
		_, _, err := Encap(buf, c.off, c.n, c.kind, c.label, testOuter(), 0)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
		if !bytes.Equal(buf, orig) {
			t.Errorf("%s: buffer changed on error", c.name)
		}
	}
	if _, _, err := Encap(make([]byte, 512), 256, 64, VXLAN, 1, nil, 0); err == nil {
		t.Error("nil outer accepted")
	}
}

func TestEncapHeadroomExact(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		buf := make([]byte, Overhead(k)+len(inner))
		copy(buf[Overhead(k):], inner)
		off, n, err := Encap(buf, Overhead(k), len(inner), k, MinLabel, testOuter(), 1)
		if err != nil || off != 0 || n != len(buf) {
			t.Errorf("%v with exact headroom: %d+%d %v", k, off, n, err)
		}
	}
}
