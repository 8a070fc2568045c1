package controller

import (
	"strings"
	"testing"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

func TestPickVNI(t *testing.T) {
	tests := []struct {
		name  string
		start uint32
		used  []uint32
		want  uint32
	}{
		{"free", 7, nil, 7},
		{"probe", 7, []uint32{7, 8}, 9},
		{"wrap", nad.MaxVNI, []uint32{nad.MaxVNI}, 1},
		{"wrap past used", nad.MaxVNI - 1, []uint32{nad.MaxVNI - 1, nad.MaxVNI, 1}, 2},
		{"zero start", 0, nil, 1},
	}
	for _, tt := range tests {
		used := map[uint32]bool{}
		for _, u := range tt.used {
			used[u] = true
		}
		if got, err := pickVNI(tt.start, used); got != tt.want || err != nil {
			t.Errorf("%s: pickVNI = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

func TestNextSpec(t *testing.T) {
	have := v1alpha1.VirtualNetworkSpec{VNName: "v", Project: "p", CIDR: "198.18.1.0/24", VNI: 42}
	want := v1alpha1.VirtualNetworkSpec{VNName: "v", Project: "p", CIDR: "198.18.2.0/24", FabricSNAT: true}

	next, refused := nextSpec(have, want, 0)
	if next.CIDR != want.CIDR || !next.FabricSNAT || next.VNI != 42 || refused != "" {
		t.Errorf("unused: nextSpec = %+v, %q; want the new CIDR, VNI 42", next, refused)
	}
	next, refused = nextSpec(have, want, 2)
	if next.CIDR != have.CIDR || !next.FabricSNAT || next.VNI != 42 ||
		!strings.Contains(refused, "2 pod interfaces") || !strings.Contains(refused, "198.18.2.0/24") {
		t.Errorf("in use: nextSpec = %+v, %q; want the old CIDR, the new flags and a reason", next, refused)
	}
	toRef := v1alpha1.VirtualNetworkSpec{VNName: "v", Project: "p", Ref: &v1alpha1.NetworkRef{Domain: "d", Project: "q", Name: "w"}}
	if next, refused = nextSpec(have, toRef, 1); next.Ref != nil || next.CIDR != have.CIDR || refused == "" {
		t.Errorf("in use, to a reference: nextSpec = %+v, %q; want it refused", next, refused)
	}
	if next, _ = nextSpec(have, toRef, 0); next.Ref == nil || next.VNI != 0 || next.CIDR != "" {
		t.Errorf("unused, to a reference: nextSpec = %+v; want the reference, VNI 0", next)
	}
}

func TestUsageMessage(t *testing.T) {
	pod := func(name string) v1alpha1.InstanceIP {
		return v1alpha1.InstanceIP{Spec: v1alpha1.InstanceIPSpec{Pod: &v1alpha1.PodRef{Namespace: "default", Name: name}}}
	}
	u := usage{interfaces: []v1alpha1.InstanceIP{pod("a"), pod("a"), pod("b"), pod("c"), pod("d"),
		{Spec: v1alpha1.InstanceIPSpec{Port: "x/eth1", Node: "n1"}}}}
	got := u.message("default/vn")
	want := "network default/vn is still used by 6 pod interfaces (pod default/a, pod default/b, pod default/c, and 2 more); it is deleted once they are gone"
	if got != want {
		t.Errorf("message = %q\nwant      %q", got, want)
	}
	u = usage{refs: []v1alpha1.VirtualNetwork{{}}}
	u.refs[0].Namespace, u.refs[0].Name = "other", "alias"
	if got := u.message("default/vn"); !strings.Contains(got, "1 network referring to it (other/alias)") {
		t.Errorf("message = %q", got)
	}
}

func TestRequests(t *testing.T) {
	iip := &v1alpha1.InstanceIP{Spec: v1alpha1.InstanceIPSpec{Network: "default/target", Attachment: "other/alias"}}
	got := mapIIPToNADs(t.Context(), iip)
	if len(got) != 2 || got[0].String() != "default/target" || got[1].String() != "other/alias" {
		t.Errorf("mapIIPToNADs = %v", got)
	}
	iip.Spec = v1alpha1.InstanceIPSpec{Network: defaultKey.String(), Attachment: defaultKey.String()}
	if got := mapIIPToNADs(t.Context(), iip); len(got) != 0 {
		t.Errorf("mapIIPToNADs(default network) = %v, want none", got)
	}
	if got := mapIIPToDefault(t.Context(), iip); len(got) != 1 || got[0].NamespacedName != defaultKey {
		t.Errorf("mapIIPToDefault = %v", got)
	}
	for _, bad := range []string{"", "x", "/x", "x/"} {
		if _, ok := parseKey(bad); ok {
			t.Errorf("parseKey(%q) ok", bad)
		}
	}
}

func TestOptions(t *testing.T) {
	o := Options{}
	if err := o.validate(); err == nil {
		t.Error("validate without a default CIDR succeeded")
	}
	o.DefaultCIDR = testDefaultCIDR
	if err := o.validate(); err != nil || o.Cluster != nad.DefaultCluster || o.RetryInterval != DefaultRetryInterval {
		t.Errorf("validate = %v, %+v", err, o)
	}
}
