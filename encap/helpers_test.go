package encap

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/vrouter/packet"
)

// Test addresses, all from 198.18.0.0/15.
var (
	podMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	rtrMAC  = [6]byte{0x02, 0x78, 0x76, 0x72, 0, 1}
	nodeA   = [6]byte{0x02, 0xaa, 0, 0, 0, 1}
	nodeB   = [6]byte{0x02, 0xbb, 0, 0, 0, 2}
	podIP   = net.IP{198, 18, 10, 1}
	peerIP  = net.IP{198, 18, 20, 2}
	nodeAIP = [4]byte{198, 19, 0, 1}
	nodeBIP = [4]byte{198, 19, 0, 2}
)

const (
	testFrameSize = 2048
	testHeadroom  = 256
	innerTTL      = 63
)

func testOuter() *Outer {
	return &Outer{SrcMAC: nodeA, DstMAC: nodeB, Src: nodeAIP, Dst: nodeBIP, TTL: 32, DF: true}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// innerFrame is a pod's UDP frame to the router, n bytes long (n >= 42).
func innerFrame(t testing.TB, sport, dport uint16, n int) []byte {
	eth := &layers.Ethernet{SrcMAC: podMAC[:], DstMAC: rtrMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: innerTTL, Id: 99, Protocol: layers.IPProtocolUDP, SrcIP: podIP, DstIP: peerIP}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	pay := make([]byte, n-42)
	for i := range pay {
		pay[i] = byte(i)
	}
	return serialize(t, eth, ip, udp, gopacket.Payload(pay))
}

// inChunk copies frame into a fresh chunk at testHeadroom.
func inChunk(frame []byte) (buf []byte, off int) {
	buf = make([]byte, testFrameSize)
	copy(buf[testHeadroom:], frame)
	return buf, testHeadroom
}

// encapped returns a chunk holding inner encapsulated as k, and its bounds.
func encapped(t testing.TB, k Kind, label uint32, inner []byte) (buf []byte, off, n int) {
	t.Helper()
	buf, off = inChunk(inner)
	off, n, err := Encap(buf, off, len(inner), k, label, testOuter(), FlowEntropy(inner[packet.EthLen:]))
	if err != nil {
		t.Fatalf("encap %v: %v", k, err)
	}
	return buf, off, n
}

// gopacketOuter builds an overlay frame with gopacket: outer UDP checksum
// computed, outer IPv4 options when opts is set.
func gopacketOuter(t testing.TB, k Kind, label uint32, inner []byte, opts bool) []byte {
	eth := &layers.Ethernet{SrcMAC: nodeA[:], DstMAC: nodeB[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
		SrcIP: nodeAIP[:], DstIP: nodeBIP[:]}
	if opts {
		ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	udp := &layers.UDP{SrcPort: 50000, DstPort: layers.UDPPort(Port(k))}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	if k == MPLSoUDP {
		m := &layers.MPLS{Label: label, StackBottom: true, TTL: innerTTL}
		return serialize(t, eth, ip, udp, m, gopacket.Payload(inner[packet.EthLen:]))
	}
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: label}
	return serialize(t, eth, ip, udp, vx, gopacket.Payload(inner))
}

// outerIHL returns the outer IPv4 header length of frame f.
func outerIHL(f []byte) int { return int(f[14]&0x0f) * 4 }

// udpAt returns the offset of the outer UDP header in f.
func udpAt(f []byte) int { return packet.EthLen + outerIHL(f) }

// fixIPSum recomputes the outer IPv4 header checksum of f.
func fixIPSum(f []byte) { packet.SetIPv4Checksum(f[packet.EthLen:], outerIHL(f)) }

// setUDPPayload cuts f's UDP payload to m bytes, fixing the UDP and IPv4
// lengths and the IPv4 checksum (the UDP checksum is zeroed).
func setUDPPayload(f []byte, m int) []byte {
	u := udpAt(f)
	f = f[:u+8+m]
	binary.BigEndian.PutUint16(f[16:18], uint16(len(f)-packet.EthLen))
	binary.BigEndian.PutUint16(f[u+4:u+6], uint16(8+m))
	f[u+6], f[u+7] = 0, 0
	fixIPSum(f)
	return f
}
