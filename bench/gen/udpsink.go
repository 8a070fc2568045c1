package gen

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

const xdpPass = 2

// AttachUDPSink is AttachSink for a shared interface: it counts and drops
// only IPv4 frames (20-byte header) to UDP port dport and passes everything
// else (ARP, ICMP, TCP) to the stack, so ping and iperf3 still work on the
// interface while the generator's frames are counted.
func AttachUDPSink(ifindex int, dport uint16) (*Sink, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "xvr_usink_cnt", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create counter map: %w", err)
	}
	s := &Sink{counts: counts}
	s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xvr_usink", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: append(udpMatchInsns(dport), sinkInsns(counts.FD())...),
	})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("load udp sink program: %w", err)
	}
	s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("attach udp sink to ifindex %d: %w", ifindex, err)
	}
	return s, nil
}

// udpMatchInsns jumps to "pass" (XDP_PASS) unless the frame is
// Ethernet/IPv4 (IHL 5)/UDP to dport; it falls through otherwise. Loads
// are in host (little-endian) order, so constants are byte-swapped.
func udpMatchInsns(dport uint16) asm.Instructions {
	const udpOff = ethHdrLen + ipv4HdrLen
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, udpOff+4),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, 0x0008, "pass"), // ethertype 0x0800
		asm.LoadMem(asm.R5, asm.R2, ethHdrLen, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethHdrLen+9, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, udpOff+2, asm.Half),
		asm.JNE.Imm(asm.R5, int32(dport>>8|dport<<8), "pass"),
		asm.Ja.Label("count"),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("count"), // no-op landing for the counter code
	}
}
