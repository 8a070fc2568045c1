package agent

import (
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// hostRig is a rig whose default network is vn-left-1 and whose links know
// the host interface's xvr end.
func hostRig(t *testing.T, store *memStore) *rig {
	t.Helper()
	r := &rig{store: store, links: fakeLinks{"veth-a": 10, "xvr-net": 12}, att: &fakeAttacher{attached: map[int]bool{}},
		pl: &fakePoller{open: map[uint32]int{}}, cur: new(dataplane.Current)}
	a, err := New(Config{Store: store, Links: r.links, Attacher: r.att, Pollers: []Poller{r.pl}, Current: r.cur,
		MAC: net.HardwareAddr{2, 0x78, 0x76, 0x72, 0, 1}, DefaultNetwork: "default/vn-left-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

var hostPort = HostPort{IfName: "xvr-net", Peer: "xvr-host", MAC: "02:00:00:00:00:40"}

// TestHostPort: the host port takes the default network's highest free
// address, sends the network's 0.0.0.0/0 to the kernel, gives host-access
// VNs a route to it, survives a reload, and no API call can take or delete
// it.
func TestHostPort(t *testing.T) {
	store := newMemStore()
	r := hostRig(t, store)
	if _, err := r.a.ApplyHost(ctx, hostPort); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("ApplyHost before the default network: %v, want 404", err)
	}
	green := api.Network{Namespace: "default", Name: "vn-green", CIDR: "198.18.12.0/24", HostAccess: true}
	for _, n := range []api.Network{left(), green} {
		if _, err := r.a.ApplyNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	p, err := r.a.ApplyHost(ctx, hostPort)
	if err != nil || p.IP != "198.18.10.252" || p.State != "up" {
		t.Fatalf("ApplyHost = %+v, %v; want 198.18.10.252 up", p, err)
	}
	if q, err := r.a.ApplyPort(ctx, portA()); err != nil || q.IP != "198.18.10.1" {
		t.Fatalf("pod port next to the host port: %+v, %v", q, err)
	}
	check := func(a *Agent) {
		t.Helper()
		s := r.cur.Load()
		if !s.Host.Valid || s.Host.IP != [4]byte{198, 18, 10, 252} || len(s.Host.VRFs) != 1 {
			t.Fatalf("snapshot host %+v", s.Host)
		}
		n := s.NextHops[s.Host.NH]
		if n.Type != dataplane.NHEncap || n.Vif != s.Host.Vif || n.DstMAC != [6]byte{2, 0, 0, 0, 0, 0x40} {
			t.Fatalf("host next hop %+v", n)
		}
		def, _ := a.tables.Get(s.Host.VRF).Lookup(netip.MustParseAddr("198.18.200.9").As4())
		toHost, _ := a.tables.Get(s.Host.VRFs[0]).Lookup(netip.MustParseAddr("198.18.10.252").As4())
		if def != s.Host.NH || toHost != s.Host.NH {
			t.Fatalf("default network 0.0.0.0/0 -> nh %d, vn-green's route to the host -> nh %d; want %d", def, toHost, s.Host.NH)
		}
	}
	check(r.a)
	if _, err := r.a.ApplyPort(ctx, api.Port{ID: HostPortID, Network: "default/vn-left-1", HostIfName: "veth-a"}); api.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("ApplyPort(host) = %v, want 400", err)
	}
	if err := r.a.DeletePort(ctx, HostPortID); api.StatusOf(err) != http.StatusConflict {
		t.Fatalf("DeletePort(host) = %v, want 409", err)
	}
	// A restart restores it all from the store.
	r2 := hostRig(t, store)
	r.cur = r2.cur
	check(r2.a)
	if p2, err := r2.a.ApplyHost(ctx, hostPort); err != nil || p2.IP != p.IP || p2.Vif != p.Vif {
		t.Fatalf("ApplyHost after the restart = %+v, %v; want %s on vif %d", p2, err, p.IP, p.Vif)
	}
}
