package dataplane

import (
	"errors"
	"testing"

	"github.com/xvr-project/xvr/vrouter/afxdp/xdptest"
)

// TestPollerUmemGroups: a poller that may make UMEMs puts sockets in as
// many as their fill rings need, copies frames between UMEMs (keeping both
// UMEMs' frames conserved), closes an emptied UMEM, and refuses a socket
// past MaxUmems.
func TestPollerUmemGroups(t *testing.T) {
	cur := new(Current)
	cur.Publish(testSnapshot(t))
	var umems []*xdptest.Umem
	b := &fakeBinder{reg: map[[2]int]int{}}
	first := xdptest.NewUmem(256, frameSize)
	umems = append(umems, first)
	p, err := newPoller(cur, groupOf(first), b)
	if err != nil {
		t.Fatal(err)
	}
	p.newGroup = func() (*group, error) {
		u := xdptest.NewUmem(256, frameSize)
		umems = append(umems, u)
		return groupOf(u), nil
	}
	p.FillTarget, p.MaxUmems = 64, 2 // two sockets per UMEM, two UMEMs
	var stats [8]VifStats
	for vif := uint32(1); vif <= 3; vif++ {
		if err := p.AddPort(vif, 10+int(vif), 0, &stats[vif]); err != nil {
			t.Fatalf("vif %d: %v", vif, err)
		}
	}
	if len(p.groups) != 2 || p.portOf(1).g == p.portOf(3).g {
		t.Fatalf("%d umems; vif 1 and 3 share one: %v", len(p.groups), p.portOf(1).g == p.portOf(3).g)
	}
	// Fill the second UMEM to its limit, then ask for a fifth socket.
	if err := p.AddPort(4, 14, 0, &stats[4]); err != nil {
		t.Fatal(err)
	}
	if err := p.AddPort(5, 15, 0, &stats[5]); !errors.Is(err, ErrPollerFull) {
		t.Fatalf("fifth socket with MaxUmems 2: %v", err)
	}
	// vif 1 -> vif 2 share the first UMEM: the descriptor moves.
	umems[0].Socket(11, 0).Inject(udpFrame(t, ipA, ipB, 64, 100))
	if n := p.round(); n != 1 {
		t.Fatalf("round got %d frames", n)
	}
	if got := umems[0].Socket(12, 0).Sent(); len(got) != 1 {
		t.Fatalf("same-UMEM forward: %d frames", len(got))
	}
	p.round() // completion
	// Emptying the second UMEM closes it; the first stays.
	for _, vif := range []uint32{3, 4} {
		if err := p.RemovePort(vif); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.groups) != 1 || umems[1].FreeFrames() != umems[1].Frames() {
		t.Fatalf("%d umems after emptying the second", len(p.groups))
	}
	checkGroupsConserved(t, p, umems)
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	for i, u := range umems {
		if err := u.Err(); err != nil || u.FreeFrames() != u.Frames() {
			t.Fatalf("umem %d: %v, %d of %d free", i, err, u.FreeFrames(), u.Frames())
		}
	}
}

// TestPollerCopiesAcrossUmems forwards between vifs in different UMEMs.
func TestPollerCopiesAcrossUmems(t *testing.T) {
	cur := new(Current)
	cur.Publish(testSnapshot(t))
	b := &fakeBinder{reg: map[[2]int]int{}}
	u0, u1 := xdptest.NewUmem(128, frameSize), xdptest.NewUmem(128, frameSize)
	p, err := newPoller(cur, groupOf(u0), b)
	if err != nil {
		t.Fatal(err)
	}
	made := false
	p.newGroup = func() (*group, error) { made = true; return groupOf(u1), nil }
	p.FillTarget = 64 // one socket per UMEM
	var stats [4]VifStats
	if err := p.AddPort(1, 11, 0, &stats[1]); err != nil {
		t.Fatal(err)
	}
	if err := p.AddPort(2, 12, 0, &stats[2]); err != nil || !made {
		t.Fatalf("second port: %v, new umem made: %v", err, made)
	}
	f := udpFrame(t, ipA, ipB, 64, 300)
	u0.Socket(11, 0).Inject(f)
	p.round()
	sent := u1.Socket(12, 0).Sent()
	if len(sent) != 1 || len(sent[0]) != len(f) {
		t.Fatalf("copied across umems: %d frames", len(sent))
	}
	checkForwarded(t, sent[0], len(f), macB)
	p.round() // completion
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	for i, u := range []*xdptest.Umem{u0, u1} {
		if err := u.Err(); err != nil || u.FreeFrames() != u.Frames() {
			t.Fatalf("umem %d: %v, %d of %d free", i, err, u.FreeFrames(), u.Frames())
		}
	}
}

func checkGroupsConserved(t *testing.T, p *Poller, umems []*xdptest.Umem) {
	t.Helper()
	for i, u := range umems {
		if err := u.Err(); err != nil {
			t.Fatalf("umem %d ownership: %v", i, err)
		}
	}
}
