package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
)

// book is a fake cluster address book: held maps network|ip to the port
// holding it; others' addresses are seeded by tests.
type book struct {
	mu       sync.Mutex
	held     map[string]string
	hidden   map[string]bool // held but not in the cache (Taken lies)
	down     bool
	claims   int
	released []string
}

func newBook() *book { return &book{held: map[string]string{}, hidden: map[string]bool{}} }

func bookKey(network string, ip netip.Addr) string { return network + "|" + ip.String() }

func (b *book) Claim(_ context.Context, c AddressClaim) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.claims++
	if b.down {
		return errors.New("connection refused")
	}
	k := bookKey(c.Network, c.IP)
	if h, ok := b.held[k]; ok && h != c.Port.ID {
		return fmt.Errorf("%s held by %s: %w", k, h, ErrAddressTaken)
	}
	b.held[k] = c.Port.ID
	return nil
}

func (b *book) Release(c AddressClaim) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := bookKey(c.Network, c.IP)
	if b.held[k] == c.Port.ID {
		delete(b.held, k)
	}
	b.released = append(b.released, k)
}

func (b *book) Taken(network string, ip netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := bookKey(network, ip)
	_, ok := b.held[k]
	return ok && !b.hidden[k]
}

func newBookRig(t *testing.T) (*rig, *book) {
	t.Helper()
	r := newRig(t, newMemStore())
	b := newBook()
	r.a.cfg.Addresses = b
	if _, err := r.a.ApplyNetwork(ctx, left()); err != nil {
		t.Fatal(err)
	}
	return r, b
}

func TestClaimSkipsClusterAddresses(t *testing.T) {
	r, b := newBookRig(t)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	b.held[bookKey("default/vn-left-1", ip("198.18.10.1"))] = "other-node/eth1" // in the cache
	b.held[bookKey("default/vn-left-1", ip("198.18.10.2"))] = "other-node/eth2" // not yet in the cache
	b.hidden[bookKey("default/vn-left-1", ip("198.18.10.2"))] = true
	p, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "default/vn-left-1", "veth-a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if p.IP != "198.18.10.3" {
		t.Fatalf("allocated %s, want 198.18.10.3 (.1 cached as taken, .2 refused by the cluster)", p.IP)
	}
	if b.claims != 2 {
		t.Fatalf("%d claims, want 2 (.2 refused, .3)", b.claims)
	}
	if got := b.held[bookKey("default/vn-left-1", ip("198.18.10.3"))]; got != "c1/eth1" {
		t.Fatalf(".3 held by %q", got)
	}
	// Re-applying the same port claims nothing new and keeps the address.
	again, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "default/vn-left-1", "veth-a", 1))
	if err != nil || again.IP != p.IP {
		t.Fatalf("re-apply: %+v %v", again, err)
	}
	// A requested address that another node holds is a conflict.
	static := cniPort("c2", "eth1", "default/vn-left-1", "veth-b", 1)
	static.IP = "198.18.10.1"
	_, err = r.a.ApplyPort(ctx, static)
	wantStatus(t, err, http.StatusConflict)
	if _, err := r.a.GetPort(ctx, "c2/eth1"); !api.IsNotFound(err) {
		t.Fatalf("refused port stored: %v", err)
	}
	// Delete releases the claim.
	if err := r.a.DeletePort(ctx, "c1/eth1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.held[bookKey("default/vn-left-1", ip("198.18.10.3"))]; ok {
		t.Fatal("delete did not release the claim")
	}
}

func TestClaimClusterUnreachable(t *testing.T) {
	r, b := newBookRig(t)
	b.down = true
	_, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "default/vn-left-1", "veth-a", 1))
	wantStatus(t, err, http.StatusServiceUnavailable)
	if ports := r.a.ListPorts(ctx); len(ports) != 0 {
		t.Fatalf("ports left after a failed claim: %+v", ports)
	}
	b.down = false
	p, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "default/vn-left-1", "veth-a", 1))
	if err != nil || p.IP != "198.18.10.1" {
		t.Fatalf("after the cluster is back: %+v %v", p, err)
	}
	// Delete works while the cluster is down; the release is the book's to retry.
	b.down = true
	if err := r.a.DeletePort(ctx, "c1/eth1"); err != nil {
		t.Fatalf("delete while the cluster is down: %v", err)
	}
	if len(b.released) != 1 {
		t.Fatalf("released %v", b.released)
	}
}

func TestClaimExhaustedByCluster(t *testing.T) {
	r := newRig(t, newMemStore())
	b := newBook()
	r.a.cfg.Addresses = b
	r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "tiny", CIDR: "198.18.50.0/29"}) // hosts .1-.4
	for i := 1; i <= 4; i++ {
		k := bookKey("default/tiny", netip.MustParseAddr(fmt.Sprintf("198.18.50.%d", i)))
		b.held[k], b.hidden[k] = "elsewhere", true
	}
	_, err := r.a.ApplyPort(ctx, cniPort("c1", "eth0", "default/tiny", "veth-a", 0))
	wantStatus(t, err, http.StatusConflict) // no free address left
	if b.claims != 4 {
		t.Fatalf("%d claims, want 4", b.claims)
	}
}

func TestLearnedRouteYieldsToLocalPort(t *testing.T) {
	r := newRig(t, newMemStore())
	r.a.ApplyNetwork(ctx, left())
	learned := api.Route{Network: "default/vn-left-1", Prefix: "198.18.10.1/32", Source: api.RouteSourceKube,
		NextHop: api.RouteNextHop{Type: api.NextHopDiscard}}
	if _, err := r.a.ApplyRoute(ctx, learned); err != nil {
		t.Fatal(err)
	}
	bad := learned
	bad.Source = "bgp"
	_, err := r.a.ApplyRoute(ctx, bad)
	wantStatus(t, err, http.StatusBadRequest)
	p, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "default/vn-left-1", "veth-a", 1))
	if err != nil || p.IP != "198.18.10.1" {
		t.Fatalf("port %+v %v", p, err)
	}
	if rs := r.a.ListRoutes(ctx); len(rs) != 0 {
		t.Fatalf("learned route for a local address kept: %+v", rs)
	}
	rt, _ := r.a.RouteTable(ctx, "default/vn-left-1")
	for _, e := range rt {
		if e.Prefix == "198.18.10.1/32" && e.Type != api.NextHopEncap {
			t.Fatalf("local address routed as %+v", e)
		}
	}
}

// TestClaimsOfPorts: a port on a reference network claims in its target's
// address space, with the target's label.
func TestClaimsOfPorts(t *testing.T) {
	r, _ := newBookRig(t)
	ref := api.Network{Namespace: "other", Name: "left-ref",
		Ref: &api.NetworkRef{Domain: "default-domain", Project: "k8s-default", Name: "k8s-vn-left-1-pod-network"}}
	if _, err := r.a.ApplyNetwork(ctx, ref); err != nil {
		t.Fatal(err)
	}
	p, err := r.a.ApplyPort(ctx, cniPort("c1", "eth1", "other/left-ref", "veth-a", 1))
	if err != nil {
		t.Fatal(err)
	}
	target, _ := r.a.GetNetwork(ctx, "default", "vn-left-1")
	cs := r.a.Claims()
	if len(cs) != 1 || cs[0].Network != "default/vn-left-1" || cs[0].IP.String() != p.IP || cs[0].Label != target.Label ||
		cs[0].Port.ID != "c1/eth1" || cs[0].Port.Network != "other/left-ref" {
		t.Fatalf("claims %+v, want the port's address in default/vn-left-1 with label %d", cs, target.Label)
	}
}
