package encap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/xvr-project/xvr/vrouter/packet"
)

func TestDecapGopacketFrames(t *testing.T) {
	inner := innerFrame(t, 1000, 2000, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		for _, opts := range []bool{false, true} {
			for _, zeroSum := range []bool{false, true} {
				f := gopacketOuter(t, k, 4242, inner, opts)
				u := udpAt(f)
				if binary.BigEndian.Uint16(f[u+6:u+8]) == 0 {
					t.Fatal("gopacket left the UDP checksum zero")
				}
				if zeroSum {
					f[u+6], f[u+7] = 0, 0
				}
				checkDecap(t, k, f, inner)
			}
		}
	}
}

func checkDecap(t *testing.T, k Kind, f, inner []byte) {
	t.Helper()
	buf, off := inChunk(f)
	var d Decapped
	if err := Decap(buf, off, len(f), &d); err != nil {
		t.Fatalf("%v: %v", k, err)
	}
	want := Decapped{Kind: k, Label: 4242, Src: nodeAIP, Dst: nodeBIP, SrcPort: 50000,
		InnerOff: off + udpAt(f) + 8 + 4, InnerLen: len(inner) - 14}
	if k == VXLAN {
		want.InnerOff, want.InnerLen, want.InnerIsEthernet = off+udpAt(f)+16, len(inner), true
	}
	if d != want {
		t.Fatalf("%v: decapped\n%+v, want\n%+v", k, d, want)
	}
	io, n := InnerEthernet(buf, &d, rtrMAC, podMAC)
	if !bytes.Equal(buf[io:io+n], inner) {
		t.Errorf("%v: inner frame\n% x, want\n% x", k, buf[io:io+n], inner)
	}
}

func TestDecapEthernetPadding(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		buf, off, n := encapped(t, k, 77, inner)
		var d Decapped
		if err := Decap(buf, off, n+10, &d); err != nil {
			t.Fatalf("%v padded: %v", k, err)
		}
		if d.InnerOff+d.InnerLen != off+n {
			t.Errorf("%v: inner ends at %d, packet at %d", k, d.InnerOff+d.InnerLen, off+n)
		}
	}
}

func TestDecapTruncatedEverywhere(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		buf, off, n := encapped(t, k, 77, inner)
		for cut := range n {
			var d Decapped
			if err := Decap(buf, off, cut, &d); !errors.Is(err, ErrTruncated) {
				t.Errorf("%v cut at %d: %v, want truncated", k, cut, err)
			}
		}
	}
}

// TestDecapShortPayload cuts the UDP payload with consistent lengths, at and
// inside every header boundary after UDP.
func TestDecapShortPayload(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		minOK := 4 + 20
		if k == VXLAN {
			minOK = 8 + 14
		}
		for m := 0; m <= minOK; m++ {
			buf, off, n := encapped(t, k, 77, inner)
			f := setUDPPayload(buf[off:off+n], m)
			var d Decapped
			err := Decap(buf, off, len(f), &d)
			if m < minOK && !errors.Is(err, ErrTruncated) {
				t.Errorf("%v payload %d: %v, want truncated", k, m, err)
			}
			if m == minOK && err != nil {
				t.Errorf("%v payload %d (minimum): %v", k, m, err)
			}
		}
	}
}

