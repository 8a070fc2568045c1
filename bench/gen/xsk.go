package gen

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// Mode is how a Generator puts frames on its veth.
type Mode string

const (
	// ModeLiveFrames: the kernel's XDP live-frames test run (XDP_TX).
	ModeLiveFrames Mode = "live-frames"
	// ModeAFXDP: an AF_XDP socket's TX ring in copy mode, for kernels that
	// refuse live frames (some sandboxed kernels answer EPERM even to
	// root). Slower per frame, and frames reach the peer as skbs, so the
	// peer needs no XDP program.
	ModeAFXDP Mode = "af_xdp"
)

// xsk* size the AF_XDP generator: every frame of the UMEM holds a copy of
// the frame, so TX never writes packet memory.
const (
	xskFrames = 4096
	xskRing   = 2048
	xskBatch  = 64
	// xskStall bounds a Send that makes no progress (the kernel neither
	// takes nor completes frames).
	xskStall = 2 * time.Second
)

var (
	liveOnce sync.Once
	liveErr  error
)

// LiveFramesErr reports whether this kernel runs XDP live frames: nil, or
// the error of a probe (an XDP_DROP program run once in live mode, which
// sends nothing). The answer is cached for the process.
func LiveFramesErr() error {
	liveOnce.Do(func() { liveErr = probeLiveFrames() })
	return liveErr
}

func probeLiveFrames() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xvr_gen_probe", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}, // XDP_DROP
	})
	if err != nil {
		return fmt.Errorf("load probe program: %w", err)
	}
	defer prog.Close()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	f := Frame64(mac, mac, netip.AddrFrom4([4]byte{198, 18, 0, 1}), netip.AddrFrom4([4]byte{198, 18, 0, 2}))
	_, err = prog.Run(&ebpf.RunOptions{Data: f, Repeat: 1, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 1})
	if err != nil {
		return fmt.Errorf("xdp live-frames probe: %w", err)
	}
	return nil
}

// xskTx is the AF_XDP generator of one interface: one socket on queue 0,
// shared by every Generator of that interface (a queue takes one socket).
// Before a Send of another frame than the last, the UMEM is rewritten (all
// its frames are free then: send waits for every completion).
type xskTx struct {
	mu    sync.Mutex
	key   string
	refs  int
	umem  *afxdp.Umem
	sock  *afxdp.Socket
	descs []afxdp.Desc
	last  []byte // the frame every UMEM frame holds
}

var (
	xsksMu sync.Mutex
	xsks   = map[string]*xskTx{}
)

// openXskTx returns the interface's shared socket, opening it in the
// calling thread's namespace (nsID names it) the first time.
func openXskTx(nsID string, ifindex int) (*xskTx, error) {
	key := fmt.Sprintf("%s/%d", nsID, ifindex)
	xsksMu.Lock()
	defer xsksMu.Unlock()
	if x := xsks[key]; x != nil {
		x.refs++
		return x, nil
	}
	u, err := afxdp.NewUmem(afxdp.UmemConfig{NumFrames: xskFrames, FillSize: 64, RxSize: 64,
		TxSize: xskRing, CompletionSize: xskRing})
	if err != nil {
		return nil, fmt.Errorf("af_xdp generator umem: %w", err)
	}
	s, err := u.Open(ifindex, afxdp.SocketOptions{Copy: true, FillTarget: 1})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("af_xdp generator socket: %w", err), u.Close())
	}
	x := &xskTx{key: key, refs: 1, umem: u, sock: s, descs: make([]afxdp.Desc, xskBatch)}
	xsks[key] = x
	return x, nil
}

// load makes every UMEM frame hold frame.
func (x *xskTx) load(frame []byte) {
	if bytes.Equal(x.last, frame) && len(x.last) > 0 {
		return
	}
	mem, fs := x.umem.Mem(), x.umem.FrameSize()
	for off := 0; off+fs <= len(mem); off += fs {
		copy(mem[off:], frame)
	}
	x.last = append(x.last[:0], frame...)
}

// send puts n frames on the TX ring and waits until the kernel completed
// them all; with flows, each frame gets the next flow's source first.
func (x *xskTx) send(frame []byte, n uint32, flows *flowCycle) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.load(frame)
	if flows != nil {
		x.last = x.last[:0] // the frames' sources change: load again next time
	}
	flen := uint32(len(frame))
	free0 := x.umem.FreeFrames() // every frame is free between sends
	var queued uint64
	last, lastFree, lastQueued := time.Now(), free0, uint64(0)
	for {
		x.sock.Complete() // Transmit's kicks complete frames too: count free frames, not completions
		free := x.umem.FreeFrames()
		inFlight := uint64(free0 - free)
		if queued == uint64(n) && inFlight == 0 {
			return nil
		}
		if free != lastFree || queued != lastQueued {
			last, lastFree, lastQueued = time.Now(), free, queued
		} else if time.Since(last) > xskStall {
			st, serr := x.sock.Stats()
			return errors.Join(fmt.Errorf("af_xdp generator: %d of %d frames completed, none for %v (tx ring holds %d; %+v)",
				queued-inFlight, n, xskStall, x.sock.TxPending(), st), serr)
		}
		k := 0
		for k < len(x.descs) && queued+uint64(k) < uint64(n) {
			addr, ok := x.umem.Alloc()
			if !ok {
				break
			}
			if flows != nil {
				flows.write(x.umem.Mem()[addr : addr+uint64(flen)])
			}
			x.descs[k] = afxdp.Desc{Addr: addr, Len: flen}
			k++
		}
		took, err := x.sock.Transmit(x.descs[:k]) // kicks the kernel when the ring asks
		for _, d := range x.descs[took:k] {
			x.umem.Free(d.Addr)
		}
		queued += uint64(took)
		if err != nil {
			return fmt.Errorf("af_xdp generator: %w", err)
		}
	}
}

// close drops one reference; the last closes the socket.
func (x *xskTx) close() error {
	xsksMu.Lock()
	defer xsksMu.Unlock()
	if x.refs--; x.refs > 0 {
		return nil
	}
	delete(xsks, x.key)
	return errors.Join(x.sock.Close(), x.umem.Close())
}
