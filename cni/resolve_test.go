package cni

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/api/apitest"
)

// addWith runs cmdAdd against a fake xvrd holding the default network and
// vn-left-1, for pod default/p whose networks annotation is annotation. The
// netns does not exist: an ADD that got as far as making an interface fails
// on it, so an error about the networks proves none was made.
func addWith(t *testing.T, b *apitest.Backend, sock, annotation string) error {
	t.Helper()
	ctx := context.Background()
	for _, n := range []api.Network{{Namespace: "default", Name: "cluster-wide-default", CIDR: "198.18.100.0/24"},
		{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24"}} {
		if _, err := b.ApplyNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ApplyPod(ctx, api.Pod{Namespace: "default", Name: "p",
		Annotations: map[string]string{api.NetworksAnnotation: annotation}}); err != nil {
		t.Fatal(err)
	}
	return cmdAdd(&skel.CmdArgs{
		ContainerID: "c1", Netns: "/nonexistent/xvr-netns", IfName: "eth0",
		Args:      "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
		StdinData: []byte(`{"cniVersion":"1.1.0","name":"xvr","type":"xvr","mtu":1500,"socket":"` + sock + `"}`),
	})
}

func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// TestAddResolvesNetworksFirst: every selected network is resolved before
// the first interface is made; an unknown one is code 7 and names it, and
// xvrd is left with no port.
func TestAddResolvesNetworksFirst(t *testing.T) {
	b := apitest.NewBackend()
	sock := apitest.Serve(t, b)
	err := addWith(t, b, sock, `[{"name":"vn-left-1"},{"name":"nope","namespace":"other"}]`)
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "eth2: network other/nope does not exist") {
		t.Fatalf("ADD with an unknown network: %v", err)
	}
	if ps := b.ListPorts(context.Background()); len(ps) != 0 {
		t.Fatalf("ports made: %+v", ps)
	}
	// With known networks only, the ADD gets as far as the netns.
	if err := addWith(t, b, sock, `vn-left-1`); err == nil || !strings.Contains(err.Error(), "/nonexistent/xvr-netns") {
		t.Fatalf("ADD with known networks: %v, want the netns error", err)
	}
	// xvrd unreachable while resolving: try again later.
	b.SetFail(func(m string) error {
		if m == "GetNetwork" {
			return errors.New("store down")
		}
		return nil
	})
	if err := addWith(t, b, sock, `vn-left-1`); cniCode(err) != types.ErrTryAgainLater {
		t.Fatalf("ADD with xvrd failing: %v, want code 11", err)
	}
}

// TestErrorsCapEcho: no error quotes more than maxEcho bytes of one input,
// and says how long it was.
func TestErrorsCapEcho(t *testing.T) {
	long := strings.Repeat("x", 10<<10)
	for _, ann := range []string{long, "vn-left-1," + long, `[{"name":"` + long + `"}]`,
		`[{"name":"a","namespace":"` + long + `"}]`, `[{"name":"a","interface":"` + long + `"}]`,
		`[{"name":"a","mac":"` + long + `"}]`, `[{"name":"a","ips":["` + long + `"]}]`} {
		_, err := ParseSelection(ann, "default")
		if err == nil {
			elems, _ := ParseSelection(ann, "default")
			_, err = Plan("default/cluster-wide-default", "eth0", elems)
		}
		if err == nil {
			t.Fatalf("%.40s…: no error", ann)
		}
		if msg := err.Error(); len(msg) > 2*maxEcho+200 || !strings.Contains(msg, "… (10240 bytes)") {
			t.Errorf("%.40s…: error of %d bytes: %.400s", ann, len(msg), msg)
		}
	}
	if got := echo("abc"); got != `"abc"` {
		t.Errorf("echo(abc) = %s", got)
	}
	if got := echo(strings.Repeat("é", 200)); !strings.HasSuffix(got, "… (400 bytes)") || !strings.HasPrefix(got, `"éé`) {
		t.Errorf("echo of 400 bytes of é = %s", got)
	}
	for _, e := range []error{invalid("%s", long), apiError(errors.New(long), "x")} {
		if len(e.Error()) > maxMsg+100 {
			t.Errorf("message of %d bytes", len(e.Error()))
		}
	}
}
