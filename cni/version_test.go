package cni

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/version"
)

// TestResultInRequestedVersion: the ADD result is in the cniVersion of the
// config the runtime passed (the conflist's), for every version the
// plugin supports. containerd 1.6 (libcni 1.1) parses results up to 1.0.0
// only and rejects a 1.1.0 one, so a conflist for it says 1.0.0 and gets
// 1.0.0 back.
func TestResultInRequestedVersion(t *testing.T) {
	ifs := []iface{{hostName: "xvr0", hostMAC: mustMAC("aa:00:00:00:00:01"), pod: podIf{name: "eth0", mac: mustMAC("02:00:00:00:00:01"),
		addr: netip.MustParsePrefix("198.18.100.1/24"), gateway: netip.MustParseAddr("198.18.100.254"), defaultRoute: true}}}
	for _, v := range Versions.SupportedVersions() {
		conf, err := ParseConfig([]byte(`{"cniVersion":"` + v + `","name":"xvr","type":"xvr"}`))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		res, err := buildResult(conf.CNIVersion, "/var/run/netns/p", ifs).GetAsVersion(conf.CNIVersion)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		var out bytes.Buffer
		if err := res.PrintTo(&out); err != nil {
			t.Fatal(err)
		}
		var got struct {
			CNIVersion string `json:"cniVersion"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.CNIVersion != v {
			t.Errorf("asked for %s, answered %q (%v): %s", v, got.CNIVersion, err, out.Bytes())
		}
		// What a runtime of exactly that version reads back.
		back, err := version.NewResult(v, out.Bytes())
		if err != nil {
			t.Errorf("%s: the runtime cannot parse the result: %v", v, err)
			continue
		}
		if back.Version() != v {
			t.Errorf("%s: parsed as %s", v, back.Version())
		}
	}
}
