package gen

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// A live-frames test run hands the same page-pool pages round again
// without re-initialising their data, and a veth hands XDP_TX'd frames on
// without a copy: a datapath that rewrites frames in place in XDP (xvr's
// shortcut: MACs, TTL, checksum) would rewrite the generator's own frame,
// and the next run would send what it left. So both live-frames programs
// first write back the bytes a router rewrites, from the template: the
// MACs (bytes 0-11) and, in an IPv4 frame, TTL, protocol and header
// checksum (bytes 22-25). The stores cost ~1 ns a frame.
const restoreLen = ethHdrLen + 12 // through the IPv4 header checksum

// restoreInsns writes frame's rewritable bytes back into the packet; the
// context is in R6 and R1..R5 are clobbered. Frames shorter than
// restoreLen are left alone (they are not IPv4 routers' business).
func restoreInsns(frame []byte) asm.Instructions {
	if len(frame) < restoreLen {
		return nil
	}
	w := func(off int) int32 { return int32(binary.NativeEndian.Uint32(frame[off:])) }
	return asm.Instructions{
		asm.LoadMem(asm.R4, asm.R6, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R5, asm.R6, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R3, asm.R4),
		asm.Add.Imm(asm.R3, restoreLen),
		asm.JGT.Reg(asm.R3, asm.R5, "restored"),
		asm.StoreImm(asm.R4, 0, int64(w(0)), asm.Word),
		asm.StoreImm(asm.R4, 4, int64(w(4)), asm.Word),
		asm.StoreImm(asm.R4, 8, int64(w(8)), asm.Word),
		asm.StoreImm(asm.R4, 22, int64(w(22)), asm.Word),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("restored"),
	}
}

// txInsns is the unpaced live-frames program: restore, XDP_TX.
func txInsns(frame []byte) asm.Instructions {
	insns := append(asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}, restoreInsns(frame)...)
	return append(insns, asm.Mov.Imm(asm.R0, xdpTX), asm.Return())
}
