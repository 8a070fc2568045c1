package afxdp

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// xdpMd is struct xdp_md, the context of an XDP test run.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// sink attaches to ifindex an XDP program that counts and drops every
// frame, and returns the counter map (one u64 at key 0).
func (n *testNet) sink(ifindex int) *ebpf.Map {
	n.tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		n.tb.Fatalf("create counter map: %v", err)
	}
	n.tb.Cleanup(func() { m.Close() })
	prog := n.loadXDP(asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
		asm.Return(),
	})
	n.attachProg(prog, ifindex)
	return m
}

// generate transmits frame out of ifindex with the kernel's live-frames
// XDP test run (an XDP_TX program), or AF_XDP where the kernel refuses it,
// until stop is set or limit passes.
func (n *testNet) generate(ifindex int, frame []byte, stop *atomic.Bool, limit time.Duration) (uint64, error) {
	prog := n.loadXDP(asm.Instructions{asm.Mov.Imm(asm.R0, 3), asm.Return()}) // XDP_TX
	var sent uint64
	err := n.do(func() error {
		deadline := time.Now().Add(limit)
		for !stop.Load() && time.Now().Before(deadline) {
			const burst = 1 << 16
			_, err := prog.Run(&ebpf.RunOptions{
				Data: frame, Repeat: burst, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES,
				Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)},
			})
			if errors.Is(err, unix.EPERM) && sent == 0 {
				// This kernel refuses live frames (sandboxed kernels do,
				// even to root): send through an AF_XDP socket instead.
				var xerr error
				sent, xerr = generateXsk(ifindex, frame, stop, deadline)
				return xerr
			}
			if err != nil {
				return err
			}
			sent += burst
		}
		return nil
	})
	return sent, err
}

// generateXsk transmits frame out of ifindex (of the calling thread's
// namespace) from an AF_XDP socket's TX ring, copy mode, until stop is set
// or the deadline passes.
func generateXsk(ifindex int, frame []byte, stop *atomic.Bool, deadline time.Time) (uint64, error) {
	u, err := NewUmem(UmemConfig{FillSize: 64, RxSize: 64})
	if err != nil {
		return 0, err
	}
	defer u.Close()
	s, err := u.Open(ifindex, SocketOptions{Copy: true, FillTarget: 1})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	for off := 0; off+u.FrameSize() <= len(u.Mem()); off += u.FrameSize() {
		copy(u.Mem()[off:], frame)
	}
	descs := make([]Desc, 64)
	var sent uint64
	for i := 0; !stop.Load(); i++ {
		if i&1023 == 0 && time.Now().After(deadline) {
			break
		}
		s.Complete()
		k := 0
		for ; k < len(descs); k++ {
			addr, ok := u.Alloc()
			if !ok {
				break
			}
			descs[k] = Desc{Addr: addr, Len: uint32(len(frame))}
		}
		took, err := s.Transmit(descs[:k])
		for _, d := range descs[took:k] {
			u.Free(d.Addr)
		}
		sent += uint64(took)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// BenchmarkForward moves 60-byte frames (64 on the wire) from the RX ring
// of a socket on one veth to the TX ring of a socket on another veth over
// one shared Umem, without copying. One op is one forwarded frame.
func BenchmarkForward(b *testing.B) {
	p := newPair(b, UmemConfig{})
	counter := p.net.sink(p.p1b)
	frame := testFrame(0, 60)
	var stop atomic.Bool
	type result struct {
		sent uint64
		err  error
	}
	genDone := make(chan result, 1)
	go func() {
		sent, err := p.net.generate(p.p0b, frame, &stop, 20*time.Second)
		genDone <- result{sent, err}
	}()
	p.s0.Fill()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	forwarded := p.forwardAll(b.N, start.Add(10*time.Second))
	elapsed := time.Since(start)
	b.StopTimer()
	stop.Store(true)
	gen := <-genDone
	if gen.err != nil {
		b.Fatalf("generator: %v", gen.err)
	}
	var delivered uint64
	if err := counter.Lookup(uint32(0), &delivered); err != nil {
		b.Fatal(err)
	}
	st0, _ := p.s0.Stats()
	st1, _ := p.s1.Stats()
	b.Logf("n=%d forwarded=%d in %v\ns0 %+v\ns1 %+v", b.N, forwarded, elapsed, st0, st1)
	b.ReportMetric(float64(forwarded)/elapsed.Seconds(), "pps")
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "delivered-pps")
	b.ReportMetric(float64(gen.sent)/elapsed.Seconds(), "offered-pps")
}

// forwardAll moves every received frame from s0 to s1 until n frames went
// out or the deadline passes, and returns how many went out.
func (p *pair) forwardAll(n int, deadline time.Time) int {
	done := 0
	for i := 0; done < n; i++ {
		if i&1023 == 0 && time.Now().After(deadline) {
			break
		}
		got := p.s0.Receive(p.descs)
		sent, _ := p.s1.Transmit(p.descs[:got])
		for _, d := range p.descs[sent:got] {
			p.umem.Free(d.Addr)
		}
		done += sent
		p.s1.Complete()
		p.s0.Fill()
	}
	return done
}
