package cni

import (
	"testing"
)

// FuzzSelection: the annotation parser and planner never panic, return an
// error or a plan (not both), and every plan has unique, valid interface
// names with eth0 first and at most one default route.
func FuzzSelection(f *testing.F) {
	for _, s := range []string{
		`vn-left-1,other/vn-right-1`, `a@net1, b`, `[{"name":"vn-left-1"},{"name":"vn-right-1","namespace":"other"}]`,
		`[{"name":"a","interface":"eth1","ips":["198.18.10.7/24"],"mac":"02:00:00:00:00:07","default-route":["198.18.10.254"]}]`,
		`[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]`, `[null]`, `[`, `a/b/c`, `,`, `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ann string) {
		elems, err := ParseSelection(ann, "pods")
		if err != nil {
			if elems != nil {
				t.Fatalf("error %v with elements", err)
			}
			return
		}
		atts, err := Plan("default/cluster-wide-default", "eth0", elems)
		if (err == nil) == (atts == nil) {
			t.Fatalf("plan %v with error %v", atts, err)
		}
		checkPlan(t, atts)
	})
}

func checkPlan(t *testing.T, atts []Attachment) {
	if len(atts) == 0 {
		return
	}
	if atts[0].IfName != "eth0" || atts[0].Index != 0 {
		t.Fatalf("first interface %+v", atts[0])
	}
	seen, routes := map[string]bool{}, 0
	for i, a := range atts {
		if seen[a.IfName] || badIfName(a.IfName) != "" || a.Index != i {
			t.Fatalf("interface %d %+v: duplicate or invalid", i, a)
		}
		seen[a.IfName] = true
		if a.DefaultRoute {
			routes++
		}
		if a.IP.IsValid() && !a.IP.Is4() || a.MAC != nil && (len(a.MAC) != 6 || a.MAC[0]&1 != 0) {
			t.Fatalf("static request %+v", a)
		}
	}
	if routes != 1 {
		t.Fatalf("%d default routes in %+v", routes, atts)
	}
}

// FuzzConfig: the config parser never panics and returns a config that
// passes validation or an error, not both.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","type":"xvr"}`,
		`{"type":"xvr","socket":"/run/xvr/xvrd.sock","defaultNetwork":"default/cluster-wide-default","hostNetns":"/var/run/netns/n","mtu":1500}`,
		`{"mtu":-1}`, `{"defaultNetwork":"a/b/c"}`, `[]`, `null`, `{"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if (err == nil) == (c == nil) {
			t.Fatalf("config %+v with error %v", c, err)
		}
		if c != nil && c.validate() != nil {
			t.Fatalf("returned config fails validation: %+v", c)
		}
	})
}
