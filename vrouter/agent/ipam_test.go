package agent

import (
	"context"
	"net/http"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
)

func cniPort(container, ifname, network, hostIf string, index int) api.Port {
	return api.Port{ID: container + "/" + ifname, Network: network, HostIfName: hostIf, ContainerID: container,
		IfName: ifname, Index: index, Pod: &api.PodRef{Namespace: "default", Name: "web"}}
}

func TestIPAM(t *testing.T) {
	r := newRig(t, newMemStore())
	r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "tiny", CIDR: "198.18.50.0/29"}) // .1-.6 hosts; .6 gw, .5 dns
	var ips []string
	for i, c := range []string{"c1", "c2", "c3", "c4"} {
		p, err := r.a.ApplyPort(ctx, cniPort(c, "eth0", "default/tiny", "v"+c, 0))
		if err != nil {
			t.Fatalf("port %d: %v", i, err)
		}
		ips = append(ips, p.IP)
		if p.MAC == "" || p.MAC[:3] != "02:" || p.PrefixLen != 29 || p.Gateway != "198.18.50.6" {
			t.Fatalf("port %+v", p)
		}
	}
	if want := []string{"198.18.50.1", "198.18.50.2", "198.18.50.3", "198.18.50.4"}; !equal(ips, want) {
		t.Fatalf("allocated %v, want %v", ips, want)
	}
	_, err := r.a.ApplyPort(ctx, cniPort("c5", "eth0", "default/tiny", "vc5", 0))
	wantStatus(t, err, http.StatusConflict) // no free address
	again, err := r.a.ApplyPort(ctx, cniPort("c2", "eth0", "default/tiny", "vc2", 0))
	if err != nil || again.IP != "198.18.50.2" {
		t.Fatalf("re-apply changed the address: %+v %v", again, err)
	}
	if err := r.a.DeletePort(ctx, "c2/eth0"); err != nil {
		t.Fatal(err)
	}
	p, err := r.a.ApplyPort(ctx, cniPort("c6", "eth0", "default/tiny", "vc6", 0))
	if err != nil || p.IP != "198.18.50.2" {
		t.Fatalf("freed address not reused: %+v %v", p, err)
	}
	static := cniPort("c7", "eth0", "default/tiny", "vc7", 0)
	static.IP = "198.18.50.3" // taken
	_, err = r.a.ApplyPort(ctx, static)
	wantStatus(t, err, http.StatusConflict)
}

func TestPodsStatusAndGC(t *testing.T) {
	st := newMemStore()
	r := newRig(t, st)
	r.a.cfg.DefaultNetwork = "default/cluster-wide-default"
	r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "cluster-wide-default", CIDR: "198.18.100.0/24"})
	r.a.ApplyNetwork(ctx, left())
	wantStatus(t, r.a.DeleteNetwork(ctx, "default", "cluster-wide-default"), http.StatusConflict)
	pod := api.Pod{Namespace: "default", Name: "web", UID: "u1", Annotations: map[string]string{api.NetworksAnnotation: "vn-left-1"}}
	if _, err := r.a.ApplyPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// An old sandbox and a new one; the status shows the new one, eth0 first.
	r.a.ApplyPort(ctx, cniPort("old", "eth0", "default/cluster-wide-default", "vold0", 0))
	r.a.ApplyPort(ctx, cniPort("new", "eth1", "default/vn-left-1", "vnew1", 1))
	r.a.ApplyPort(ctx, cniPort("new", "eth0", "default/cluster-wide-default", "vnew0", 0))
	ns, err := r.a.PodNetworkStatus(ctx, "default", "web")
	if err != nil || len(ns) != 2 || ns[0].Interface != "eth0" || !ns[0].Default || ns[1].Name != "default/vn-left-1" || ns[1].Default {
		t.Fatalf("network-status %+v %v", ns, err)
	}
	// The runtime lists the attachment it made (eth0): the sandbox keeps eth1 too.
	res, err := r.a.GC(ctx, api.GCRequest{ValidAttachments: []api.Attachment{{ContainerID: "new", IfName: "eth0"}}})
	if err != nil || len(res.Removed) != 1 || res.Removed[0] != "old/eth0" {
		t.Fatalf("gc %+v %v", res, err)
	}
	if _, err := r.a.GetPort(ctx, "new/eth1"); err != nil {
		t.Fatalf("gc removed a valid sandbox's eth1: %v", err)
	}
	r2 := newRig(t, st) // pods survive a restart
	if p, err := r2.a.GetPod(ctx, "default", "web"); err != nil || p.Annotations[api.NetworksAnnotation] != "vn-left-1" {
		t.Fatalf("restored pod %+v %v", p, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var _ = context.Background
