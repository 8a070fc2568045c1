package agent

import (
	"errors"
	"slices"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/xdpprog"
)

// fakeShortcut records what the agent last set.
type fakeShortcut struct {
	ports []xdpprog.ShortcutPort
	dests []xdpprog.ShortcutDest
	sets  int
	err   error
	// targets are the devices the kernel takes redirected frames for.
	targets map[int]bool
}

func (f *fakeShortcut) RedirectTarget(ifindex int) (bool, error) { return f.targets[ifindex], nil }

func (f *fakeShortcut) SetShortcuts(ports []xdpprog.ShortcutPort, dests []xdpprog.ShortcutDest) error {
	f.ports, f.dests = ports, dests
	f.sets++
	return f.err
}

func (f *fakeShortcut) ShortcutCount(ifindex int) (uint64, uint64, error) {
	return uint64(ifindex), 64 * uint64(ifindex), nil
}

func (f *fakeShortcut) portIfindexes() []int {
	var out []int
	for _, p := range f.ports {
		out = append(out, p.Ifindex)
	}
	slices.Sort(out)
	return out
}

func (f *fakeShortcut) destIfindexes() []int {
	var out []int
	for _, d := range f.dests {
		out = append(out, d.Ifindex)
	}
	slices.Sort(out)
	return out
}

// The shortcut follows the ports as they come up, their GRO, and policy.
func TestShortcutFollowsPorts(t *testing.T) {
	r := policyRig(t, newMemStore())
	sc := &fakeShortcut{targets: map[int]bool{10: true, 11: true}}
	r.a.cfg.Shortcut = sc
	r.a.Reconcile(ctx)
	if got := sc.portIfindexes(); !slices.Equal(got, []int{10, 11, 12}) {
		t.Fatalf("shortcut ports %v, want every port's device 10 11 12", got)
	}
	if got := sc.destIfindexes(); !slices.Equal(got, []int{10, 11}) {
		t.Fatalf("shortcut destinations %v, want the redirect targets 10 11 (not hand's 12)", got)
	}
	d := sc.dests[0]
	if sc.dests[1].Ifindex == 10 {
		d = sc.dests[1]
	}
	if d.Addr != [4]byte{198, 18, 10, 1} || d.VRF != 1 || sc.ports[0].RouterMAC != [6]byte{2, 0x78, 0x76, 0x72, 0, 1} {
		t.Fatalf("destination %+v, port %+v", d, sc.ports[0])
	}
	vifs := r.a.Vifs(ctx)
	if len(vifs) != 3 || vifs[0].ShortcutPackets != 10 || vifs[0].ShortcutBytes != 640 {
		t.Fatalf("vifs %+v, want the shortcut's counts of device 10 on vif 1", vifs)
	}

	setPolicies(t, r, api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{entryFor("a", "", ingressOnly("web"))}})
	if got, dests := sc.portIfindexes(), sc.destIfindexes(); !slices.Equal(got, []int{12}) || len(dests) != 0 {
		t.Fatalf("enforcing (every pod policed): ports %v dests %v, want only the hand-made port's 12 and no destination", got, dests)
	}
	setPolicies(t, r, api.Policies{})
	if got := sc.destIfindexes(); !slices.Equal(got, []int{10, 11}) {
		t.Fatalf("policy gone: destinations %v, want 10 11 again", got)
	}
	if err := r.a.DeletePort(ctx, "cb/eth0"); err != nil {
		t.Fatal(err)
	}
	if got := sc.destIfindexes(); !slices.Equal(got, []int{10}) {
		t.Fatalf("port deleted: destinations %v, want 10", got)
	}
	// A pod that turns its GRO off is no destination from the next
	// reconcile on.
	sc.targets[10] = false
	r.a.Reconcile(ctx)
	if got := sc.destIfindexes(); len(got) != 0 {
		t.Fatalf("device 10 no redirect target: destinations %v, want none", got)
	}
	// A failed update is logged; the agent goes on and tries again next time.
	sc.err = errors.New("map full")
	n := sc.sets
	if _, err := r.a.ApplyPort(ctx, podPort("cb/eth0", "veth-b", "198.18.10.2", "b", "")); err != nil {
		t.Fatal(err)
	}
	if sc.sets <= n {
		t.Fatal("no shortcut update after a port came back")
	}
}
