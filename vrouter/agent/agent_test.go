package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// memStore is an in-memory Store.
type memStore struct {
	mu     sync.Mutex
	nets   map[string]api.Network
	ports  map[string]api.Port
	routes map[string]api.Route
	pods   map[string]api.Pod
	pol    api.Policies
	puts   int // PutPolicies calls
	fail   error
}

func newMemStore() *memStore {
	return &memStore{nets: map[string]api.Network{}, ports: map[string]api.Port{}, routes: map[string]api.Route{}, pods: map[string]api.Pod{}}
}

func (s *memStore) PutNetwork(n api.Network) error { return s.put(func() { s.nets[n.Key()] = n }) }
func (s *memStore) DeleteNetwork(ns, name string) error {
	return s.put(func() { delete(s.nets, ns+"/"+name) })
}
func (s *memStore) PutPort(p api.Port) error   { return s.put(func() { s.ports[p.ID] = p }) }
func (s *memStore) DeletePort(id string) error { return s.put(func() { delete(s.ports, id) }) }
func (s *memStore) PutRoute(r api.Route) error {
	return s.put(func() { s.routes[routeKey(r.Network, r.Prefix)] = r })
}
func (s *memStore) DeleteRoute(n, p string) error {
	return s.put(func() { delete(s.routes, routeKey(n, p)) })
}
func (s *memStore) put(f func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	f()
	return nil
}
func (s *memStore) PutPod(p api.Pod) error { return s.put(func() { s.pods[p.Key()] = p }) }
func (s *memStore) DeletePod(ns, name string) error {
	return s.put(func() { delete(s.pods, ns+"/"+name) })
}
func (s *memStore) PutPolicies(p api.Policies) error {
	return s.put(func() { s.pol, s.puts = p, s.puts+1 })
}
func (s *memStore) Policies() (api.Policies, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pol, nil
}
func (s *memStore) Pods() ([]api.Pod, error)         { return values(s.pods), nil }
func (s *memStore) Networks() ([]api.Network, error) { return values(s.nets), nil }
func (s *memStore) Ports() ([]api.Port, error)       { return values(s.ports), nil }
func (s *memStore) Routes() ([]api.Route, error)     { return values(s.routes), nil }

