package gen

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

const xdpDrop = 1

// Sink counts and drops every frame that arrives on one interface.
type Sink struct {
	counts *ebpf.Map // per-CPU array, one uint64 at key 0
	prog   *ebpf.Program
	link   link.Link
}

// AttachSink attaches a counting XDP_DROP program in driver mode to the
// interface ifindex of the calling thread's network namespace.
func AttachSink(ifindex int) (*Sink, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "xvr_sink_cnt", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w", err)
	}
	s := &Sink{counts: counts}
	if err := s.load(ifindex); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sink) load(ifindex int) error {
	var err error
	s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xvr_sink", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: sinkInsns(s.counts.FD()),
	})
	if err != nil {
		return fmt.Errorf("load sink program: %w", err)
	}
	s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("attach sink to ifindex %d: %w", ifindex, err)
	}
	return nil
}

// lookupKey0 leaves in R0 the value at key 0 of the array mapFD and jumps
// to miss when there is none (R1-R5 clobbered by the call).
func lookupKey0(mapFD int, miss string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	}
}

// sinkInsns: counts[0]++ on this CPU; return XDP_DROP.
func sinkInsns(mapFD int) asm.Instructions {
	return append(lookupKey0(mapFD, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
}

// Count returns how many frames the sink has dropped, summed over CPUs.
func (s *Sink) Count() (uint64, error) {
	var perCPU []uint64
	if err := s.counts.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read sink counters: %w", err)
	}
	var sum uint64
	for _, c := range perCPU {
		sum += c
	}
	return sum, nil
}

// Close detaches the program and releases the map.
func (s *Sink) Close() error {
	var errs []error
	if s.link != nil {
		errs = append(errs, s.link.Close())
	}
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
	}
	errs = append(errs, s.counts.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sink: %w", err)
	}
	return nil
}
