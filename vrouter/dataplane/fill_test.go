package dataplane

import (
	"testing"
	"time"

	"github.com/xvr-project/xvr/vrouter/afxdp"
)

func TestNextFill(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		name             string
		cur, recv        int
		elapsed          time.Duration
		base, most, want int
	}{
		{"idle stays at base", 512, 0, ms, 512, 2048, 512},
		{"slow socket stays at base", 512, 1000, 10 * ms, 512, 2048, 512},
		{"400 kpps covers 5 ms", 512, 4000, 10 * ms, 512, 2048, 2000},
		{"overload clamps to most", 512, 100000, 10 * ms, 512, 2048, 2048},
		{"a long window is a low rate", 512, 40000, 100 * ms, 512, 2048, 2000},
		{"shrinks by 1/256", 2048, 0, ms, 512, 2048, 2040},
		{"shrinks slowly even when it wants little", 2048, 100, ms, 512, 2048, 2040},
		{"shrinks by at least 1", 200, 0, ms, 64, 256, 199},
		{"never below base", 513, 0, ms, 512, 2048, 512},
		{"fixed when most is base", 512, 100000, ms, 512, 512, 512},
		{"no time passed", 700, 100, 0, 512, 2048, 700},
	} {
		if got := nextFill(c.cur, c.recv, c.elapsed, c.base, c.most); got != c.want {
			t.Errorf("%s: nextFill(%d, %d, %v, %d, %d) = %d, want %d", c.name, c.cur, c.recv, c.elapsed, c.base, c.most, got, c.want)
		}
	}
}

// pump passes n frames from vif 1 to vif 2 through the poller, a fill
// target's worth per round, and drains vif 2's TX queue, all within one
// fill window (whatever the time it takes).
func (r *rig) pump(t *testing.T, n int) {
	t.Helper()
	f := udpFrame(t, ipA, ipB, 64, 10)
	for n > 0 {
		k := min(n, r.sock(1).FillTarget(), BatchSize)
		for i := 0; i < k; i++ {
			if !r.sock(1).Inject(f) {
				t.Fatalf("inject: no room after %d of %d", i, k)
			}
		}
		r.p.fillStart = r.p.since(time.Now()) // all of it in one window
		if got := r.p.round(); got != k {
			t.Fatalf("round received %d frames, want %d", got, k)
		}
		r.sock(2).Sent()
		n -= k
	}
}

// window makes the next round end a fill window of about fillWindow.
func (r *rig) window() {
	r.p.fillStart = r.p.since(time.Now()) - int64(fillWindow)
	r.p.round()
}

func TestPollerAdaptsFill(t *testing.T) {
	r := newRig(t, 4096, 1, 2) // FillTarget 64
	r.p.FillMax = 256
	r.window()
	r.pump(t, 1024) // ~100 kpps over the window: wants ~512
	r.window()
	if got := r.sock(1).FillTarget(); got != 256 {
		t.Errorf("busy socket's fill target %d, want FillMax 256", got)
	}
	if got := r.sock(2).FillTarget(); got != 64 {
		t.Errorf("idle socket's fill target %d, want FillTarget 64", got)
	}
	r.checkConserved(t, 1, 2)
	r.window()
	if got := r.sock(1).FillTarget(); got != 255 {
		t.Errorf("after an idle window the fill target is %d, want 255", got)
	}
	for i := 0; i < 200; i++ {
		r.window()
	}
	if got := r.sock(1).FillTarget(); got != 64 {
		t.Errorf("after idle windows the fill target is %d, want 64", got)
	}
	r.closeAndCheck(t)
}

func TestPollerFillWithinUmem(t *testing.T) {
	r := newRig(t, 512, 1, 2) // 3/4 of 512 is 384: vif 2 keeps 64, vif 1 may reach 320
	r.p.FillMax = 2048
	r.window()
	r.pump(t, 4096)
	r.window()
	if got := r.sock(1).FillTarget(); got != 320 {
		t.Errorf("fill target %d, want 320 (the UMEM's share less vif 2's 64)", got)
	}
	r.pump(t, 1024) // frames still flow with the UMEM's fill share lent
	r.checkConserved(t, 1, 2)
	r.closeAndCheck(t)
}

// TestWarmSkipsBadDescriptors: descriptors outside the UMEM (which Process
// drops as invalid) are skipped, even where Addr+Len would wrap around.
func TestWarmSkipsBadDescriptors(t *testing.T) {
	mem := make([]byte, 4096)
	mem[100], mem[100+warmHeaders-1] = 1, 2
	descs := []afxdp.Desc{{Addr: 100, Len: 64}, {Addr: 4090, Len: 64}, {Addr: ^uint64(0) - 10, Len: 64}, {Addr: 4096, Len: 1}, {Addr: 0, Len: 0}}
	if got := warm(mem, descs); got != 1^2 {
		t.Fatalf("warm = %d, want %d (only the first descriptor read)", got, 1^2)
	}
}
