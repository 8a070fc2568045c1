package dataplane

import (
	"encoding/binary"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/afxdp"
	"github.com/xvr-project/xvr/vrouter/packet"
)

// TestOverlayEveryEtherType: behind each of the 65536 inner EtherTypes sits a
// valid IPv4 packet to a local pod (addressed to the vRouter MAC) or a valid
// ARP request for it; only 0x0800 is delivered and only 0x0806 answered.
func TestOverlayEveryEtherType(t *testing.T) {
	s := overlaySnapshot(t, encap.VXLAN)
	ip := innerTo(t, rtrMAC, vtepMAC, packet.EtherTypeIPv4)
	arp := vtepARP(t, layers.ARPRequest, rtrMAC, ipB)
	p := Pipeline{FrameSize: frameSize}
	v := make([]Verdict, 1)
	for et := range 1 << 16 {
		for _, inner := range [][]byte{ip, arp} {
			binary.BigEndian.PutUint16(inner[12:14], uint16(et))
			mem, d := fromFabric(t, encap.VXLAN, inner)
			p.Process(s, mem, d, 0, v)
			switch {
			case et == packet.EtherTypeIPv4 && len(inner) == len(ip):
				if v[0] != (Verdict{Vif: 2}) {
					t.Fatalf("IPv4: %+v", v[0])
				}
			case et == packet.EtherTypeARP && len(inner) == len(arp):
				if v[0] != (Verdict{Vif: 0}) {
					t.Fatalf("ARP: %+v", v[0])
				}
			case et == packet.EtherTypeIPv4:
				if v[0].Reason != OverlayInvalidIPHeader {
					t.Fatalf("ARP behind 0x0800: %+v", v[0])
				}
			case et == packet.EtherTypeARP:
				if v[0].Reason != OverlayInvalidARP {
					t.Fatalf("IPv4 behind 0x0806: %+v", v[0])
				}
			case v[0].Reason != OverlayUnknownEtherType:
				t.Fatalf("EtherType %#04x: %+v", et, v[0])
			}
		}
	}
}

// FuzzOverlayInner feeds inner frames of every EtherType and content,
// encapsulated as a remote node or VTEP would, through the fabric side of
// the pipeline: it must never panic or write outside the frame's chunk;
// a frame delivered to a pod must be IPv4 (EtherType and header) to the
// pod's MAC, and one sent back to the fabric must be the VXLAN ARP reply
// to an inner ARP request.
func FuzzOverlayInner(f *testing.F) {
	ip := udpFrame(f, ipRemote, ipB, 63, 100)
	for _, et := range []uint16{packet.EtherTypeIPv4, packet.EtherTypeARP, packet.EtherTypeIPv6,
		packet.EtherTypeVLAN, 0x88b5, 0x88a8, 0x8847, 0x0000, 0x05dc, 0xffff} {
		f.Add(uint8(1), uint8(0), et, ip[14:])
		f.Add(uint8(1), uint8(1), et, vtepARP(f, layers.ARPRequest, packet.Broadcast, ipB)[14:])
	}
	f.Add(uint8(0), uint8(0), uint16(packet.EtherTypeIPv4), ip[14:])
	f.Add(uint8(1), uint8(3), uint16(packet.EtherTypeIPv4), []byte{0x45})
	s := overlaySnapshot(f, encap.VXLAN)
	f.Fuzz(func(t *testing.T, kind, dstSel uint8, et uint16, payload []byte) {
		if len(payload) > 1500 {
			payload = payload[:1500]
		}
		k := encap.VXLAN
		if kind%2 == 0 {
			k, et = encap.MPLSoUDP, packet.EtherTypeIPv4
		}
		dst := [...][6]byte{rtrMAC, packet.Broadcast, macC, vtepMAC}[dstSel%4]
		inner := make([]byte, packet.EthLen+len(payload))
		packet.SetMACs(inner, dst, vtepMAC)
		binary.BigEndian.PutUint16(inner[12:14], et)
		copy(inner[packet.EthLen:], payload)
		mem := make([]byte, 3*frameSize)
		for i := range mem {
			mem[i] = 0xa5
		}
		addr := frameSize + 256
		copy(mem[addr:], inner)
		o := encap.Outer{SrcMAC: remoteMAC, DstMAC: fabricMAC, Src: remoteIP, Dst: nodeIP}
		label := uint32(77)
		if k == encap.MPLSoUDP {
			label = LabelBase + 1
		}
		off, n, err := encap.Encap(mem[frameSize:2*frameSize], 256, len(inner), k, label, &o, 7)
		if err != nil {
			return // MPLSoUDP takes IPv4 only
		}
		d := []afxdp.Desc{{Addr: uint64(frameSize + off), Len: uint32(n)}}
		v := make([]Verdict, 1)
		p := Pipeline{FrameSize: frameSize}
		p.Process(s, mem, d, 0, v)
		for i := 0; i < frameSize; i++ {
			if mem[i] != 0xa5 || mem[2*frameSize+i] != 0xa5 {
				t.Fatalf("pipeline wrote outside the frame's chunk at %d", i)
			}
		}
		if v[0].Reason >= NumReasons {
			t.Fatalf("unknown reason %d", v[0].Reason)
		}
		if v[0].Reason != Forward {
			return
		}
		if d[0].Addr < frameSize || d[0].Addr+uint64(d[0].Len) > 2*frameSize {
			t.Fatalf("transmit descriptor %+v outside its chunk", d[0])
		}
		out := frameAt(mem, d[0])
		switch vif := s.vif(v[0].Vif); {
		case vif == nil:
			t.Fatalf("transmit to missing vif %d", v[0].Vif)
		case v[0].Vif == s.Fabric.Vif:
			var dec encap.Decapped
			if k != encap.VXLAN || et != packet.EtherTypeARP || encap.Decap(mem, int(d[0].Addr), int(d[0].Len), &dec) != nil ||
				packet.EtherType(mem[dec.InnerOff:]) != packet.EtherTypeARP || dec.Dst != remoteIP || dec.Label != 77 {
				t.Fatalf("sent back to the fabric: ethertype %#04x kind %v, % x", et, k, out)
			}
		default:
			var h packet.IPv4
			if (k == encap.VXLAN && et != packet.EtherTypeIPv4) || packet.EtherType(out) != packet.EtherTypeIPv4 ||
				packet.DstMAC(out) != vif.MAC || packet.ParseIPv4(out[packet.EthLen:], &h) != packet.IPv4OK {
				t.Fatalf("delivered to vif %d: ethertype %#04x kind %v, % x", v[0].Vif, et, k, out)
			}
		}
	})
}