func TestDecapErrors(t *testing.T) {
	type mut func(f []byte)
	setU16 := func(at int, v uint16, fix bool) mut {
		return func(f []byte) {
			binary.BigEndian.PutUint16(f[at:at+2], v)
			if fix {
				fixIPSum(f)
			}
		}
	}
	cases := []struct {
		name string
		kind Kind // 0: both
		m    mut
		want error
	}{
		{"ethertype ipv6", 0, setU16(12, packet.EtherTypeIPv6, false), ErrNotOverlay},
		{"ethertype arp", 0, setU16(12, packet.EtherTypeARP, false), ErrNotOverlay},
		{"ip proto tcp", 0, func(f []byte) { f[23] = packet.ProtoTCP; fixIPSum(f) }, ErrNotOverlay},
		{"dst port 53", 0, setU16(36, 53, false), ErrNotOverlay},
		{"dst port 4790", 0, setU16(36, 4790, false), ErrNotOverlay},
		{"dst port 6636", 0, setU16(36, 6636, false), ErrNotOverlay},
		{"ip version 6", 0, func(f []byte) { f[14] = 0x65; fixIPSum(f) }, ErrOuterIPv4},
		{"ip ihl 4", 0, func(f []byte) { f[14] = 0x44; packet.SetIPv4Checksum(f[14:], 20) }, ErrOuterIPv4},
		{"ip total below ihl", 0, setU16(16, 19, true), ErrOuterIPv4},
		{"ip checksum", 0, func(f []byte) { f[24] ^= 0x10 }, ErrOuterChecksum},
		{"ip checksum on ttl change", 0, func(f []byte) { f[22]-- }, ErrOuterChecksum},
		{"fragment MF", 0, setU16(20, 0x2000, true), ErrOuterFragment},
		{"fragment offset", 0, setU16(20, 0x0001, true), ErrOuterFragment},
		{"fragment offset with DF", 0, setU16(20, 0x4100, true), ErrOuterFragment},
		{"udp length 7", 0, setU16(38, 7, false), ErrUDPLength},
		{"udp length beyond ip", 0, func(f []byte) { binary.BigEndian.PutUint16(f[38:40], uint16(len(f)-34+1)) }, ErrUDPLength},
		{"udp checksum wrong", 0, setU16(40, 0x1234, false), ErrUDPChecksum},
		{"vxlan no I flag", VXLAN, func(f []byte) { f[42] = 0 }, ErrBadVXLAN},
		{"vxlan G flag only", VXLAN, func(f []byte) { f[42] = 0x80 }, ErrBadVXLAN},
		{"mpls S=0", MPLSoUDP, func(f []byte) { f[44] &^= 1 }, ErrBadMPLS},
		{"mpls inner ipv6", MPLSoUDP, func(f []byte) { f[46] = 0x60 }, ErrInnerNotIPv4},
		{"mpls inner garbage", MPLSoUDP, func(f []byte) { f[46] = 0x00 }, ErrInnerNotIPv4},
	}
	for label := range uint32(MinLabel) {
		cases = append(cases, struct {
			name string
			kind Kind
			m    mut
			want error
		}{"mpls reserved label", MPLSoUDP, func(f []byte) {
			binary.BigEndian.PutUint32(f[42:46], label<<12|0x100|64)
		}, ErrBadMPLS})
	}
	inner := innerFrame(t, 1, 2, 64)
	for _, c := range cases {
		for _, k := range []Kind{MPLSoUDP, VXLAN} {
			if c.kind != 0 && c.kind != k {
				continue
			}
			buf, off, n := encapped(t, k, 77, inner)
			c.m(buf[off : off+n])
			var d Decapped
			if err := Decap(buf, off, n, &d); !errors.Is(err, c.want) {
				t.Errorf("%v %s: %v, want %v", k, c.name, err, c.want)
			}
		}
	}
}

func TestDecapTolerated(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	cases := []struct {
		name string
		kind Kind
		m    func(f []byte)
	}{
		{"vxlan reserved bits and G flag", VXLAN, func(f []byte) { f[42], f[43], f[44], f[45], f[49] = 0xff, 0xff, 1, 2, 0xff }},
		{"mpls lowest label", MPLSoUDP, func(f []byte) { binary.BigEndian.PutUint32(f[42:46], 16<<12|0x100|1) }},
		{"mpls tc and ttl 0", MPLSoUDP, func(f []byte) { f[44] |= 0x0e; f[45] = 0 }},
		{"no DF", 0, func(f []byte) { f[20] = 0; fixIPSum(f) }},
		{"udp source port 4789", 0, func(f []byte) { binary.BigEndian.PutUint16(f[34:36], 4789) }},
	}
	for _, c := range cases {
		for _, k := range []Kind{MPLSoUDP, VXLAN} {
			if c.kind != 0 && c.kind != k {
				continue
			}
			buf, off, n := encapped(t, k, 77, inner)
			c.m(buf[off : off+n])
			var d Decapped
			if err := Decap(buf, off, n, &d); err != nil || d.Kind != k {
				t.Errorf("%v %s: %v %v", k, c.name, err, d.Kind)
			}
		}
	}
}

func TestDecapUDPChecksumVerified(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		f := gopacketOuter(t, k, 4242, inner, false)
		f[len(f)-1] ^= 0x01 // a payload bit flips; the UDP checksum catches it
		buf, off := inChunk(f)
		var d Decapped
		if err := Decap(buf, off, len(f), &d); !errors.Is(err, ErrUDPChecksum) {
			t.Errorf("%v: %v, want udp checksum error", k, err)
		}
	}
}

func TestDecapBounds(t *testing.T) {
	buf := make([]byte, 100)
	var d Decapped
	for _, b := range [][2]int{{-1, 10}, {0, -1}, {0, 101}, {101, 0}, {50, 51}} {
		if err := Decap(buf, b[0], b[1], &d); !errors.Is(err, ErrBounds) {
			t.Errorf("bounds %v: %v", b, err)
		}
	}
}

func TestInnerEthernetBadDecapped(t *testing.T) {
	buf := make([]byte, 100)
	orig := append([]byte(nil), buf...)
	for _, d := range []Decapped{
		{InnerOff: 10, InnerLen: 20},                        // no room for an Ethernet header
		{InnerOff: 90, InnerLen: 20},                        // past the end
		{InnerOff: 20, InnerLen: 10, InnerIsEthernet: true}, // shorter than Ethernet
		{InnerOff: -5, InnerLen: 20, InnerIsEthernet: true},
	} {
		if off, n := InnerEthernet(buf, &d, rtrMAC, podMAC); n != 0 || off != 0 {
			t.Errorf("%+v: got %d+%d", d, off, n)
		}
	}
	if !bytes.Equal(buf, orig) {
		t.Error("buffer written")
	}
}