func values[V any](m map[string]V) []V {
	var out []V
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

type fakeLinks map[string]int

func (l fakeLinks) Lookup(name string) (int, int, error) {
	if i, ok := l[name]; ok {
		return i, 1, nil
	}
	return 0, 0, errors.New("link not found")
}

func (l fakeLinks) MAC(name string) (net.HardwareAddr, error) {
	if _, ok := l[name]; ok {
		return net.HardwareAddr{2, 0xfa, 0, 0, 0, byte(l[name])}, nil
	}
	return nil, errors.New("link not found")
}

type fakeAttacher struct{ attached map[int]bool }

func (f *fakeAttacher) Attach(i int) error { f.attached[i] = true; return nil }
func (f *fakeAttacher) Detach(i int) error { delete(f.attached, i); return nil }

type fakePoller struct {
	open  map[uint32]int
	drops dataplane.DropStats
}

func (p *fakePoller) Do(_ context.Context, fn func() error) error { return fn() }
func (p *fakePoller) AddPort(vif uint32, ifindex, q int, _ *dataplane.VifStats) error {
	p.open[vif] = ifindex
	return nil
}
func (p *fakePoller) AddPortWith(vif uint32, ifindex, q int, s *dataplane.VifStats, _ dataplane.Binder) error {
	return p.AddPort(vif, ifindex, q, s)
}
func (p *fakePoller) RemovePort(vif uint32) error                                      { delete(p.open, vif); return nil }
func (p *fakePoller) DropStats() *dataplane.DropStats                                  { return &p.drops }
func (p *fakePoller) KernelDrops(context.Context, *[dataplane.NumReasons]uint64) error { return nil }

type rig struct {
	a     *Agent
	store *memStore
	links fakeLinks
	att   *fakeAttacher
	pl    *fakePoller
	cur   *dataplane.Current
}

func newRig(t *testing.T, store *memStore) *rig {
	r := &rig{store: store, links: fakeLinks{"veth-a": 10, "veth-b": 11}, att: &fakeAttacher{attached: map[int]bool{}},
		pl: &fakePoller{open: map[uint32]int{}}, cur: new(dataplane.Current)}
	a, err := New(Config{Store: store, Links: r.links, Attacher: r.att, Pollers: []Poller{r.pl}, Current: r.cur,
		MAC: net.HardwareAddr{2, 0x78, 0x76, 0x72, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

var ctx = context.Background()

func left() api.Network {
	return api.Network{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24"}
}

func portA() api.Port {
	return api.Port{ID: "c1/eth0", Network: "default/vn-left-1", HostIfName: "veth-a", IP: "198.18.10.1", MAC: "02:00:00:00:00:01"}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	if api.StatusOf(err) != status {
		t.Fatalf("error %v: status %d, want %d", err, api.StatusOf(err), status)
	}
}

func TestNetworks(t *testing.T) {
	r := newRig(t, newMemStore())
	n, err := r.a.ApplyNetwork(ctx, left())
	if err != nil {
		t.Fatal(err)
	}
	if n.VNName != "k8s-vn-left-1-pod-network" || n.Project != "k8s-default" || n.VRF != 1 ||
		n.Gateway != "198.18.10.254" || n.DNS != "198.18.10.253" {
		t.Fatalf("network %+v", n)
	}
	if again, err := r.a.ApplyNetwork(ctx, left()); err != nil || again != n {
		t.Fatalf("re-apply: %+v %v", again, err)
	}
	bad := left()
	bad.CIDR = "2001:db8::/64"
	_, err = r.a.ApplyNetwork(ctx, bad)
	wantStatus(t, err, http.StatusBadRequest)
	ref := api.Network{Namespace: "other", Name: "alias", Ref: &api.NetworkRef{Domain: "default-domain", Project: "k8s-default", Name: "k8s-vn-left-1-pod-network"}}
	got, err := r.a.ApplyNetwork(ctx, ref)
	if err != nil || got.VRF != n.VRF {
		t.Fatalf("reference: %+v %v", got, err)
	}
	ref.Ref.Name = "nope"
	ref.Name = "alias2"
	_, err = r.a.ApplyNetwork(ctx, ref)
	wantStatus(t, err, http.StatusUnprocessableEntity)
	wantStatus(t, r.a.DeleteNetwork(ctx, "default", "vn-left-1"), http.StatusConflict) // referenced
	if err := r.a.DeleteNetwork(ctx, "other", "alias"); err != nil {
		t.Fatal(err)
	}
	if err := r.a.DeleteNetwork(ctx, "default", "vn-left-1"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r.a.DeleteNetwork(ctx, "default", "vn-left-1"), http.StatusNotFound)
}

func TestPorts(t *testing.T) {
	r := newRig(t, newMemStore())
	r.a.ApplyNetwork(ctx, left())
	p, err := r.a.ApplyPort(ctx, portA())
	if err != nil || p.State != "up" || p.Vif != 1 {
		t.Fatalf("port %+v %v", p, err)
	}
	if !r.att.attached[10] || r.pl.open[1] != 10 {
		t.Fatal("port not attached and opened")
	}
	s := r.cur.Load()
	if !s.Vifs[1].Valid || s.NextHops[2].Vif != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	if nh, ok := s.VRFs[1].Table.Lookup([4]byte{198, 18, 10, 1}); !ok || nh != 2 {
		t.Fatalf("route to the port: %d %v", nh, ok)
	}
	cases := []struct {
		mod    func(p *api.Port)
		status int
	}{
		{func(p *api.Port) { p.IP = "198.18.11.1" }, http.StatusBadRequest},
		{func(p *api.Port) { p.IP = "198.18.10.254" }, http.StatusBadRequest},
		{func(p *api.Port) { p.IP = "198.18.10.255" }, http.StatusBadRequest},
		{func(p *api.Port) { p.MAC = "01:00:5e:00:00:01" }, http.StatusBadRequest},
		{func(p *api.Port) { p.Network = "default/none" }, http.StatusNotFound},
		{func(p *api.Port) { p.ID, p.HostIfName, p.MAC = "c2/eth0", "veth-b", "02:00:00:00:00:02" }, http.StatusConflict}, // same IP
		{func(p *api.Port) { p.ID, p.HostIfName, p.IP = "c2/eth0", "veth-b", "198.18.10.2" }, http.StatusConflict},        // same MAC
	}
	for i, c := range cases {
		in := portA()
		c.mod(&in)
		_, err := r.a.ApplyPort(ctx, in)
		if api.StatusOf(err) != c.status {
			t.Errorf("case %d: %v, want status %d", i, err, c.status)
		}
	}
	wantStatus(t, r.a.DeleteNetwork(ctx, "default", "vn-left-1"), http.StatusConflict)
	if err := r.a.DeletePort(ctx, "c1/eth0"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.cur.Load().VRFs[1].Table.Lookup([4]byte{198, 18, 10, 1}); ok || r.att.attached[10] || len(r.pl.open) != 0 {
		t.Fatal("deleted port left a route, a program or a socket")
	}
}

func TestPortDownThenReconciled(t *testing.T) {
	r := newRig(t, newMemStore())
	r.a.ApplyNetwork(ctx, left())
	in := portA()
	in.HostIfName = "veth-late"
	p, err := r.a.ApplyPort(ctx, in)
	if err != nil || p.State == "up" {
		t.Fatalf("port %+v %v", p, err)
	}
	r.links["veth-late"] = 12
	r.a.Reconcile(ctx)
	if p, _ := r.a.GetPort(ctx, in.ID); p.State != "up" {
		t.Fatalf("after reconcile: %q", p.State)
	}
}

func TestStoreFailureChangesNothing(t *testing.T) {
	st := newMemStore()
	r := newRig(t, st)
	st.fail = errors.New("disk full")
	_, err := r.a.ApplyNetwork(ctx, left())
	wantStatus(t, err, http.StatusInternalServerError)
	if len(r.a.ListNetworks(ctx)) != 0 {
		t.Fatal("network applied although the store refused it")
	}
}

func TestLoadRestoresIDs(t *testing.T) {
	st := newMemStore()
	r := newRig(t, st)
	r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "first", CIDR: "198.18.1.0/24"})
	r.a.ApplyNetwork(ctx, left())
	r.a.DeleteNetwork(ctx, "default", "first") // leaves a hole: vn-left-1 keeps VRF 2
	r.a.ApplyPort(ctx, portA())
	r.a.ApplyRoute(ctx, api.Route{Network: "default/vn-left-1", Prefix: "198.18.40.0/24", NextHop: api.RouteNextHop{Type: "port", Port: "c1/eth0"}})

	r2 := newRig(t, st)
	n, _ := r2.a.GetNetwork(ctx, "default", "vn-left-1")
	p, _ := r2.a.GetPort(ctx, "c1/eth0")
	if n.VRF != 2 || p.Vif != 1 || p.State != "up" {
		t.Fatalf("restored %+v %+v", n, p)
	}
	tbl := r2.cur.Load().VRFs[2].Table
	if _, ok := tbl.Lookup([4]byte{198, 18, 40, 9}); !ok {
		t.Fatal("static route not restored")
	}
	rt, err := r2.a.RouteTable(ctx, "default/vn-left-1")
	if err != nil || len(rt) != 4 {
		t.Fatalf("route table %+v %v", rt, err)
	}
	_ = netip.Addr{}
}
