package gen_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/bench/gen"
)

// reference builds the same frame with gopacket, an independent encoder.
func reference(t *testing.T, size int, src, dst netip.AddrPort) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment,
		Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	payload := gopacket.Payload(make([]byte, size-gen.MinUDPFrameLen))
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFrameUDPMatchesGopacket(t *testing.T) {
	src := netip.AddrPortFrom(srcIP, 49152)
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(dstIP, 9), netip.MustParseAddrPort("198.19.255.254:65535")} {
		for _, size := range []int{gen.MinUDPFrameLen, 60, 64, 65, 128, 1024, gen.MaxFrameLen} {
			got, err := gen.FrameUDP(size, srcMAC, dstMAC, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			// gopacket pads Ethernet to 60 bytes; compare what we asked for.
			if want := reference(t, size, src, dst)[:size]; !bytes.Equal(got, want) {
				t.Fatalf("size %d to %v:\n got %x\nwant %x", size, dst, got, want)
			}
		}
	}
	if f := gen.Frame64(srcMAC, dstMAC, srcIP, dstIP); len(f) != 64 {
		t.Fatalf("Frame64 length %d", len(f))
	}
}

func TestFrameUDPRejects(t *testing.T) {
	a := netip.AddrPortFrom(srcIP, 1)
	v6 := netip.MustParseAddrPort("[2001:db8::1]:1")
	for _, c := range []struct {
		size     int
		mac      net.HardwareAddr
		src, dst netip.AddrPort
	}{
		{gen.MinUDPFrameLen - 1, srcMAC, a, a},
		{gen.MaxFrameLen + 1, srcMAC, a, a},
		{64, srcMAC[:5], a, a},
		{64, srcMAC, v6, a},
		{64, srcMAC, a, netip.AddrPort{}},
	} {
		if f, err := gen.FrameUDP(c.size, c.mac, dstMAC, c.src, c.dst); err == nil {
			t.Errorf("FrameUDP(%d, %v, %v, %v) = %x, want error", c.size, c.mac, c.src, c.dst, f)
		}
	}
	if f := gen.Frame64(srcMAC, dstMAC, netip.MustParseAddr("2001:db8::1"), dstIP); f != nil {
		t.Errorf("Frame64 with IPv6 = %x, want nil", f)
	}
}
