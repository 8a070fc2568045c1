package gen

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// A paced live-frames run spaces frames in the kernel: its XDP program
// reads the clock on every iteration of the test run and transmits
// (XDP_TX) only when the next frame is due, dropping the iteration
// otherwise, so frames leave one interval apart instead of in bursts. The
// kernel flushes transmitted frames every BatchSize iterations, which at
// ~40 ns an iteration is a few microseconds: bursts of a handful of frames
// at any rate the generator reaches. Between runs (a run lasts about
// pacedRun) the clock goes on; frames due meanwhile go out back to back,
// at most maxCatchUp of them.
const (
	// MaxPacedBurst is the most frames a paced send puts back to back.
	MaxPacedBurst = maxCatchUp
	pacedRun      = 10 * time.Millisecond
	maxCatchUp    = 64
	// pacedIters is the first run's iterations, before the cost of one is
	// known.
	pacedIters = 1 << 18
)

// paceState is the pacer map's one value, shared by the program and Go.
type paceState struct {
	Next      uint64 // CLOCK_MONOTONIC ns when the next frame is due
	Interval  uint64 // ns between frames
	Remaining uint64 // frames still to send; 0 drops every iteration
	MaxLag    uint64 // how far Next may fall behind the clock, ns
	Flows     uint64 // > 0: frame i leaves from UDP port FlowPortBase + i mod Flows
	Sent      uint64 // frames sent since the generator was made (numbers the flows)
}

const (
	offNext      = 0
	offInterval  = 8
	offRemaining = 16
	offMaxLag    = 24
	offFlows     = 32
	offSent      = 40
	stateSize    = 48
)

// FlowPortBase is the first UDP source port of a generator with flows.
const FlowPortBase = 1024

// udpSportOff is where an Ethernet/IPv4 (IHL 5)/UDP frame holds its source
// port.
const udpSportOff = ethHdrLen + ipv4HdrLen

// pacer is the program and map of a Generator's paced sends.
type pacer struct {
	state *ebpf.Map
	prog  *ebpf.Program
	iters uint32 // iterations of the next run (about pacedRun)
}

func newPacer(frame []byte) (*pacer, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xvr_gen_pace", Type: ebpf.Array, KeySize: 4,
		ValueSize: stateSize, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create pacer map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xvr_gen_pace", Type: ebpf.XDP,
		License: "Dual MIT/GPL", Instructions: pacerInsns(m.FD(), frame)})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("load pacer program: %w", err), m.Close())
	}
	return &pacer{state: m, prog: prog, iters: pacedIters}, nil
}

// pacerInsns: look the state up; drop unless frames remain and Next is
// due; pull Next up to at most MaxLag behind now; advance Next by
// Interval, count the frame, give it its flow's source port (with Flows),
// restore what a datapath may have rewritten in place (restoreInsns) and
// transmit it.
func pacerInsns(mapFD int, frame []byte) asm.Instructions {
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)} // the context, across calls
	insns = append(insns, lookupKey0(mapFD, "drop")...)
	insns = append(insns,
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R1, asm.R7, offRemaining, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "drop"),
		asm.FnKtimeGetNs.Call(),
		asm.LoadMem(asm.R2, asm.R7, offNext, asm.DWord),
		asm.JGT.Reg(asm.R2, asm.R0, "drop"), // not due yet
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Sub.Reg(asm.R3, asm.R2), // lag
		asm.LoadMem(asm.R4, asm.R7, offMaxLag, asm.DWord),
		asm.JLE.Reg(asm.R3, asm.R4, "send"),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Sub.Reg(asm.R2, asm.R4),
		asm.LoadMem(asm.R3, asm.R7, offInterval, asm.DWord).WithSymbol("send"),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.R7, offNext, asm.R2, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, offRemaining, asm.DWord),
		asm.Sub.Imm(asm.R1, 1),
		asm.StoreMem(asm.R7, offRemaining, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, offSent, asm.DWord),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Add.Imm(asm.R3, 1),
		asm.StoreMem(asm.R7, offSent, asm.R3, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, offFlows, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "tx"),
		asm.Mod.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, FlowPortBase),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.LoadMem(asm.R4, asm.R6, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R5, asm.R6, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R3, asm.R4),
		asm.Add.Imm(asm.R3, udpSportOff+2),
		asm.JGT.Reg(asm.R3, asm.R5, "tx"),
		asm.StoreMem(asm.R4, udpSportOff, asm.R2, asm.Half),
	)
	tx := append(restoreInsns(frame), asm.Mov.Imm(asm.R0, xdpTX), asm.Return())
	tx[0] = tx[0].WithSymbol("tx")
	return append(insns, append(tx,
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return())...)
}

