package cni

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

func TestParseSelectionForms(t *testing.T) {
	type nsi struct{ ns, name, ifname string }
	for _, tc := range []struct {
		in   string
		want []nsi
	}{
		{``, nil},
		{`  `, nil},
		{`vn-left-1`, []nsi{{"pods", "vn-left-1", ""}}},
		{`vn-left-1, other/vn-right-1`, []nsi{{"pods", "vn-left-1", ""}, {"other", "vn-right-1", ""}}},
		{`other/vn-x@net7`, []nsi{{"other", "vn-x", "net7"}}},
		{`[{"name":"vn-left-1"},{"name":"vn-right-1","namespace":"other"}]`,
			[]nsi{{"pods", "vn-left-1", ""}, {"other", "vn-right-1", ""}}},
		{`[{"name":"vn.dotted","interface":"data0"}]`, []nsi{{"pods", "vn.dotted", "data0"}}},
		{`[]`, []nsi{}},
	} {
		elems, err := ParseSelection(tc.in, "pods")
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		got := []nsi{}
		for _, e := range elems {
			got = append(got, nsi{e.Namespace, e.Name, e.InterfaceRequest})
		}
		if len(tc.want) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseSelectionErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[{"name":"a"}`, "not a JSON list"},
		{`{"name":"a"}`, "not a JSON list"},
		{`[null]`, "element 0 is null"},
		{`[{"name":""}]`, `network name ""`},
		{`[{"name":"A"}]`, `network name "A"`},
		{`[{"name":"a","namespace":"x/y"}]`, `namespace "x/y"`},
		{`a,,b`, `""`},
		{`a/b/c`, `not lower case`},
		{`/a`, "empty namespace"},
		{`a@`, "empty interface"},
		{`Upper`, "not lower case"},
		{`a@b@c`, "not lower case"},
	} {
		_, err := ParseSelection(tc.in, "pods")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func plan(t *testing.T, ann string) ([]Attachment, error) {
	t.Helper()
	elems, err := ParseSelection(ann, "pods")
	if err != nil {
		t.Fatalf("%q: %v", ann, err)
	}
	return Plan("default/cluster-wide-default", "eth0", elems)
}

func TestPlanNamesAndDefaultRoute(t *testing.T) {
	atts, err := plan(t, `[{"name":"a"},{"name":"b","interface":"eth1"},{"name":"c"},{"name":"d","interface":"data"}]`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, a := range atts {
		if a.Index != i {
			t.Fatalf("index %d at %d", a.Index, i)
		}
		got = append(got, a.Network+"="+a.IfName)
	}
	want := []string{"default/cluster-wide-default=eth0", "pods/a=eth2", "pods/b=eth1", "pods/c=eth3", "pods/d=data"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if !atts[0].DefaultRoute || atts[1].DefaultRoute {
		t.Fatal("default route not on eth0 alone")
	}
	if atts, _ := plan(t, ""); len(atts) != 1 || atts[0].IfName != "eth0" {
		t.Fatalf("no selection: %+v", atts)
	}
}

func TestPlanStaticRequests(t *testing.T) {
	atts, err := plan(t, `[{"name":"a","ips":["198.18.10.7/24"],"mac":"02:AA:bb:cc:dd:ee","default-route":["198.18.10.254"]},
		{"name":"b","ips":["198.18.20.9"]}]`)
	if err != nil {
		t.Fatal(err)
	}
	a, b := atts[1], atts[2]
	if a.IP != netip.MustParseAddr("198.18.10.7") || a.PrefixLen != 24 || a.MAC.String() != "02:aa:bb:cc:dd:ee" ||
		!a.DefaultRoute || a.Gateway != netip.MustParseAddr("198.18.10.254") {
		t.Fatalf("a: %+v", a)
	}
	if b.IP != netip.MustParseAddr("198.18.20.9") || b.PrefixLen != 0 || b.MAC != nil || b.DefaultRoute {
		t.Fatalf("b: %+v", b)
	}
	if atts[0].DefaultRoute {
		t.Fatal("eth0 kept the default route an element asked for")
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]`, `duplicate interface name "x"`},
		{`a@net1,b@net1`, `duplicate interface name "net1"`},
		{`[{"name":"a","interface":"eth0"}]`, `"eth0" is the default network's`},
		{`[{"name":"a","interface":"lo"}]`, "loopback"},
		{`[{"name":"a","interface":"sixteen-chars-xx"}]`, "longer than 15"},
		{`[{"name":"a","interface":"a/b"}]`, "contains"},
		{`[{"name":"a","interface":"a b"}]`, "contains"},
		{`[{"name":"a","interface":".."}]`, "is . or .."},
		{`[{"name":"a","ips":["fd00::1"]}]`, "not an IPv4 address"},
		{`[{"name":"a","ips":["1.2.3"]}]`, "not an IPv4 address"},
		{`[{"name":"a","ips":["224.0.0.1"]}]`, "not a unicast"},
		{`[{"name":"a","ips":["0.0.0.0"]}]`, "not a unicast"},
		{`[{"name":"a","ips":["1.2.3.4/0"]}]`, "prefix length 0"},
		{`[{"name":"a","ips":["198.18.10.1","198.18.10.2"]}]`, "one address per interface"},
		{`[{"name":"a","mac":"01:00:5e:00:00:01"}]`, "multicast"},
		{`[{"name":"a","mac":"00:00:00:00:00:00"}]`, "all zeros"},
		{`[{"name":"a","mac":"zz"}]`, "not an Ethernet MAC"},
		{`[{"name":"a","mac":"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}]`, "not an Ethernet MAC"},
		{`[{"name":"a","default-route":["fd00::1"]}]`, "not an IPv4"},
		{`[{"name":"a","default-route":["1.1.1.1","1.1.1.2"]}]`, "one gateway"},
		{`[{"name":"a","default-route":["1.1.1.1"]},{"name":"b","default-route":["1.1.1.2"]}]`, "at most one"},
	} {
		_, err := plan(t, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func TestPlanKeepsElementOrder(t *testing.T) {
	elems := []*nadv1.NetworkSelectionElement{{Name: "z", Namespace: "n"}, {Name: "a", Namespace: "n"}}
	atts, err := Plan("default/d", "eth0", elems)
	if err != nil || atts[1].Network != "n/z" || atts[1].IfName != "eth1" || atts[2].IfName != "eth2" {
		t.Fatalf("%+v %v", atts, err)
	}
}
