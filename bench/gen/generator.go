package gen

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// MaxSend bounds one Send (about 20 s at 5 Mpps).
	MaxSend = 100_000_000
	// BatchSize is how many frames the kernel builds and flushes at once
	// (the kernel's default). 256, the kernel's maximum, overruns the veth
	// peer's 256-slot XDP ring and loses frames; 64 loses none.
	BatchSize = 64

	xdpTX = 3
)

// xdpMd is struct xdp_md, the context of an XDP test run. For a test run
// DataEnd must equal the frame length and EgressIfindex must be zero;
// RxQueueIndex (0) must be below the device's RX queue count.
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// Generator injects copies of one frame into a veth (see the package doc).
// A Generator is not safe for concurrent use.
type Generator struct {
	mode  Mode
	xsk   *xskTx // ModeAFXDP
	prog  *ebpf.Program
	pace  *pacer     // SendPaced's, made on first use
	flows uint32     // SetFlows
	cycle *flowCycle // AF_XDP sends' flow numbering (SetFlows); nil: none
	ns    netns.NsHandle
	frame []byte
	ctx   xdpMd
}

// NewGenerator prepares to transmit frame out of the interface ifindex of
// the calling thread's network namespace, which it remembers, with live
// frames where the kernel runs them, else AF_XDP.
func NewGenerator(ifindex int, frame []byte) (*Generator, error) {
	if LiveFramesErr() != nil {
		return NewGeneratorMode(ifindex, frame, ModeAFXDP)
	}
	return NewGeneratorMode(ifindex, frame, ModeLiveFrames)
}

// NewGeneratorMode is NewGenerator with the mode chosen by the caller:
// AF_XDP has no fixed cost per Send (it paces mixes in fine slices), live
// frames are faster but cost a fixed ~0.4 ms per Send here (~20 ms on
// some kernels) and pace one frame size in the kernel (SendPaced).
func NewGeneratorMode(ifindex int, frame []byte, mode Mode) (*Generator, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("bad ifindex %d", ifindex)
	}
	if len(frame) < ethHdrLen || len(frame) > MaxFrameLen {
		return nil, fmt.Errorf("frame of %d bytes, want %d..%d", len(frame), ethHdrLen, MaxFrameLen)
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get current netns: %w", err)
	}
	switch mode {
	case ModeLiveFrames:
		if err := LiveFramesErr(); err != nil {
			ns.Close()
			return nil, err
		}
	case ModeAFXDP:
		x, err := openXskTx(ns.UniqueId(), ifindex)
		if err != nil {
			ns.Close()
			return nil, err
		}
		return &Generator{mode: ModeAFXDP, xsk: x, ns: ns, frame: append([]byte(nil), frame...)}, nil
	default:
		ns.Close()
		return nil, fmt.Errorf("unknown generator mode %q", mode)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xvr_gen_tx",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: txInsns(frame),
	})
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("load xdp_tx program: %w", err)
	}
	f := append([]byte(nil), frame...)
	return &Generator{mode: ModeLiveFrames, prog: prog, ns: ns, frame: f,
		ctx: xdpMd{DataEnd: uint32(len(f)), IngressIfindex: uint32(ifindex)}}, nil
}

// Send injects n copies of the frame (n <= MaxSend) and returns how long
// the kernel took. It blocks until all n were run through XDP_TX (AF_XDP
// mode: until the kernel completed them all); copies the veth could not
// take (live frames: peer without XDP, full ring) are dropped silently.
// With live frames, signals are blocked on the sending thread meanwhile: an interrupted test
// run cannot say how many frames it sent, and a retry would send too many.
func (g *Generator) Send(n uint32) (time.Duration, error) {
	if n == 0 {
		return 0, nil
	}
	if n > MaxSend {
		return 0, fmt.Errorf("send %d frames: more than %d", n, MaxSend)
	}
	if g.xsk != nil { // its socket is bound already: no namespace switch, no signals to block
		start := time.Now()
		err := g.xsk.send(g.frame, n, g.cycle)
		return time.Since(start), err
	}
	var took time.Duration
	err := withNS(g.ns, func() error {
		var err error
		took, err = g.run(g.prog, n)
		return err
	})
	return took, err
}

// Mode tells how the generator sends (live frames where the kernel runs
// them, else AF_XDP).
func (g *Generator) Mode() Mode { return g.mode }

// run executes prog's live-frames test run of n iterations on the locked
// current thread.
func (g *Generator) run(prog *ebpf.Program, n uint32) (time.Duration, error) {
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return 0, fmt.Errorf("block signals: %w", err)
	}
	start := time.Now()
	_, err := prog.Run(&ebpf.RunOptions{
		Data:      g.frame,
		Repeat:    n,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context:   g.ctx,
		BatchSize: BatchSize,
	})
	took := time.Since(start)
	if rerr := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); rerr != nil {
		return took, errors.Join(err, fmt.Errorf("restore signal mask: %w", rerr))
	}
	if err != nil {
		return took, fmt.Errorf("xdp live-frames run: %w", err)
	}
	return took, nil
}

// Close releases the program and the namespace handle.
func (g *Generator) Close() error {
	var err error
	if g.xsk != nil {
		err = g.xsk.close()
	} else {
		err = g.prog.Close()
	}
	if g.pace != nil {
		err = errors.Join(err, g.pace.prog.Close(), g.pace.state.Close())
	}
	if cerr := g.ns.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close netns handle: %w", cerr)
	}
	return err
}
