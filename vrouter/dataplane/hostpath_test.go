package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvr-project/xvr/flowtable"
	"github.com/xvr-project/xvr/vrouter/packet"
)

var (
	macHost   = [6]byte{0x02, 0, 0, 0, 0, 0x40}
	ipHost    = [4]byte{198, 18, 10, 252}
	clusterIP = [4]byte{198, 18, 96, 10}
)

// hostSnapshot is testSnapshot with the host interface as vif 4 (next hop
// 5) on VRF 1, its 0.0.0.0/0, and a flow table.
func hostSnapshot(t testing.TB) *Snapshot {
	s := testSnapshot(t)
	s.Vifs = append(s.Vifs, Vif{Valid: true, VRF: 1, MAC: macHost, IP: ipHost})
	s.NextHops = append(s.NextHops, NextHop{Type: NHEncap, Vif: 4, DstMAC: macHost})
	for _, p := range []string{"0.0.0.0/0", "198.18.10.252/32"} {
		if err := s.VRFs[1].Table.Insert(netip.MustParsePrefix(p), 5); err != nil {
			t.Fatal(err)
		}
	}
	s.Host = Host{Valid: true, Vif: 4, NH: 5, VRF: 1, IP: ipHost}
	flows, err := flowtable.New(flowtable.Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	s.Flows = flows
	return s
}

func TestHostPath(t *testing.T) {
	s := hostSnapshot(t)
	// A pod's packet to a Service goes to the kernel.
	mem, d, v := processWith(s, 1, tcpFrame(t, ipA, clusterIP, 40000, 80))
	if v[0] != (Verdict{Vif: 4}) || [6]byte(frameAt(mem, d[0])[0:6]) != macHost {
		t.Fatalf("pod -> ClusterIP: %+v", v[0])
	}
	if s.Flows.Len() != 0 {
		t.Fatalf("%d flows after a pod's packet to the kernel", s.Flows.Len())
	}
	// The kernel sends it back DNATed to pod B, with A's source: delivered,
	// and B's reply goes back to the kernel, not to A.
	if _, _, v := processWith(s, 4, tcpFrame(t, ipA, ipB, 40000, 8080)); v[0] != (Verdict{Vif: 2}) {
		t.Fatalf("kernel -> B: %+v", v[0])
	}
	if s.Flows.Len() != 1 {
		t.Fatalf("%d flows, want 1", s.Flows.Len())
	}
	if _, _, v := processWith(s, 2, tcpFrame(t, ipB, ipA, 8080, 40000)); v[0] != (Verdict{Vif: 4}) {
		t.Fatalf("B's reply: %+v, want the host vif", v[0])
	}
	// Another connection between the same pods goes direct.
	if _, _, v := processWith(s, 2, tcpFrame(t, ipB, ipA, 8080, 40001)); v[0] != (Verdict{Vif: 1}) {
		t.Fatalf("B -> A direct: %+v", v[0])
	}
	// The kernel's own packets (from its address) make no flow.
	if _, _, v := processWith(s, 4, tcpFrame(t, ipHost, ipB, 41000, 8080)); v[0] != (Verdict{Vif: 2}) || s.Flows.Len() != 1 {
		t.Fatalf("kernel (own address) -> B: %+v, %d flows", v[0], s.Flows.Len())
	}
	if _, _, v := processWith(s, 2, tcpFrame(t, ipB, ipHost, 8080, 41000)); v[0] != (Verdict{Vif: 4}) {
		t.Fatalf("B -> the kernel's address: %+v", v[0])
	}
	// A kernel packet for no pod is not sent back to the kernel.
	if _, _, v := processWith(s, 4, tcpFrame(t, ipHost, [4]byte{198, 18, 150, 1}, 41000, 80)); v[0].Reason != NoRoute {
		t.Fatalf("kernel -> outside the VN: %+v, want no_route", v[0])
	}
	// Another VN's pods are not the kernel's.
	if _, _, v := processWith(s, 3, tcpFrame(t, ipC, ipHost, 80, 41000)); v[0].Reason != NoRoute {
		t.Fatalf("VN 2 -> the host address: %+v, want no_route", v[0])
	}
	if _, _, v := processWith(s, 4, tcpFrame(t, ipHost, ipC, 41000, 80)); v[0].Reason != NoRoute {
		t.Fatalf("kernel -> VN 2 without host access: %+v, want no_route", v[0])
	}
	// With host access, the kernel reaches VN 2, but a default-network
	// pod's packet the kernel forwards there does not.
	s.Host.VRFs = []uint32{2}
	if _, _, v := processWith(s, 4, tcpFrame(t, ipHost, ipC, 41000, 80)); v[0] != (Verdict{Vif: 3}) {
		t.Fatalf("kernel -> VN 2 with host access: %+v", v[0])
	}
	if _, _, v := processWith(s, 4, tcpFrame(t, ipA, ipC, 41000, 80)); v[0].Reason != NoRoute {
		t.Fatalf("pod A through the kernel -> VN 2: %+v, want no_route", v[0])
	}
}

func TestHostPathZeroAllocs(t *testing.T) {
	s := hostSnapshot(t)
	fromHost := tcpFrame(t, ipA, ipB, 40000, 8080)
	reply := tcpFrame(t, ipB, ipA, 8080, 40000)
	mem, descs := umem(fromHost, reply)
	v := make([]Verdict, 1)
	p := Pipeline{FrameSize: frameSize}
	allocs := testing.AllocsPerRun(200, func() {
		for i := range descs {
			mem[descs[i].Addr+22] = 64
			binary.BigEndian.PutUint16(mem[descs[i].Addr+24:], 0)
			packet.SetIPv4Checksum(mem[descs[i].Addr+14:], 20)
			copy(mem[descs[i].Addr:], rtrMAC[:])
		}
		p.Process(s, mem, descs[:1], 4, v)
		p.Process(s, mem, descs[1:], 2, v)
	})
	if allocs != 0 || v[0] != (Verdict{Vif: 4}) {
		t.Fatalf("%v allocations per batch, last verdict %+v", allocs, v[0])
	}
}

// BenchmarkHostReturn is a reply of a kernel-forwarded (Service) flow:
// one flow lookup more than a pod-to-pod packet.
func BenchmarkHostReturn(b *testing.B) {
	s := hostSnapshot(b)
	frames := make([][]byte, BatchSize)
	for i := range frames {
		frames[i] = tcpFrame(b, ipB, ipA, 8080, 40000)
	}
	_, _, _ = processWith(s, 4, tcpFrame(b, ipA, ipB, 40000, 8080))
	mem, descs := umem(frames...)
	v := make([]Verdict, len(descs))
	p := Pipeline{FrameSize: frameSize}
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		if n%200 == 0 { // TTL runs down by one per pass, as in BenchmarkPipeline
			for i := range descs {
				mem[descs[i].Addr+22] = 255
				binary.BigEndian.PutUint16(mem[descs[i].Addr+24:], 0)
				packet.SetIPv4Checksum(mem[descs[i].Addr+14:], 20)
			}
		}
		for i := range descs {
			copy(mem[descs[i].Addr:], rtrMAC[:])
		}
		p.Process(s, mem, descs, 2, v)
	}
	if v[0] != (Verdict{Vif: 4}) {
		b.Fatalf("verdict %+v, want the host vif", v[0])
	}
	b.ReportMetric(float64(b.N*len(descs))/b.Elapsed().Seconds(), "pps")
}
