package topo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/xvr-project/xvr/bench/gen"
)

// Source is one generator per frame size on A's eth0, sending UDP frames
// from A to B's SinkPort addressed to DstMAC. Where the kernel runs live
// frames, those send (Send) and space frames of one size in the kernel
// (Pace), and a second, AF_XDP generator per size paces mixes (SendPaced,
// in rfc2544.FineSlice bursts: live frames cost a fixed ~0.4 ms per send
// here, ~20 ms on some kernels). Not safe for concurrent use.
type Source struct {
	Sizes    []int
	gens     []*gen.Generator
	paced    []*gen.Generator // gens itself when they are AF_XDP or number flows (ownPaced false)
	ownPaced bool
	flows    uint32
	prog     *ebpf.Program
	link     link.Link
}

// NewSource prepares generators for sizes (each MinUDPFrameLen..MaxFrameLen,
// distinct) and, for kernel datapaths, the header-restore program on A's
// host veth. Close it before making another Source on t.
func (t *Topology) NewSource(sizes []int) (*Source, error) {
	return t.NewSourceFlows(sizes, 0)
}

// NewSourceFlows is NewSource for frames of flows flows in turn
// (gen.Generator.SetFlows; 0: one flow): with live frames from that many
// UDP source ports, spaced in the kernel (Pace); beyond gen.MaxPortFlows,
// or where the kernel refuses live frames, through the AF_XDP generator,
// which numbers flows by source port and address (at most gen.MaxFlows).
func (t *Topology) NewSourceFlows(sizes []int, flows uint32) (*Source, error) {
	if flows > gen.MaxFlows {
		return nil, fmt.Errorf("a source of %d flows: at most %d", flows, gen.MaxFlows)
	}
	s := &Source{Sizes: append([]int(nil), sizes...), flows: flows}
	frames := make([][]byte, 0, len(sizes))
	for _, size := range sizes {
		f, err := gen.FrameUDP(size, t.A.MAC, t.DstMAC,
			netip.AddrPortFrom(t.A.IP.Addr(), 49152), netip.AddrPortFrom(t.B.IP.Addr(), SinkPort))
		if err != nil {
			return nil, err
		}
		if flows > 0 {
			binary.BigEndian.PutUint16(f[udpCsumOff:], 0) // the port changes under it: no checksum
		}
		frames = append(frames, f)
	}
	err := s.open(t, frames)
	if err == nil && t.restore {
		err = s.attachRestore(t, frames)
	}
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Source) open(t *Topology, frames [][]byte) error {
	return gen.InNetNS(t.A.NS.Name, func() error {
		ifi, err := net.InterfaceByName(t.A.IfName)
		if err != nil {
			return fmt.Errorf("find %s: %w", t.A.IfName, err)
		}
		for _, f := range frames {
			g, err := flowGenerator(ifi.Index, f, s.flows)
			if err != nil {
				return err
			}
			s.gens = append(s.gens, g)
			if err := g.SetFlows(s.flows); err != nil {
				return err
			}
		}
		if gen.LiveFramesErr() != nil || s.flows > 0 {
			s.paced = s.gens
			return nil
		}
		s.ownPaced = true
		for _, f := range frames {
			g, err := gen.NewGeneratorMode(ifi.Index, f, gen.ModeAFXDP)
			if err != nil {
				return err
			}
			s.paced = append(s.paced, g)
		}
		return nil
	})
}

// flowGenerator is a generator of frame that can number flows: live
// frames where the kernel runs them and the pacer numbers that many (by
// source port), else AF_XDP.
func flowGenerator(ifindex int, frame []byte, flows uint32) (*gen.Generator, error) {
	if flows > gen.MaxPortFlows {
		return gen.NewGeneratorMode(ifindex, frame, gen.ModeAFXDP)
	}
	return gen.NewGenerator(ifindex, frame)
}

// attachRestore attaches to A's host veth an XDP program that rewrites the
// Ethernet and IPv4 headers of every frame of a known length to those of
// the generated frame of that length, and passes it on. See the package
// doc: Linux forwarding dirties the recycled live-frames pages in place.
func (s *Source) attachRestore(t *Topology, frames [][]byte) error {
	var err error
	s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xvr_restore", Type: ebpf.XDP,
		License: "Dual MIT/GPL", Instructions: restoreInsns(frames)})
	if err != nil {
		return fmt.Errorf("load restore program: %w", err)
	}
	return gen.InNetNS(t.A.Node.Name, func() error {
		ifi, err := net.InterfaceByName(t.A.HostIf)
		if err != nil {
			return fmt.Errorf("find %s: %w", t.A.HostIf, err)
		}
		s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach restore to %s: %w", t.A.HostIf, err)
		}
		return nil
	})
}

