package cni

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"

	"github.com/xvr-project/xvr/vrouter/api"
)

func port(ip string, plen int, gw, mac string) api.Port {
	return api.Port{ID: "c1/eth1", IP: ip, PrefixLen: plen, Gateway: gw, MAC: mac}
}

func TestPodIfFromPort(t *testing.T) {
	a := Attachment{IfName: "eth1", Network: "default/a", DefaultRoute: true}
	pi, err := podIfFromPort(a, port("198.18.10.1", 24, "198.18.10.254", "02:00:00:00:00:01"))
	if err != nil {
		t.Fatal(err)
	}
	if pi.name != "eth1" || pi.addr != netip.MustParsePrefix("198.18.10.1/24") ||
		pi.gateway != netip.MustParseAddr("198.18.10.254") || pi.mac.String() != "02:00:00:00:00:01" || !pi.defaultRoute {
		t.Fatalf("%+v", pi)
	}
}

func TestPodIfFromPortRefuses(t *testing.T) {
	good := port("198.18.10.1", 24, "198.18.10.254", "02:00:00:00:00:01")
	for _, tc := range []struct {
		a    Attachment
		p    api.Port
		want string
	}{
		{Attachment{}, port("x", 24, "198.18.10.254", "02:00:00:00:00:01"), `ip "x"`},
		{Attachment{}, port("198.18.10.1", 0, "198.18.10.254", "02:00:00:00:00:01"), "prefix length 0"},
		{Attachment{}, port("198.18.10.1", 33, "198.18.10.254", "02:00:00:00:00:01"), "prefix length 33"},
		{Attachment{}, port("198.18.10.1", 24, "198.18.11.254", "02:00:00:00:00:01"), "gateway"},
		{Attachment{}, port("198.18.10.1", 24, "198.18.10.254", ""), "mac"},
		{Attachment{IP: netip.MustParseAddr("198.18.10.9")}, good, "asked for ip 198.18.10.9"},
		{Attachment{IP: netip.MustParseAddr("198.18.10.1"), PrefixLen: 16}, good, "asks for /16"},
		{Attachment{MAC: mustMAC("02:00:00:00:00:02")}, good, "asked for mac"},
		{Attachment{Gateway: netip.MustParseAddr("198.18.10.1")}, good, "is not network"},
	} {
		if _, err := podIfFromPort(tc.a, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v %+v: error %v, want %q", tc.a, tc.p, err, tc.want)
		}
	}
}

func TestBuildResult(t *testing.T) {
	ifs := []iface{
		{hostName: "xvr0", hostMAC: mustMAC("aa:00:00:00:00:01"), pod: podIf{name: "eth0", mac: mustMAC("02:00:00:00:00:01"),
			addr: netip.MustParsePrefix("198.18.100.1/24"), gateway: netip.MustParseAddr("198.18.100.254"), defaultRoute: true}},
		{hostName: "xvr1", hostMAC: mustMAC("aa:00:00:00:00:02"), pod: podIf{name: "eth1", mac: mustMAC("02:00:00:00:00:02"),
			addr: netip.MustParsePrefix("198.18.10.1/24"), gateway: netip.MustParseAddr("198.18.10.254")}},
	}
	r := buildResult("1.1.0", "/var/run/netns/p", ifs)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.1.0","interfaces":[{"mac":"aa:00:00:00:00:01","name":"xvr0"},` +
		`{"mac":"02:00:00:00:00:01","name":"eth0","sandbox":"/var/run/netns/p"},` +
		`{"mac":"aa:00:00:00:00:02","name":"xvr1"},{"mac":"02:00:00:00:00:02","name":"eth1","sandbox":"/var/run/netns/p"}],` +
		`"ips":[{"address":"198.18.100.1/24","gateway":"198.18.100.254","interface":1},` +
		`{"address":"198.18.10.1/24","gateway":"198.18.10.254","interface":3}],` +
		`"routes":[{"dst":"0.0.0.0/0","gw":"198.18.100.254"}]}`
	if string(b) != want {
		t.Fatalf("result\n got %s\nwant %s", b, want)
	}
	// An older runtime gets the same content in its version.
	old, err := r.GetAsVersion("0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if r4 := old.(*types040.Result); len(r4.IPs) != 2 || *r4.IPs[1].Interface != 3 {
		t.Fatalf("0.4.0: %+v", r4)
	}
}

func TestAPIErrorCodes(t *testing.T) {
	assertCode(t, apiError(api.NotFound("network x not found"), "eth1 on network x"), types.ErrInvalidNetworkConfig,
		"eth1 on network x: network x not found")
	assertCode(t, apiError(api.Conflict("no free address"), "eth2"), types.ErrInvalidNetworkConfig, "eth2: no free address")
	assertCode(t, apiError(api.Errorf(http.StatusInternalServerError, "disk"), "eth0"), types.ErrTryAgainLater, "eth0: disk")
	assertCode(t, apiError(errDial, "eth0"), types.ErrTryAgainLater, "cannot reach")
}

type dialErr struct{}

func (dialErr) Error() string { return "cannot reach xvrd at /run/xvr/xvrd.sock: connection refused" }

var errDial error = dialErr{}

func TestHostIfName(t *testing.T) {
	n := HostIfName("0123456789abcdef", "eth1")
	if len(n) != 14 || !strings.HasPrefix(n, "xvr") || n == HostIfName("0123456789abcdef", "eth2") {
		t.Fatalf("name %q", n)
	}
	if cid, ifn, ok := ownAlias(n, "0123456789abcdef/eth1"); !ok || cid != "0123456789abcdef" || ifn != "eth1" {
		t.Fatalf("ownAlias: %q %q %v", cid, ifn, ok)
	}
	for _, alias := range []string{"", "/eth1", "c/", "0123456789abcdef/eth2", "other/eth1"} {
		if _, _, ok := ownAlias(n, alias); ok {
			t.Fatalf("alias %q claimed %s", alias, n)
		}
	}
	if _, _, ok := ownAlias("eth0", "0123456789abcdef/eth1"); ok {
		t.Fatal("a foreign name was claimed")
	}
	if !ownName(n) {
		t.Fatalf("ownName(%q) false", n)
	}
	for _, name := range []string{"eth0", "xvr", "xvr0123456789a", "xvrABCDEF01234", "xvr0123456789abc", "xvrbr0"} {
		if ownName(name) != (name == "xvr0123456789a") {
			t.Fatalf("ownName(%q) = %v", name, ownName(name))
		}
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
