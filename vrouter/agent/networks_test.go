package agent

import (
	"net/http"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/vrouter/api"
)

// TestNetworkPrefixRange: PUT /v1/networks refuses VN prefixes shorter than
// /8 and prefixes that are not unicast, with a 400 that says why, and
// creates nothing; the project's test ranges are accepted.
func TestNetworkPrefixRange(t *testing.T) {
	r := newRig(t, newMemStore())
	for i, cidr := range []string{"198.18.0.0/15", "198.19.0.0/16", "10.0.0.0/8", "198.18.50.0/29"} {
		n, err := r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "ok-" + string(rune('a'+i)), CIDR: cidr})
		if err != nil || n.CIDR != cidr {
			t.Errorf("cidr %s: %+v, %v; want accepted", cidr, n, err)
		}
	}
	accepted := len(r.a.ListNetworks(ctx))
	bad := []struct{ cidr, want string }{
		{"0.0.0.0/0", "cidr 0.0.0.0/0 is shorter than /8"},
		{"192.0.0.0/2", "cidr 192.0.0.0/2 is shorter than /8"},
		{"198.18.0.0/7", "cidr 198.18.0.0/7 is shorter than /8"},
		{"0.0.0.0/8", "cidr 0.0.0.0/8 is in 0.0.0.0/8 (this network)"},
		{"127.0.0.0/8", "cidr 127.0.0.0/8 is in 127.0.0.0/8 (loopback)"},
		{"127.1.2.0/24", "cidr 127.1.2.0/24 is in 127.0.0.0/8 (loopback)"},
		{"224.0.0.0/4", "cidr 224.0.0.0/4 is shorter than /8"},
		{"232.1.0.0/16", "cidr 232.1.0.0/16 is in 224.0.0.0/4 (multicast)"},
		{"240.0.0.0/8", "cidr 240.0.0.0/8 is in 240.0.0.0/4 (reserved, up to the 255.255.255.255 broadcast)"},
		{"255.255.255.0/24", "cidr 255.255.255.0/24 is in 240.0.0.0/4 (reserved, up to the 255.255.255.255 broadcast)"},
		{"255.255.255.255/32", "too small"},
	}
	for _, tt := range bad {
		_, err := r.a.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "bad", CIDR: tt.cidr})
		if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("cidr %s: %v (status %d); want 400 containing %q", tt.cidr, err, api.StatusOf(err), tt.want)
		}
	}
	if got := len(r.a.ListNetworks(ctx)); got != accepted {
		t.Errorf("%d networks after the refused ones, want %d", got, accepted)
	}
}
