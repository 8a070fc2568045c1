package encap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xvr-project/xvr/vrouter/packet"
)

const guard = 32

// guarded returns frame at offset guard inside a buffer whose guard bytes
// before and after it are fill.
func guarded(frame []byte, fill byte) []byte {
	buf := bytes.Repeat([]byte{fill}, len(frame)+2*guard)
	copy(buf[guard:], frame)
	return buf
}

func FuzzDecap(f *testing.F) {
	inner := innerFrame(f, 1000, 2000, 64)
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		buf, off, n := encapped(f, k, 4242, inner)
		f.Add(append([]byte(nil), buf[off:off+n]...))
		f.Add(gopacketOuter(f, k, 4242, inner, true))
		f.Add(gopacketOuter(f, k, 16, inner, false))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		a, b := guarded(frame, 0x00), guarded(frame, 0xff)
		origA := append([]byte(nil), a...)
		var da, db Decapped
		errA := Decap(a, guard, len(frame), &da)
		errB := Decap(b, guard, len(frame), &db)
		if errA != errB || (errA == nil && da != db) {
			t.Fatalf("result depends on bytes outside the frame: %v %+v / %v %+v", errA, da, errB, db)
		}
		if !bytes.Equal(a, origA) {
			t.Fatal("Decap wrote to the buffer")
		}
		if errA != nil {
			if _, ok := errA.(Error); !ok {
				t.Fatalf("error %v is not an Error", errA)
			}
			return
		}
		checkDecapped(t, a, len(frame), &da)
	})
}

// checkDecapped checks that a successful Decap's inner bounds lie in the
// frame at guard, and that InnerEthernet writes only inside it.
func checkDecapped(t *testing.T, a []byte, n int, d *Decapped) {
	minInner := packet.IPv4Min
	if d.InnerIsEthernet {
		minInner = packet.EthLen
	}
	if d.InnerOff < guard || d.InnerLen < minInner || d.InnerOff+d.InnerLen > guard+n {
		t.Fatalf("inner %d+%d outside frame %d+%d", d.InnerOff, d.InnerLen, guard, n)
	}
	if d.InnerIsEthernet != (d.Kind == VXLAN) || !labelOK(d.Kind, d.Label) {
		t.Fatalf("decapped %+v", d)
	}
	off, m := InnerEthernet(a, d, rtrMAC, podMAC)
	if off < guard || m < packet.EthLen || off+m > guard+n {
		t.Fatalf("InnerEthernet %d+%d outside frame %d+%d", off, m, guard, n)
	}
	if !bytes.Equal(a[:guard], make([]byte, guard)) || !bytes.Equal(a[guard+n:], make([]byte, guard)) {
		t.Fatal("InnerEthernet wrote outside the frame")
	}
}

func FuzzEncapDecap(f *testing.F) {
	ip := innerFrame(f, 1000, 2000, 64)[14:]
	f.Add(ip, uint32(16), false, uint16(0), uint8(64), true)
	f.Add(ip, uint32(MaxVNI), true, uint16(0xffff), uint8(0), false)
	f.Add(ip, uint32(15), false, uint16(1), uint8(1), true)
	f.Add([]byte{0x45}, uint32(MaxLabel+1), false, uint16(2), uint8(1), true)
	f.Fuzz(func(t *testing.T, ipb []byte, label uint32, vxlan bool, entropy uint16, ttl uint8, df bool) {
		k := MPLSoUDP
		if vxlan {
			k = VXLAN
		}
		frame := fuzzInner(ipb)
		buf := guarded(append(make([]byte, Overhead(k)), frame...), 0xa5)
		o := &Outer{SrcMAC: nodeA, DstMAC: nodeB, Src: nodeAIP, Dst: nodeBIP, TTL: ttl, DF: df}
		off, n, err := Encap(buf, guard+Overhead(k), len(frame), k, label, o, entropy)
		if !labelOK(k, label) {
			if err != ErrBadLabel {
				t.Fatalf("%v label %d: %v, want ErrBadLabel", k, label, err)
			}
			return
		}
		if err != nil || off != guard || n != len(frame)+Overhead(k) {
			t.Fatalf("%v encap: %d+%d %v", k, off, n, err)
		}
		checkRoundTrip(t, buf, off, n, k, label, frame, entropy)
	})
}

// fuzzInner makes an Ethernet frame carrying ipb, patched into an IPv4
// packet of at least 20 bytes by its version nibble.
func fuzzInner(ipb []byte) []byte {
	frame := make([]byte, packet.EthLen+max(len(ipb), packet.IPv4Min))
	copy(frame, rtrMAC[:])
	copy(frame[6:], podMAC[:])
	binary.BigEndian.PutUint16(frame[12:14], packet.EtherTypeIPv4)
	copy(frame[packet.EthLen:], ipb)
	frame[packet.EthLen] = 0x40 | frame[packet.EthLen]&0x0f
	return frame
}

func labelOK(k Kind, label uint32) bool {
	if k == MPLSoUDP {
		return label >= MinLabel && label <= MaxLabel
	}
	return label <= MaxVNI
}

func checkRoundTrip(t *testing.T, buf []byte, off, n int, k Kind, label uint32, frame []byte, entropy uint16) {
	if !bytes.Equal(buf[:guard], bytes.Repeat([]byte{0xa5}, guard)) || !bytes.Equal(buf[off+n:], bytes.Repeat([]byte{0xa5}, guard)) {
		t.Fatal("Encap wrote outside headroom and frame")
	}
	var d Decapped
	if err := Decap(buf, off, n, &d); err != nil {
		t.Fatalf("%v decap of own frame: %v", k, err)
	}
	if d.Kind != k || d.Label != label || d.Src != nodeAIP || d.Dst != nodeBIP || d.SrcPort != 0xc000|entropy&0x3fff {
		t.Fatalf("decapped %+v", d)
	}
	want := frame
	if k == MPLSoUDP {
		want = frame[packet.EthLen:]
	}
	if !bytes.Equal(buf[d.InnerOff:d.InnerOff+d.InnerLen], want) {
		t.Fatal("inner bytes changed")
	}
	io, in := InnerEthernet(buf, &d, rtrMAC, podMAC)
	if !bytes.Equal(buf[io:io+in], frame) {
		t.Fatal("InnerEthernet frame differs from the original")
	}
}