// restoreLen covers what forwarding rewrites: Ethernet and IPv4 headers.
const restoreLen = 14 + 20

const xdpPass = 2

// restoreInsns: for the frame of frames whose length equals the packet's,
// overwrite the first restoreLen bytes with that frame's; return XDP_PASS.
func restoreInsns(frames [][]byte) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, restoreLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.Mov.Reg(asm.R5, asm.R3),
		asm.Sub.Reg(asm.R5, asm.R2), // frame length
	}
	label := func(i int) string {
		if i == len(frames) {
			return "pass"
		}
		return fmt.Sprintf("try%d", i)
	}
	for i, f := range frames {
		block := append(asm.Instructions{asm.JNE.Imm(asm.R5, int32(len(f)), label(i+1))},
			storeHeader(f[:restoreLen])...)
		block = append(block, asm.Ja.Label("pass"))
		if i > 0 {
			block[0] = block[0].WithSymbol(label(i))
		}
		insns = append(insns, block...)
	}
	return append(insns, asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"), asm.Return())
}

// storeHeader writes hdr (even length) at R2 with immediate stores.
func storeHeader(hdr []byte) asm.Instructions {
	var insns asm.Instructions
	off := 0
	for ; off+4 <= len(hdr); off += 4 {
		v := int32(binary.LittleEndian.Uint32(hdr[off:])) // stored in host (little-endian) order
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(v), asm.Word))
	}
	for ; off+2 <= len(hdr); off += 2 {
		v := int16(binary.LittleEndian.Uint16(hdr[off:]))
		insns = append(insns, asm.StoreImm(asm.R2, int16(off), int64(v), asm.Half))
	}
	return insns
}

// Send injects n frames of Sizes[i] as fast as it can.
func (s *Source) Send(i int, n uint32) error {
	if s.flows > 0 && s.Paces() { // with live frames only the pacer's program numbers flows
		_, _, err := s.Pace(i, math.Inf(1), uint64(n), maxSend)
		return err
	}
	return send(s.gens, i, n)
}

// maxSend bounds one unpaced Send of a Source with flows.
const maxSend = 30 * time.Second

// udpCsumOff is where an Ethernet/IPv4 (IHL 5)/UDP frame holds its UDP
// checksum.
const udpCsumOff = 14 + 20 + 6

// SendPaced injects n frames of Sizes[i] with the generator that paces
// finely (see Source).
func (s *Source) SendPaced(i int, n uint32) error {
	return send(s.paced, i, n)
}

// PacedApart reports whether SendPaced uses other generators than Send
// (live frames for Send, AF_XDP for SendPaced).
func (s *Source) PacedApart() bool { return s.ownPaced }

// Paces reports whether Pace can space frames of one size in the kernel
// (live frames, gen.Generator.SendPaced).
func (s *Source) Paces() bool { return len(s.gens) > 0 && s.gens[0].Paces() }

// Pace sends n frames of Sizes[i] at rate frames/s spaced in the kernel,
// stopping after limit; see gen.Generator.SendPaced.
func (s *Source) Pace(i int, rate float64, n uint64, limit time.Duration) (uint64, time.Duration, error) {
	if i < 0 || i >= len(s.gens) {
		return 0, 0, fmt.Errorf("no generator %d", i)
	}
	return s.gens[i].SendPaced(rate, n, limit)
}

func send(gens []*gen.Generator, i int, n uint32) error {
	if i < 0 || i >= len(gens) {
		return fmt.Errorf("no generator %d", i)
	}
	_, err := gens[i].Send(n)
	return err
}

// Close releases the generators and detaches the restore program.
func (s *Source) Close() error {
	var errs []error
	for _, g := range s.gens {
		errs = append(errs, g.Close())
	}
	if s.ownPaced {
		for _, g := range s.paced {
			errs = append(errs, g.Close())
		}
	}
	if s.link != nil {
		errs = append(errs, s.link.Close())
	}
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
	}
	return errors.Join(errs...)
}
