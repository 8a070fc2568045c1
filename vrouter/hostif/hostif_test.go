package hostif

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Name: "", Peer: "p"}, {Name: "a", Peer: "a"}, {Name: "a/b", Peer: "p"},
		{Name: "sixteen-chars-xx", Peer: "p"}} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (&Config{Name: DefaultName, Peer: DefaultPeer}).validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestNetValidate(t *testing.T) {
	mac, _ := net.ParseMAC("02:78:76:72:00:01")
	good := Net{Addr: netip.MustParseAddr("198.18.100.252"), Gateway: netip.MustParseAddr("198.18.100.254"),
		Prefix: netip.MustParsePrefix("198.18.100.0/24"), RouterMAC: mac}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Net){
		"address outside": func(n *Net) { n.Addr = netip.MustParseAddr("198.18.101.1") },
		"gateway outside": func(n *Net) { n.Gateway = netip.MustParseAddr("198.18.101.254") },
		"ipv6":            func(n *Net) { n.Addr = netip.MustParseAddr("2001:db8::1") },
		"no mac":          func(n *Net) { n.RouterMAC = nil },
	} {
		n := good
		mut(&n)
		if err := n.validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The egress rules: pods of the network leaving through any device but the
// host interface, TCP and UDP mapped clear of the fabric SNAT pools.
func TestMasqueradeRules(t *testing.T) {
	rules := masqueradeRules("xvr-host", netip.MustParsePrefix("198.18.104.0/22"))
	var got []string
	for _, r := range rules {
		got = append(got, strings.Join(r, " "))
	}
	want := []string{
		`-s 198.18.104.0/22 ! -d 198.18.104.0/22 ! -o xvr-host -p tcp -m comment --comment xvr: pods to the outside -j MASQUERADE --to-ports 1024-55999`,
		`-s 198.18.104.0/22 ! -d 198.18.104.0/22 ! -o xvr-host -p udp -m comment --comment xvr: pods to the outside -j MASQUERADE --to-ports 1024-55999`,
		`-s 198.18.104.0/22 ! -d 198.18.104.0/22 ! -o xvr-host -m comment --comment xvr: pods to the outside -j MASQUERADE`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMasqueradeMemo: an unchanged masquerade state is not checked again
// within MasqueradeRecheck (each check forks iptables); a new prefix, a
// switch to off and a failed check are.
func TestMasqueradeMemo(t *testing.T) {
	calls, fail := 0, false
	iptablesRun = func(args ...string) error {
		calls++
		if fail {
			return errors.New("iptables: lock held")
		}
		return nil
	}
	defer func() { iptablesRun = iptables; forgetMasquerade() }()
	p1, p2 := netip.MustParsePrefix("198.18.104.0/22"), netip.MustParsePrefix("198.18.108.0/22")
	step := func(name string, f func() error, wantCalls bool, wantErr bool) {
		t.Helper()
		before := calls
		err := f()
		if (err != nil) != wantErr || (calls > before) != wantCalls {
			t.Fatalf("%s: err %v, %d iptables calls (want calls %v, error %v)", name, err, calls-before, wantCalls, wantErr)
		}
	}
	step("first", func() error { return ensureMasquerade("xvr-host", p1) }, true, false)
	step("unchanged", func() error { return ensureMasquerade("xvr-host", p1) }, false, false)
	step("new prefix", func() error { return ensureMasquerade("xvr-host", p2) }, true, false)
	step("off", removeMasquerade, true, false)
	fail = true
	step("on, failing", func() error { return ensureMasquerade("xvr-host", p2) }, true, true)
	step("on, failed before", func() error { return ensureMasquerade("xvr-host", p2) }, true, true)
	fail = false
	step("on", func() error { return ensureMasquerade("xvr-host", p2) }, true, false)
	masqMemo.at = masqMemo.at.Add(-MasqueradeRecheck)
	step("after the recheck period", func() error { return ensureMasquerade("xvr-host", p2) }, true, false)
}
