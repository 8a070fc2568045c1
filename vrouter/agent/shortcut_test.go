package agent

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/xvr-project/xvr/encap"
	"github.com/xvr-project/xvr/vrouter/dataplane"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/xdpprog"
)

// fakeShortcut records what the agent last set.
type fakeShortcut struct {
	ports  []xdpprog.ShortcutPort
	dests  []xdpprog.ShortcutDest
	labels []xdpprog.ShortcutLabel
	sets   int
	err    error
	// targets are the devices the kernel takes redirected frames for.
	targets map[int]bool
}

func (f *fakeShortcut) RedirectTarget(ifindex int) (bool, error) { return f.targets[ifindex], nil }

func (f *fakeShortcut) SetShortcuts(ports []xdpprog.ShortcutPort, dests []xdpprog.ShortcutDest, labels []xdpprog.ShortcutLabel) error {
	f.ports, f.dests, f.labels = ports, dests, labels
	f.sets++
	return f.err
}

func (f *fakeShortcut) ShortcutCount(ifindex int) (uint64, uint64, error) {
	return uint64(ifindex), 64 * uint64(ifindex), nil
}

func (f *fakeShortcut) FabricShortcutCount() (uint64, uint64, error) { return 7, 700, nil }

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

type fakeFabricProg struct{}

func (fakeFabricProg) Attach(int) error                { return nil }
func (fakeFabricProg) Register(int, int, int) error    { return nil }
func (fakeFabricProg) Unregister(int, int) error       { return nil }
func (fakeFabricProg) AddPrefix(netip.Prefix) error    { return nil }
func (fakeFabricProg) DeletePrefix(netip.Prefix) error { return nil }

type fakeNeighbors struct{}

func (fakeNeighbors) Resolve(netip.Addr) (net.HardwareAddr, bool, error) {
	return net.HardwareAddr{2, 0xee, 0, 0, 0, 2}, true, nil
}
func (fakeNeighbors) DefaultGateway() (netip.Addr, bool) { return netip.Addr{}, false }

// Pods on other nodes are reached through the fabric NIC, encapsulated as
// the tunnel's next hop says, once the NIC takes redirected frames; the
// fabric's labels decapsulate into the VN.
func TestShortcutToOtherNodes(t *testing.T) {
	store := newMemStore()
	r := &rig{store: store, links: fakeLinks{"veth-a": 10, "veth-b": 11, "fab0": 20}, att: &fakeAttacher{attached: map[int]bool{}},
		pl: &fakePoller{open: map[uint32]int{}}, cur: new(dataplane.Current)}
	sc := &fakeShortcut{targets: map[int]bool{10: true, 11: true}}
	a, err := New(Config{Store: store, Links: r.links, Attacher: r.att, Pollers: []Poller{r.pl}, Current: r.cur,
		MAC: net.HardwareAddr{2, 0x78, 0x76, 0x72, 0, 1}, Shortcut: sc,
		Fabric: &FabricConfig{IfName: "fab0", NodeIP: netip.MustParseAddr("198.18.0.1"), MTU: 1600,
			Encap: []encap.Kind{encap.VXLAN}, Program: fakeFabricProg{}, Neighbors: fakeNeighbors{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r.a = a
	n, err := a.ApplyNetwork(ctx, left())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyPort(ctx, portA()); err != nil {
		t.Fatal(err)
	}
	_, err = a.ApplyRoute(ctx, api.Route{Network: "default/vn-left-1", Prefix: "198.18.10.9/32",
		NextHop: api.RouteNextHop{Type: "tunnel", Node: "198.18.0.2", VNI: 77, Encaps: []string{"VXLAN"}}})
	if err != nil {
		t.Fatal(err)
	}
	remote := func() []xdpprog.ShortcutDest {
		var out []xdpprog.ShortcutDest
		for _, d := range sc.dests {
			if d.Kind != xdpprog.ShortLocal {
				out = append(out, d)
			}
		}
		return out
	}
	if got := remote(); len(got) != 0 {
		t.Fatalf("fabric NIC no redirect target: remote destinations %+v, want none", got)
	}
	sc.targets[20] = true
	a.Reconcile(ctx)
	got := remote()
	want := xdpprog.ShortcutDest{VRF: n.VRF, Addr: [4]byte{198, 18, 10, 9}, Kind: xdpprog.ShortVXLAN, Ifindex: 20,
		MAC: [6]byte{2, 0xee, 0, 0, 0, 2}, SrcMAC: [6]byte{2, 0xfa, 0, 0, 0, 20}, MTU: 1600,
		Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}, Label: 77, InnerMAC: [6]byte{2, 0x78, 0x76, 0x72, 0, 1}}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("remote destinations %+v, want %+v", got, want)
	}
	// A route learned while the NIC is a target is taken at once (the
	// table gets it after the snapshot that holds its next hop).
	_, err = a.ApplyRoute(ctx, api.Route{Network: "default/vn-left-1", Prefix: "198.18.10.8/32",
		NextHop: api.RouteNextHop{Type: "tunnel", Node: "198.18.0.2", VNI: 77, Encaps: []string{"VXLAN"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := remote(); len(got) != 2 {
		t.Fatalf("after a second route: remote destinations %+v, want 2", got)
	}
	labels := map[xdpprog.ShortcutKind]uint32{}
	for _, l := range sc.labels {
		if l.VRF == n.VRF {
			labels[l.Kind] = l.Label
		}
	}
	if labels[xdpprog.ShortMPLSoUDP] != n.Label || labels[xdpprog.ShortVXLAN] != n.VNI {
		t.Fatalf("labels %+v, want the VN's label %d and VNI %d", sc.labels, n.Label, n.VNI)
	}
	fabricSeen := false
	for _, v := range a.Vifs(ctx) {
		if v.Type == "fabric" {
			fabricSeen = true
			if v.ShortcutPackets != 7 || v.ShortcutBytes != 700 {
				t.Fatalf("fabric vif %+v, want the fabric shortcut's counts", v)
			}
		}
	}
	if !fabricSeen {
		t.Fatal("no fabric vif listed")
	}
}
