package agent

import (
	"strings"
	"testing"

	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// countingPoller is a fakePoller that counts the sockets opened on it.
type countingPoller struct {
	*fakePoller
	adds int
}

func (p *countingPoller) AddPort(vif uint32, ifindex, q int, s *dataplane.VifStats) error {
	p.adds++
	return p.fakePoller.AddPort(vif, ifindex, q, s)
}

// newCountingRig is newRig whose poller counts AddPort calls.
func newCountingRig(t *testing.T) (*rig, *countingPoller) {
	t.Helper()
	r := newRig(t, newMemStore())
	cp := &countingPoller{fakePoller: r.pl}
	r.a.cfg.Pollers = []Poller{cp}
	if _, err := r.a.ApplyNetwork(ctx, left()); err != nil {
		t.Fatal(err)
	}
	return r, cp
}

// wantOpenOn checks that port A (vif 1) is up with its socket and the XDP
// program on ifindex, and nothing left on the ifindexes in gone.
func wantOpenOn(t *testing.T, r *rig, ifindex int, gone ...int) {
	t.Helper()
	p, err := r.a.GetPort(ctx, portA().ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "up" || r.pl.open[1] != ifindex || !r.att.attached[ifindex] {
		t.Fatalf("port state %q, socket on ifindex %d, program on %d: %v; want up, socket and program on %d",
			p.State, r.pl.open[1], ifindex, r.att.attached[ifindex], ifindex)
	}
	for _, g := range gone {
		if r.att.attached[g] {
			t.Fatalf("program still attached to the old ifindex %d", g)
		}
	}
}

// wantDown checks that port A is down with no socket open.
func wantDown(t *testing.T, r *rig) {
	t.Helper()
	p, _ := r.a.GetPort(ctx, portA().ID)
	if !strings.HasPrefix(p.State, "down: ") || len(r.pl.open) != 0 {
		t.Fatalf("port state %q with sockets %v; want down and none", p.State, r.pl.open)
	}
}

// TestReapplyUnchangedPortOverRecreatedVeth: the CNI re-applies a port with
// the same spec after the host veth was deleted and made again (a new
// ifindex): the port must be reopened on the new device, not report "up"
// with its socket on the old one.
func TestReapplyUnchangedPortOverRecreatedVeth(t *testing.T) {
	r, cp := newCountingRig(t)
	if _, err := r.a.ApplyPort(ctx, portA()); err != nil {
		t.Fatal(err)
	}
	wantOpenOn(t, r, 10)
	if _, err := r.a.ApplyPort(ctx, portA()); err != nil || cp.adds != 1 {
		t.Fatalf("re-apply over the same device: %v, %d sockets opened; want 1 (no reopen)", err, cp.adds)
	}

	r.links["veth-a"] = 20 // veth deleted and recreated
	p, err := r.a.ApplyPort(ctx, portA())
	if err != nil || p.State != "up" || p.Vif != 1 {
		t.Fatalf("re-apply over the new veth: %+v, %v", p, err)
	}
	wantOpenOn(t, r, 20, 10)

	delete(r.links, "veth-a") // veth deleted, not yet back
	if p, err = r.a.ApplyPort(ctx, portA()); err != nil || !strings.HasPrefix(p.State, "down: ") {
		t.Fatalf("re-apply without the device: %+v, %v; want down", p, err)
	}
	wantDown(t, r)

	r.links["veth-a"] = 30
	if p, err = r.a.ApplyPort(ctx, portA()); err != nil || p.State != "up" {
		t.Fatalf("re-apply once the device is back: %+v, %v", p, err)
	}
	wantOpenOn(t, r, 30, 20)
}

// TestReconcileReopensPortOnNewIfindex: Reconcile notices that a port's
// device was replaced (or removed) under it and reopens it.
func TestReconcileReopensPortOnNewIfindex(t *testing.T) {
	r, cp := newCountingRig(t)
	if _, err := r.a.ApplyPort(ctx, portA()); err != nil {
		t.Fatal(err)
	}
	r.a.Reconcile(ctx)
	if cp.adds != 1 {
		t.Fatalf("reconcile of an unchanged port opened %d sockets in all; want 1", cp.adds)
	}
	r.links["veth-a"] = 21
	r.a.Reconcile(ctx)
	wantOpenOn(t, r, 21, 10)

	delete(r.links, "veth-a")
	r.a.Reconcile(ctx)
	wantDown(t, r)

	r.links["veth-a"] = 22
	r.a.Reconcile(ctx)
	wantOpenOn(t, r, 22, 21)
}
