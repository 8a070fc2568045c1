package xdpprog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

func TestLoad(t *testing.T) {
	newPair(t) // root check; a clean namespace
	p := mustLoad(t)
	if p.ID() == 0 {
		t.Fatal("loaded program has id 0")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestAttachDetach(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	a := idx(pr.a)
	wantAttached(t, a, 0, "")
	if err := p.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	wantAttached(t, a, p.ID(), ProgName)
	if m := p.Mode(a); m != ModeDriver {
		t.Fatalf("veth mode = %v, want driver", m)
	}
	if err := p.Attach(a); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	wantAttached(t, a, p.ID(), ProgName)
	if err := p.Detach(a); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	wantAttached(t, a, 0, "")
	if m := p.Mode(a); m != ModeNone {
		t.Fatalf("mode after Detach = %v, want none", m)
	}
	if err := p.Detach(a); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}

// lo has no native XDP: Attach must fall back to generic mode.
func TestAttachGenericFallback(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	lo := idx(pr.lo)
	if err := p.Attach(lo); err != nil {
		t.Fatalf("Attach lo: %v", err)
	}
	if m := p.Mode(lo); m != ModeGeneric {
		t.Fatalf("lo mode = %v, want generic", m)
	}
	wantAttached(t, lo, p.ID(), ProgName)
}

func TestCloseDetachesAll(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	devs := []int{idx(pr.a), idx(pr.b), idx(pr.lo)}
	for _, d := range devs {
		if err := p.Attach(d); err != nil {
			t.Fatalf("Attach %d: %v", d, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, d := range devs {
		wantAttached(t, d, 0, "")
	}
}

// A stale xvr_pod left through netlink (a crashed older run) is replaced.
func TestAttachReplacesStale(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags int
	}{
		{"driver", nl.XDP_FLAGS_DRV_MODE},
		{"generic", nl.XDP_FLAGS_SKB_MODE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newPair(t)
			old := mustLoad(t)
			netlinkAttach(t, pr.a, old.objs.XvrPod, tc.flags)
			if err := old.Close(); err != nil { // the old run dies; netlink keeps it attached
				t.Fatalf("closing old run: %v", err)
			}
			wantAttached(t, idx(pr.a), old.ID(), ProgName)

			p := mustLoad(t)
			if err := p.Attach(idx(pr.a)); err != nil {
				t.Fatalf("Attach over stale: %v", err)
			}
			wantAttached(t, idx(pr.a), p.ID(), ProgName)
			if m := p.Mode(idx(pr.a)); m != ModeDriver {
				t.Fatalf("mode = %v, want driver", m)
			}
		})
	}
}

func TestAttachRefusesForeign(t *testing.T) {
	pr := newPair(t)
	foreign := foreignProg(t)
	netlinkAttach(t, pr.a, foreign, nl.XDP_FLAGS_DRV_MODE)
	info, err := foreign.Info()
	if err != nil {
		t.Fatal(err)
	}
	fid, _ := info.ID()

	p := mustLoad(t)
	err = p.Attach(idx(pr.a))
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("Attach over foreign = %v, want *BusyError", err)
	}
	if busy.ID != uint32(fid) || busy.Name != "foreign_pass" {
		t.Fatalf("BusyError names %d %q, want %d foreign_pass", busy.ID, busy.Name, fid)
	}
	msg := err.Error()
	if !strings.Contains(msg, "foreign_pass") || !strings.Contains(msg, fmt.Sprint(fid)) {
		t.Fatalf("error %q does not say which program is in the way", msg)
	}
	t.Logf("error: %v", err)
	wantAttached(t, idx(pr.a), uint32(fid), "foreign_pass")
	if m := p.Mode(idx(pr.a)); m != ModeNone {
		t.Fatalf("mode after refused Attach = %v", m)
	}
	// The refused device must not keep a port slot.
	if v := verdict(t, p, idx(pr.a), 0); v != xdpPass {
		t.Fatalf("verdict after refused Attach = %d, want XDP_PASS", v)
	}
}

// An xvr_pod held by a live bpf_link (another xvrd) is never taken over.
func TestAttachRefusesLiveLink(t *testing.T) {
	pr := newPair(t)
	other := mustLoad(t)
	if err := other.Attach(idx(pr.a)); err != nil {
		t.Fatalf("other Attach: %v", err)
	}
	p := mustLoad(t)
	err := p.Attach(idx(pr.a))
	var busy *BusyError
	if !errors.As(err, &busy) || !strings.Contains(busy.Why, "bpf_link") {
		t.Fatalf("Attach over live link = %v, want *BusyError about a bpf_link", err)
	}
	t.Logf("error: %v", err)
	wantAttached(t, idx(pr.a), other.ID(), ProgName)
}

func TestVerdicts(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	a, b := idx(pr.a), idx(pr.b)

	if v := verdict(t, p, a, 0); v != xdpPass {
		t.Fatalf("unknown device: verdict %d, want XDP_PASS", v)
	}
	// b first, so a gets port slot 1 and the key arithmetic is exercised.
	for _, d := range []int{b, a} {
		if err := p.Attach(d); err != nil {
			t.Fatalf("Attach %d: %v", d, err)
		}
	}
	for _, q := range []int{0, 1} {
		if v := verdict(t, p, a, q); v != xdpDrop {
			t.Fatalf("known device, no socket, queue %d: verdict %d, want XDP_DROP", q, v)
		}
	}
	fd := openXSK(t, a, 1)
	if err := p.Register(a, 1, fd); err != nil {
		t.Fatalf("Register: %v", err)
	}
	wantVerdicts(t, p, map[[2]int]uint32{{a, 1}: xdpRedirect, {a, 0}: xdpDrop, {b, 1}: xdpDrop, {b, 0}: xdpDrop})
	if err := p.Unregister(a, 1); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	wantVerdicts(t, p, map[[2]int]uint32{{a, 1}: xdpDrop})
	if err := p.Unregister(a, 1); err != nil {
		t.Fatalf("second Unregister: %v", err)
	}
	if err := p.Register(a, 1, fd); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	if err := p.Detach(a); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	wantVerdicts(t, p, map[[2]int]uint32{{a, 1}: xdpPass, {b, 1}: xdpDrop})
	// a's slot is free again and its socket entry gone: re-adding a must not
	// resurrect the old socket.
	if err := p.Attach(a); err != nil {
		t.Fatalf("re-Attach: %v", err)
	}
	wantVerdicts(t, p, map[[2]int]uint32{{a, 1}: xdpDrop})
}

func wantVerdicts(t *testing.T, p *Program, want map[[2]int]uint32) {
	t.Helper()
	for k, w := range want {
		if v := verdict(t, p, k[0], k[1]); v != w {
			t.Errorf("ifindex %d queue %d: verdict %d, want %d", k[0], k[1], v, w)
		}
	}
}

// Register before Attach (the order that loses no frame) works too.
func TestRegisterBeforeAttach(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	a := idx(pr.a)
	fd := openXSK(t, a, 0)
	if err := p.Register(a, 0, fd); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := p.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	wantVerdicts(t, p, map[[2]int]uint32{{a, 0}: xdpRedirect, {a, 1}: xdpDrop})
}

func TestRegisterErrors(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	a := idx(pr.a)
	for _, q := range []int{-1, MaxQueues} {
		if err := p.Register(a, q, 0); err == nil {
			t.Errorf("Register queue %d: no error", q)
		}
		if err := p.Unregister(a, q); err == nil {
			t.Errorf("Unregister queue %d: no error", q)
		}
	}
	if err := p.Register(a, 0, -1); err == nil {
		t.Error("Register fd -1: no error")
	}
	if err := p.Register(0, 0, 1); err == nil {
		t.Error("Register ifindex 0: no error")
	}
	// Not an AF_XDP socket: the kernel refuses it and no slot is left behind.
	if err := p.Register(a, 0, 1); err == nil {
		t.Error("Register stdout: no error")
	}
	if v := verdict(t, p, a, 0); v != xdpPass {
		t.Errorf("verdict after failed Register = %d, want XDP_PASS (no slot)", v)
	}
	if err := p.Attach(999999); err == nil {
		t.Error("Attach of a missing device: no error")
	}
}

func TestSlotAllocation(t *testing.T) {
	p := &Program{ports: make(map[int]*port)}
	seen := make(map[uint32]bool)
	for i := 0; i < MaxPorts; i++ {
		s, err := p.allocSlot()
		if err != nil || seen[s] || s >= MaxPorts {
			t.Fatalf("alloc %d: slot %d err %v", i, s, err)
		}
		seen[s] = true
	}
	if _, err := p.allocSlot(); !errors.Is(err, errFull) {
		t.Fatalf("alloc past MaxPorts: %v, want errFull", err)
	}
	p.free = append(p.free, 17)
	if s, err := p.allocSlot(); err != nil || s != 17 {
		t.Fatalf("alloc after free: %d %v, want 17", s, err)
	}
}

// Frames sent into the pod end of the veth arrive on the AF_XDP sockets of
// the host end, attached in driver mode, and none reaches the stack.
func TestRedirectDelivers(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	a := idx(pr.a)
	// veth picks the rx queue from the sender's tx queue: cover both.
	xs := []*testXSK{newXSK(t, a, 0), newXSK(t, a, 1)}
	for q, x := range xs {
		if err := p.Register(a, q, x.fd); err != nil {
			t.Fatalf("Register queue %d: %v", q, err)
		}
	}
	if err := p.Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	tap := openTap(t, a)
	const n = 8
	sendFrames(t, idx(pr.b), n)
	got := waitReceived(xs, n)
	if got != n {
		t.Fatalf("sockets received %d frames, want %d", got, n)
	}
	if d := tapCount(t, tap); d != 0 {
		t.Errorf("%d frames reached the host stack", d)
	}
}

// waitReceived polls the rx rings for up to two seconds.
func waitReceived(xs []*testXSK, want uint32) uint32 {
	var got uint32
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = 0
		for _, x := range xs {
			got += x.received()
		}
		if got >= want {
			break
		}
	}
	return got
}

// BenchmarkVerdict is xvr_pod's cost per frame in the kernel, socket
// lookup included (BPF_PROG_TEST_RUN, so nothing is delivered).
func BenchmarkVerdict(b *testing.B) {
	pr := newPair(b)
	p := mustLoad(b)
	a := idx(pr.a)
	if err := p.Register(a, 0, openXSK(b, a, 0)); err != nil {
		b.Fatalf("Register: %v", err)
	}
	frame := make([]byte, 64)
	ctx := xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(a)}
	b.ReportAllocs()
	b.ResetTimer()
	ret, err := p.objs.XvrPod.Run(&ebpf.RunOptions{Data: frame, Context: ctx, Repeat: uint32(b.N)})
	b.StopTimer()
	if err != nil || ret != xdpRedirect {
		b.Fatalf("run: %d %v", ret, err)
	}
}

// veth refuses native XDP under a jumbo peer MTU; the error must say why and
// Attach must not silently fall back to generic mode.
func TestAttachJumboMTU(t *testing.T) {
	pr := newPair(t)
	p := mustLoad(t)
	if err := netlink.LinkSetMTU(pr.b, 9000); err != nil {
		t.Fatalf("setting peer MTU: %v", err)
	}
	err := p.Attach(idx(pr.a))
	if err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Fatalf("Attach under MTU 9000 = %v, want an error about the MTU", err)
	}
	if m := p.Mode(idx(pr.a)); m != ModeNone {
		t.Fatalf("mode = %v, want none", m)
	}
	wantAttached(t, idx(pr.a), 0, "")
}
