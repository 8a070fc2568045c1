package cni

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"xvr","type":"xvr"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != api.DefaultSocket || c.DefaultNetwork != "default/cluster-wide-default" || c.MTU != 0 || c.HostNetns != "" { // MTU 0: resolved from xvrd at ADD
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseConfigFields(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","type":"contrail-k8s-cni","socket":"/tmp/x.sock",
		"defaultNetwork":"kube-system/pods","hostNetns":"/var/run/netns/n1","mtu":1400,
		"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/tmp/x.sock" || c.DefaultNetwork != "kube-system/pods" || c.HostNetns != "/var/run/netns/n1" ||
		c.MTU != 1400 || len(c.ValidAttachments) != 1 || c.ValidAttachments[0].ContainerID != "c1" {
		t.Fatalf("fields: %+v", c)
	}
}

func TestParseConfigInvalid(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{`{`, "decoding config"},
		{`{"socket":"run/xvrd.sock"}`, `socket "run/xvrd.sock": not an absolute path`},
		{`{"hostNetns":"netns/n1"}`, "hostNetns"},
		{`{"mtu":100}`, "mtu 100"},
		{`{"mtu":65536}`, "mtu 65536"},
		{`{"defaultNetwork":"nons"}`, `defaultNetwork "nons"`},
		{`{"defaultNetwork":"a/b/c"}`, `defaultNetwork "a/b/c"`},
		{`{"defaultNetwork":"Default/x"}`, `defaultNetwork "Default/x"`},
		{`{"mtu":"big"}`, "decoding config"},
	} {
		_, err := ParseConfig([]byte(tc.conf))
		assertCode(t, err, types.ErrInvalidNetworkConfig, tc.want)
	}
}

func TestParseArgs(t *testing.T) {
	a, err := ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1;K8S_POD_UID=u-1;K8S_POD_INFRA_CONTAINER_ID=abc;OTHER=x")
	if err != nil {
		t.Fatal(err)
	}
	ref := a.PodRef()
	if ref == nil || ref.Namespace != "ns1" || ref.Name != "p1" || ref.UID != "u-1" || a.K8S_POD_INFRA_CONTAINER_ID != "abc" {
		t.Fatalf("args: %+v", a)
	}
	// Unknown keys are ignored even without IgnoreUnknown.
	if a, err := ParseArgs("K8S_POD_NAME=p1;FOO=bar"); err != nil || a.PodRef() != nil {
		t.Fatalf("name without namespace: %+v, %v", a, err)
	}
	if a, err := ParseArgs(""); err != nil || a.PodRef() != nil {
		t.Fatalf("empty: %+v, %v", a, err)
	}
	_, err = ParseArgs("K8S_POD_NAME")
	assertCode(t, err, types.ErrInvalidNetworkConfig, "CNI_ARGS")
}

func assertCode(t *testing.T, err error, code uint, want string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a CNI error with code %d", err, err, code)
	}
	if e.Code != code || !strings.Contains(e.Msg, want) {
		t.Fatalf("error code %d %q, want code %d containing %q", e.Code, e.Msg, code, want)
	}
}
