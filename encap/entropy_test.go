package encap

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/xvr-project/xvr/vrouter/packet"
)

func TestFlowEntropyStable(t *testing.T) {
	a := innerFrame(t, 1111, 80, 64)[14:]
	b := innerFrame(t, 1111, 80, 200)[14:] // same 5-tuple, other size
	b[4], b[8] = 0x55, 3                   // other ID and TTL
	packet.SetIPv4Checksum(b, 20)
	if FlowEntropy(a) != FlowEntropy(b) {
		t.Error("one flow, two entropies")
	}
	c := innerFrame(t, 1112, 80, 64)[14:]
	d := innerFrame(t, 1111, 81, 64)[14:]
	if FlowEntropy(a) == FlowEntropy(c) && FlowEntropy(a) == FlowEntropy(d) {
		t.Error("ports do not change the entropy")
	}
}

func TestFlowEntropyFragments(t *testing.T) {
	whole := innerFrame(t, 1111, 80, 64)[14:]
	first := append([]byte(nil), whole...)
	binary.BigEndian.PutUint16(first[6:8], 0x2000) // MF
	later := append([]byte(nil), whole...)
	binary.BigEndian.PutUint16(later[6:8], 0x0010) // offset 128
	copy(later[20:24], []byte{0xde, 0xad, 0xbe, 0xef})
	if FlowEntropy(first) != FlowEntropy(later) {
		t.Error("fragments of one datagram hash apart")
	}
	otherPorts := innerFrame(t, 2222, 443, 64)[14:]
	binary.BigEndian.PutUint16(otherPorts[6:8], 0x2000)
	if FlowEntropy(otherPorts) != FlowEntropy(first) {
		t.Error("fragment hash depends on ports")
	}
	icmp := append([]byte(nil), whole...)
	icmp[9] = packet.ProtoICMP
	icmp2 := append([]byte(nil), icmp...)
	copy(icmp2[20:24], []byte{8, 0, 1, 2})
	if FlowEntropy(icmp) != FlowEntropy(icmp2) {
		t.Error("ICMP hash depends on payload")
	}
}

func TestFlowEntropyNotIPv4(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 19), append([]byte{0x60}, make([]byte, 39)...)} {
		if FlowEntropy(b) != 0 {
			t.Errorf("entropy of % x not 0", b)
		}
	}
	short := innerFrame(t, 1, 2, 64)[14:34] // UDP, but no room for ports
	_ = FlowEntropy(short)
}

// TestFlowEntropySpread hashes 16384 flows differing in one field and checks
// that the source ports Encap makes of them fill 64 buckets evenly and
// collide about as often as random ports would.
func TestFlowEntropySpread(t *testing.T) {
	const flows, buckets = 16384, 64
	ip := innerFrame(t, 0, 53, 64)[14:]
	srcPort := srcPorter(t)
	vary := map[string]func(i int){
		"source port": func(i int) { binary.BigEndian.PutUint16(ip[20:22], uint16(i)) },
		"source ip":   func(i int) { binary.BigEndian.PutUint16(ip[14:16], uint16(i)) },
		"dest ip":     func(i int) { binary.BigEndian.PutUint32(ip[16:20], 0xc6120000|uint32(i)) },
	}
	for name, set := range vary {
		var hist [buckets]int
		seen := make(map[uint16]bool)
		for i := range flows {
			set(i)
			port := srcPort(FlowEntropy(ip))
			if port < 49152 {
				t.Fatalf("port %d below 49152", port)
			}
			hist[int(port-49152)*buckets/16384]++
			seen[port] = true
		}
		t.Logf("%s: %d distinct ports, buckets %d..%d", name, len(seen), slices.Min(hist[:]), slices.Max(hist[:]))
		mean := flows / buckets
		for b, c := range hist {
			if c < mean*3/4 || c > mean*5/4 {
				t.Errorf("%s: bucket %d holds %d flows, mean %d", name, b, c, mean)
			}
		}
		// Random ports: 16384 × (1 − 1/e) ≈ 10356 distinct.
		if len(seen) < 9800 {
			t.Errorf("%s: %d distinct ports of %d flows", name, len(seen), flows)
		}
	}
}

// srcPorter returns a function giving the UDP source port Encap writes for
// an entropy.
func srcPorter(t *testing.T) func(e uint16) uint16 {
	inner := innerFrame(t, 1, 2, 64)
	buf, off := inChunk(inner)
	return func(e uint16) uint16 {
		o, _, err := Encap(buf, off, len(inner), VXLAN, 1, testOuter(), e)
		if err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint16(buf[o+34 : o+36])
	}
}
