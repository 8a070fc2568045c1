package dataplane

import (
	"testing"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

// FuzzPipeline feeds arbitrary frames through the whole pipeline: it must
// never panic, never write outside the frame's chunk, and every verdict must
// be a drop with a reason or a transmit to a vif that exists.
func FuzzPipeline(f *testing.F) {
	f.Add(udpFrame(f, ipA, ipB, 64, 18), uint8(1))
	f.Add(udpFrame(f, ipA, ipB, 1, 100), uint8(1))
	f.Add(udpFrame(f, ipA, ipC, 64, 18), uint8(1))
	f.Add(pingFrame(f, gw10), uint8(1))
	f.Add(arpFrame(f, gw10), uint8(1))
	f.Add(arpFrame(f, ipB), uint8(3))
	f.Add([]byte{0xff}, uint8(0))
	s := testSnapshot(f)
	f.Fuzz(func(t *testing.T, frame []byte, in uint8) {
		if len(frame) > frameSize-256 {
			frame = frame[:frameSize-256]
		}
		// Three chunks: the frame sits in the middle one; the others must not change.
		mem := make([]byte, 3*frameSize)
		for i := range mem {
			mem[i] = 0xa5
		}
		addr := uint64(frameSize + 256)
		copy(mem[addr:], frame)
		d := []afxdp.Desc{{Addr: addr, Len: uint32(len(frame))}}
		v := make([]Verdict, 1)
		p := Pipeline{FrameSize: frameSize}
		p.Process(s, mem, d, uint32(in%5), v)
		for i := 0; i < frameSize; i++ {
			if mem[i] != 0xa5 || mem[2*frameSize+i] != 0xa5 {
				t.Fatalf("pipeline wrote outside the frame's chunk at %d", i)
			}
		}
		switch {
		case v[0].Reason >= NumReasons:
			t.Fatalf("unknown reason %d", v[0].Reason)
		case v[0].Reason == Forward && s.vif(v[0].Vif) == nil:
			t.Fatalf("transmit to missing vif %d", v[0].Vif)
		case v[0].Reason == Forward && (d[0].Addr < frameSize || d[0].Addr+uint64(d[0].Len) > 2*frameSize):
			t.Fatalf("transmit descriptor %+v outside its chunk", d[0])
		}
	})
}
