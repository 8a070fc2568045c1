package agent

import (
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
)

// TestVifsShowNamespacedNetwork: two NADs named vn-left-1 in two
// namespaces are told apart in the vif list (network "namespace/name"),
// each with its Contrail VN name beside it.
func TestVifsShowNamespacedNetwork(t *testing.T) {
	r := newRig(t, newMemStore())
	other := api.Network{Namespace: "other", Name: "vn-left-1", CIDR: "198.18.11.0/24"}
	for _, n := range []api.Network{left(), other} {
		if _, err := r.a.ApplyNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	b := api.Port{ID: "c2/eth0", Network: "other/vn-left-1", HostIfName: "veth-b", IP: "198.18.11.1", MAC: "02:00:00:00:00:02"}
	for _, p := range []api.Port{portA(), b} {
		if _, err := r.a.ApplyPort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][2]string{"c1/eth0": {"default/vn-left-1", "k8s-vn-left-1-pod-network"},
		"c2/eth0": {"other/vn-left-1", "k8s-vn-left-1-pod-network"}}
	got := 0
	for _, v := range r.a.Vifs(ctx) {
		if w, ok := want[v.Port]; ok {
			got++
			if v.Network != w[0] || v.VN != w[1] {
				t.Errorf("vif %d (%s): network %q vn %q, want %q %q", v.ID, v.Port, v.Network, v.VN, w[0], w[1])
			}
		}
	}
	if got != 2 {
		t.Fatalf("%d of the 2 ports listed as vifs", got)
	}
}
