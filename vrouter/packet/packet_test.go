package packet

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	podMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	rtrMAC = [6]byte{0x02, 0x78, 0x76, 0x72, 0, 1}
	podIP  = net.IP{198, 18, 10, 1}
	dstIP  = net.IP{198, 18, 10, 2}
	gwIP   = [4]byte{198, 18, 10, 254}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func icmpEcho(t testing.TB, ttl uint8, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: podMAC, DstMAC: rtrMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolICMPv4, SrcIP: podIP, DstIP: dstIP, Id: 7}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 2}
	return serialize(t, eth, ip, icmp, gopacket.Payload(payload))
}

func arpRequest(t testing.TB, target [4]byte) []byte {
	eth := &layers.Ethernet{SrcMAC: podMAC, DstMAC: Broadcast[:], EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: podMAC, SourceProtAddress: podIP,
		DstHwAddress: make([]byte, 6), DstProtAddress: target[:]}
	return serialize(t, eth, a)
}

func decode(t *testing.T, f []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decoding: %v", el.Error())
	}
	return p
}

func TestParseIPv4(t *testing.T) {
	f := icmpEcho(t, 64, []byte("hello"))
	var h IPv4
	if r := ParseIPv4(f[EthLen:], &h); r != IPv4OK {
		t.Fatalf("ParseIPv4 = %d", r)
	}
	if h.HeaderLen != 20 || h.TotalLen != 20+8+5 || h.Proto != ProtoICMP || h.TTL != 64 ||
		h.Src != [4]byte(podIP) || h.Dst != [4]byte(dstIP) {
		t.Fatalf("header = %+v", h)
	}
	cases := []struct {
		name string
		mod  func(b []byte) []byte
		want IPv4Error
	}{
		{"short", func(b []byte) []byte { return b[:19] }, IPv4Truncated},
		{"v6", func(b []byte) []byte { b[0] = 0x65; return b }, IPv4Version},
		{"ihl4", func(b []byte) []byte { b[0] = 0x44; return b }, IPv4BadIHL},
		{"ihl15", func(b []byte) []byte { b[0] = 0x4f; return b[:40] }, IPv4Truncated},
		{"total-long", func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 2000); return b }, IPv4BadLength},
		{"total-short", func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 10); return b }, IPv4BadLength},
		{"checksum", func(b []byte) []byte { b[10] ^= 0xff; return b }, IPv4Checksum},
	}
	for _, c := range cases {
		b := c.mod(append([]byte(nil), f[EthLen:]...))
		if got := ParseIPv4(b, &h); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

func TestDecTTLKeepsChecksumValid(t *testing.T) {
	for ttl := 2; ttl < 256; ttl++ {
		f := icmpEcho(t, uint8(ttl), nil)
		DecTTL(f[EthLen:])
		var h IPv4
		if r := ParseIPv4(f[EthLen:], &h); r != IPv4OK || h.TTL != uint8(ttl-1) {
			t.Fatalf("ttl %d: result %d ttl %d", ttl, r, h.TTL)
		}
	}
}

func TestUpdateChecksumMatchesFull(t *testing.T) {
	b := []byte{0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x01, 0x01, 0, 0, 198, 18, 10, 1, 198, 18, 10, 2}
	SetIPv4Checksum(b, 20)
	for v := 0; v < 0x10000; v += 257 {
		old := binary.BigEndian.Uint16(b[4:6])
		binary.BigEndian.PutUint16(b[4:6], uint16(v))
		inc := UpdateChecksum16(binary.BigEndian.Uint16(b[10:12]), old, uint16(v))
		binary.BigEndian.PutUint16(b[10:12], inc)
		if fold(sum(b, 0)) != 0xffff {
			t.Fatalf("incremental checksum wrong after id=%#x", v)
		}
	}
}

func TestARPReply(t *testing.T) {
	f := arpRequest(t, gwIP)
	var a ARP
	if !ParseARP(f[EthLen:], &a) || a.Op != ARPOpRequest || a.TPA != gwIP {
		t.Fatalf("ParseARP: %+v", a)
	}
	n := ARPReply(f, &a, rtrMAC)
	p := decode(t, f[:n])
	r := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if r.Operation != layers.ARPReply || net.HardwareAddr(r.SourceHwAddress).String() != net.HardwareAddr(rtrMAC[:]).String() ||
		[4]byte(r.SourceProtAddress) != gwIP || net.IP(r.DstProtAddress).String() != podIP.String() ||
		eth.DstMAC.String() != podMAC.String() {
		t.Fatalf("reply: %+v", r)
	}
	if ParseARP(f[EthLen:EthLen+27], &a) {
		t.Fatal("truncated ARP accepted")
	}
}

func TestEchoReply(t *testing.T) {
	f := icmpEcho(t, 64, []byte("payload!"))
	var h IPv4
	ParseIPv4(f[EthLen:], &h)
	if !IsEchoRequest(f[EthLen:], &h) {
		t.Fatal("not an echo request")
	}
	EchoReply(f, &h, rtrMAC)
	p := decode(t, f)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != dstIP.String() || ip.DstIP.String() != podIP.String() ||
		ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply {
		t.Fatalf("reply %v -> %v type %v", ip.SrcIP, ip.DstIP, ic.TypeCode)
	}
	if Checksum(f[EthLen+20:]) != 0 || Checksum(f[EthLen:EthLen+20]) != 0 {
		t.Fatal("checksums do not verify")
	}
}

func TestICMPTimeExceeded(t *testing.T) {
	orig := icmpEcho(t, 1, []byte("0123456789abcdef"))
	buf := make([]byte, 2048)
	copy(buf, orig)
	var h IPv4
	ParseIPv4(buf[EthLen:], &h)
	if !ErrorAllowed(buf[EthLen:], &h) {
		t.Fatal("error not allowed for an echo request")
	}
	n := ICMPError(buf, len(orig), &h, ICMPTimeExceeded, 0, 0, gwIP, rtrMAC)
	if n != EthLen+20+8+20+8 {
		t.Fatalf("length %d", n)
	}
	p := decode(t, buf[:n])
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if [4]byte(ip.SrcIP.To4()) != gwIP || ip.DstIP.String() != podIP.String() ||
		ic.TypeCode.Type() != layers.ICMPv4TypeTimeExceeded {
		t.Fatalf("got %v -> %v %v", ip.SrcIP, ip.DstIP, ic.TypeCode)
	}
	if string(ic.Payload) != string(orig[EthLen:EthLen+28]) {
		t.Fatal("quoted header and 8 bytes differ from the original")
	}
	if Checksum(buf[EthLen:EthLen+20]) != 0 || Checksum(buf[EthLen+20:n]) != 0 {
		t.Fatal("checksums do not verify")
	}
	if ICMPError(buf[:60], len(orig), &h, ICMPTimeExceeded, 0, 0, gwIP, rtrMAC) != 0 {
		t.Fatal("built past the buffer")
	}
}

func TestNoErrorForErrors(t *testing.T) {
	f := icmpEcho(t, 1, nil)
	var h IPv4
	ParseIPv4(f[EthLen:], &h)
	f[EthLen+20] = ICMPTimeExceeded
	if ErrorAllowed(f[EthLen:], &h) {
		t.Fatal("ICMP error about an ICMP error")
	}
}

func TestZeroAllocs(t *testing.T) {
	f := icmpEcho(t, 64, nil)
	var h IPv4
	if n := testing.AllocsPerRun(100, func() {
		ParseIPv4(f[EthLen:], &h)
		DecTTL(f[EthLen:])
		f[EthLen+8] = 64
		SetIPv4Checksum(f[EthLen:], 20)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzParseIPv4(f *testing.F) {
	f.Add(icmpEcho(f, 64, []byte("seed"))[EthLen:])
	f.Add([]byte{0x4f, 0, 0, 60})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h IPv4
		if ParseIPv4(b, &h) != IPv4OK {
			return
		}
		if h.HeaderLen < 20 || h.TotalLen < h.HeaderLen || h.TotalLen > len(b) {
			t.Fatalf("accepted inconsistent header %+v for %d bytes", h, len(b))
		}
		buf := make([]byte, EthLen+len(b)+128)
		copy(buf[EthLen:], b)
		if ErrorAllowed(buf[EthLen:], &h) {
			ICMPError(buf, EthLen+len(b), &h, ICMPTimeExceeded, 0, 0, gwIP, rtrMAC)
		}
		if IsEchoRequest(buf[EthLen:], &h) {
			EchoReply(buf, &h, rtrMAC)
		}
		if h.TTL > 1 {
			DecTTL(buf[EthLen:])
		}
	})
}

func FuzzParseARP(f *testing.F) {
	f.Add(arpRequest(f, gwIP)[EthLen:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var a ARP
		if !ParseARP(b, &a) {
			return
		}
		if len(b) < ARPLen {
			t.Fatal("accepted a short ARP")
		}
		frame := make([]byte, EthLen+len(b))
		copy(frame[EthLen:], b)
		ARPReply(frame, &a, rtrMAC)
	})
}
