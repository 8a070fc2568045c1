package gen

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Both live-frames programs hand on the template's headers whatever a
// datapath left in the page, and nothing else changes.
func TestProgramsRestoreFrame(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	frame := Frame64(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2},
		netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"))
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: stateSize, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st := paceState{Remaining: 1, MaxLag: 1 << 62}
	if err := m.Put(uint32(0), st); err != nil {
		t.Fatal(err)
	}
	for name, insns := range map[string]asm.Instructions{"tx": txInsns(frame), "pacer": pacerInsns(m.FD(), frame)} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "Dual MIT/GPL", Instructions: insns})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer prog.Close()
		// What a router leaves: other MACs, TTL - 1, another checksum.
		dirty := append([]byte(nil), frame...)
		for _, i := range []int{0, 5, 6, 11, 22, 24, 25} {
			dirty[i] ^= 0x5a
		}
		out := make([]byte, len(frame))
		ret, err := prog.Run(&ebpf.RunOptions{Data: dirty, DataOut: out})
		if err != nil || ret != xdpTX {
			t.Fatalf("%s: run = %d %v, want XDP_TX", name, ret, err)
		}
		if !bytes.Equal(out, frame) {
			t.Fatalf("%s: sent\n%x\nwant the template\n%x", name, out, frame)
		}
	}
}