// Paces reports whether SendPaced spaces frames in the kernel (live
// frames); an AF_XDP Generator cannot.
func (g *Generator) Paces() bool { return g.mode == ModeLiveFrames }

// SetFlows makes the frames of later sends carry n flows in turn (0: the
// frame's own): live frames' paced sends from UDP source ports FlowPortBase
// on (at most MaxPortFlows), AF_XDP sends the same and beyond MaxPortFlows
// from further source addresses too (flowCycle, at most MaxFlows). The
// frame's UDP checksum must be 0 (none), as a rewritten port leaves it
// wrong. It returns an error for more flows than the mode numbers.
func (g *Generator) SetFlows(n uint32) error {
	limit := uint32(MaxFlows)
	if g.mode == ModeLiveFrames {
		limit = MaxPortFlows
	}
	if n > limit {
		return fmt.Errorf("%d flows: a %s generator numbers at most %d", n, g.mode, limit)
	}
	g.flows, g.cycle = n, nil
	if n > 0 && g.mode == ModeAFXDP {
		g.cycle = newFlowCycle(g.frame, n)
	}
	return nil
}

// SendPaced sends n frames at rate frames/s (+Inf: unpaced), spaced in the
// kernel (see pacer), and stops after limit. It returns the frames sent
// and the time from the first run's start until the last one's end. Live
// frames only.
func (g *Generator) SendPaced(rate float64, n uint64, limit time.Duration) (uint64, time.Duration, error) {
	if !g.Paces() {
		return 0, 0, fmt.Errorf("paced sends need live frames; generator is %s", g.mode)
	}
	if !(rate > 0) || n == 0 { // NaN fails rate > 0 too
		return 0, 0, fmt.Errorf("paced send of %d frames at %v/s: want a rate above 0 and frames", n, rate)
	}
	if g.pace == nil {
		p, err := newPacer(g.frame)
		if err != nil {
			return 0, 0, err
		}
		g.pace = p
	}
	var interval uint64 // unpaced: every iteration is due
	if !math.IsInf(rate, 1) {
		interval = max(uint64(1e9/rate), 1)
	}
	now, err := monotonicNs()
	if err != nil {
		return 0, 0, err
	}
	var st paceState
	if err := g.pace.state.Lookup(uint32(0), &st); err != nil {
		return 0, 0, fmt.Errorf("read pacer state: %w", err)
	}
	st.Next, st.Interval, st.Remaining, st.MaxLag, st.Flows = now, interval, n, maxCatchUp*interval, uint64(g.flows)
	if err := g.pace.state.Put(uint32(0), st); err != nil {
		return 0, 0, fmt.Errorf("set pacer state: %w", err)
	}
	start := time.Now()
	var left uint64 = n
	err = withNS(g.ns, func() error {
		for left > 0 && time.Since(start) < limit {
			took, err := g.run(g.pace.prog, g.pace.iters)
			if err != nil {
				return err
			}
			if err := g.pace.state.Lookup(uint32(0), &st); err != nil {
				return fmt.Errorf("read pacer state: %w", err)
			}
			left = st.Remaining
			if took > 0 {
				g.pace.iters = uint32(min(max(float64(g.pace.iters)*float64(pacedRun)/float64(took), 4096), 1<<24))
			}
		}
		return nil
	})
	took := time.Since(start)
	if left > 0 { // stopped by limit: nothing more may leave
		st.Remaining = 0
		err = errors.Join(err, g.pace.state.Put(uint32(0), st))
	}
	return n - left, took, err
}

func monotonicNs() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	return uint64(ts.Nano()), nil
}
