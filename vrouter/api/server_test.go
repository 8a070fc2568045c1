package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/api/apitest"
)

// rawClient sends hand-made requests to a socket.
type rawClient struct {
	t  *testing.T
	hc *http.Client
}

func newRaw(t *testing.T, sock string) *rawClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return &rawClient{t: t, hc: hc}
}

// do sends a request and returns the status and the body.
func (c *rawClient) do(method, path, contentType, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://xvrd"+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.Header.Get("Content-Type") != "application/json" {
		c.t.Errorf("%s %s: content type %q, body %q", method, path, resp.Header.Get("Content-Type"), b)
	}
	return resp.StatusCode, string(b)
}

const leftJSON = `{"namespace":"default","name":"vn-left-1","cidr":"198.18.10.0/24"}`

func setup(t *testing.T) (*apitest.Backend, *api.Client, *rawClient) {
	b := apitest.NewBackend()
	sock := apitest.Serve(t, b)
	c := api.NewClient(sock)
	t.Cleanup(c.Close)
	return b, c, newRaw(t, sock)
}

func TestClientHappyPath(t *testing.T) {
	_, c, _ := setup(t)
	ctx := context.Background()
	n, err := c.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24", VRF: 99})
	if err != nil {
		t.Fatal(err)
	}
	if n.VNName != "k8s-vn-left-1-pod-network" || n.Project != "k8s-default" || n.Gateway != "198.18.10.254" ||
		n.DNS != "198.18.10.253" || n.VRF != 1 {
		t.Errorf("applied network = %+v", n)
	}
	n2, err := c.ApplyNetwork(ctx, api.Network{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24"})
	if err != nil || n2 != n {
		t.Errorf("idempotent apply = %+v, %v; want %+v", n2, err, n)
	}
	got, err := c.GetNetwork(ctx, "default", "vn-left-1")
	if err != nil || got != n {
		t.Errorf("get = %+v, %v", got, err)
	}
	list, err := c.ListNetworks(ctx)
	if err != nil || len(list) != 1 || list[0] != n {
		t.Errorf("list = %+v, %v", list, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Version != "test" {
		t.Errorf("status = %+v, %v", st, err)
	}
}

func TestClientPortsAndRoutes(t *testing.T) {
	_, c, _ := setup(t)
	ctx := context.Background()
	mustApplyLeft(t, c)
	id := "3f2a9c/eth1"
	p, err := c.ApplyPort(ctx, api.Port{ID: id, Network: "default/vn-left-1", HostIfName: "xvr3f2a9c1",
		IP: "198.18.10.3", MAC: "02:00:00:00:10:03", Vif: 77, State: "bogus"})
	if err != nil || p.Vif != 1 || p.State != "up" || p.ID != id {
		t.Fatalf("apply port = %+v, %v", p, err)
	}
	if got, err := c.GetPort(ctx, id); err != nil || got != p {
		t.Errorf("get port = %+v, %v", got, err)
	}
	r := api.Route{Network: "default/vn-left-1", Prefix: "198.18.40.0/24", NextHop: api.RouteNextHop{Type: "port", Port: id}}
	if got, err := c.ApplyRoute(ctx, r); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("apply route = %+v, %v", got, err)
	}
	if rs, err := c.ListRoutes(ctx); err != nil || len(rs) != 1 {
		t.Errorf("routes = %+v, %v", rs, err)
	}
	rt, err := c.RouteTable(ctx, "default/vn-left-1")
	if err != nil || len(rt) != 3 {
		t.Errorf("rt = %+v, %v", rt, err)
	}
	if err := c.DeleteRoute(ctx, "default/vn-left-1", "198.18.40.0/24"); err != nil {
		t.Errorf("delete route: %v", err)
	}
	if err := c.DeleteRoute(ctx, "default/vn-left-1", "198.18.40.0/24"); !api.IsNotFound(err) {
		t.Errorf("delete route again: %v, want 404", err)
	}
	if err := c.DeletePort(ctx, id); err != nil {
		t.Errorf("delete port: %v", err)
	}
	if err := c.DeletePort(ctx, id); !api.IsNotFound(err) || api.IgnoreNotFound(err) != nil {
		t.Errorf("delete port again: %v, want 404", err)
	}
}

func TestClientIntrospection(t *testing.T) {
	b, c, _ := setup(t)
	b.SetDrops([]api.DropStat{{Reason: "no_route", Count: 3}})
	ctx := context.Background()
	if v, err := c.Vifs(ctx); err != nil || len(v) != 1 {
		t.Errorf("vifs = %+v, %v", v, err)
	}
	if nh, err := c.NextHops(ctx); err != nil || len(nh) != 2 {
		t.Errorf("nh = %+v, %v", nh, err)
	}
	if d, err := c.DropStats(ctx); err != nil || len(d) != 1 || d[0].Count != 3 {
		t.Errorf("dropstats = %+v, %v", d, err)
	}
	if _, err := c.RouteTable(ctx, "nosuch/net"); !api.IsNotFound(err) {
		t.Errorf("rt of missing network: %v, want 404", err)
	}
	if _, err := c.RouteTable(ctx, "bad"); api.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("rt of bad name: %v, want 400", err)
	}
}

func mustApplyLeft(t *testing.T, c *api.Client) {
	t.Helper()
	_, err := c.ApplyNetwork(context.Background(), api.Network{Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24"})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPortIDWithSlashes(t *testing.T) {
	_, c, raw := setup(t)
	mustApplyLeft(t, c)
	ids := []string{"abc/eth1", "a/b/c", "x%2Fy/eth0", "sp ace/eth1", "q?x#y/eth2", "../up/eth3"}
	for i, id := range ids {
		p := api.Port{ID: id, Network: "default/vn-left-1", HostIfName: "v" + id[:1],
			IP: "198.18.10." + string(rune('3'+i)), MAC: "02:00:00:00:00:0" + string(rune('1'+i))}
		if _, err := c.ApplyPort(context.Background(), p); err != nil {
			t.Errorf("apply port %q: %v", id, err)
			continue
		}
		if got, err := c.GetPort(context.Background(), id); err != nil || got.ID != id {
			t.Errorf("get port %q = %+v, %v", id, got, err)
		}
	}
	// A raw path with the slash unescaped works too.
	if code, body := raw.do("GET", "/v1/ports/abc/eth1", "", ""); code != 200 || !strings.Contains(body, `"abc/eth1"`) {
		t.Errorf("raw get = %d %s", code, body)
	}
	if ports, _ := c.ListPorts(context.Background()); len(ports) != len(ids) {
		t.Errorf("ports = %+v", ports)
	}
}

func TestServerStatuses(t *testing.T) {
	_, c, raw := setup(t)
	mustApplyLeft(t, c)
	big := `{"namespace":"default","name":"vn-left-1","cidr":"` + strings.Repeat("1", api.MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		msg                             string
	}{
		{"put ok", "PUT", "/v1/networks/default/vn-left-1", "application/json", leftJSON, 200, ""},
		{"put fills path", "PUT", "/v1/networks/default/vn-left-1", "", `{"cidr":"198.18.10.0/24"}`, 200, ""},
		{"malformed", "PUT", "/v1/networks/default/vn-left-1", "", `{"cidr":`, 400, "invalid request body"},
		{"not json", "PUT", "/v1/networks/default/vn-left-1", "", `hello`, 400, "invalid request body"},
		{"empty", "PUT", "/v1/networks/default/vn-left-1", "", ``, 400, "empty request body"},
		{"trailing", "PUT", "/v1/networks/default/vn-left-1", "", leftJSON + `{}`, 400, "unexpected data"},
		{"unknown field", "PUT", "/v1/networks/default/vn-left-1", "", `{"cidr":"198.18.10.0/24","color":"red"}`, 400, `unknown field \"color\"`},
		{"wrong type", "PUT", "/v1/networks/default/vn-left-1", "", `{"cidr":5}`, 400, "invalid request body"},
		{"name mismatch", "PUT", "/v1/networks/default/vn-right-1", "", leftJSON, 400, "does not match"},
		{"namespace mismatch", "PUT", "/v1/networks/other/vn-left-1", "", leftJSON, 400, "does not match"},
		{"port id mismatch", "PUT", "/v1/ports/a/eth1", "", `{"id":"b/eth1"}`, 400, "does not match"},
		{"oversized", "PUT", "/v1/networks/default/vn-left-1", "", big, 413, "larger than"},
		{"content type", "PUT", "/v1/networks/default/vn-left-1", "text/plain", leftJSON, 415, "not application/json"},
		{"json charset ok", "PUT", "/v1/networks/default/vn-left-1", "application/json; charset=utf-8", leftJSON, 200, ""},
		{"conflict passthrough", "PUT", "/v1/networks/default/vn-left-1", "", `{"cidr":"198.18.11.0/24"}`, 409, "exists with cidr"},
		{"backend 400", "PUT", "/v1/networks/default/x", "", `{"cidr":"198.18.11.0/31"}`, 400, "too small"},
		{"get missing", "GET", "/v1/networks/default/nosuch", "", "", 404, "not found"},
		{"delete missing", "DELETE", "/v1/networks/default/nosuch", "", "", 404, "not found"},
		{"delete missing port", "DELETE", "/v1/ports/no/such", "", "", 404, "not found"},
		{"delete missing route", "DELETE", "/v1/routes/default/vn-left-1/198.18.99.0/24", "", "", 404, "not found"},
		{"no route", "GET", "/v1/nosuch", "", "", 404, "not found"},
		{"bad method", "POST", "/v1/networks", "", "{}", 405, "method not allowed"},
		{"unclean path", "GET", "/v1/../v1/status", "", "", 404, "not found"},
		{"list", "GET", "/v1/networks", "", "", 200, `"vnName":"k8s-vn-left-1-pod-network"`},
		{"empty list", "GET", "/v1/ports", "", "", 200, "[]"},
		{"delete ok", "DELETE", "/v1/networks/default/vn-left-1", "", "", 204, ""},
	}
	for _, tt := range tests {
		code, body := raw.do(tt.method, tt.path, tt.ctype, tt.body)
		if code != tt.want || !strings.Contains(body, tt.msg) {
			t.Errorf("%s: %s %s = %d %.200s; want %d containing %q", tt.name, tt.method, tt.path, code, body, tt.want, tt.msg)
		}
		if code >= 400 {
			var e api.Error
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Msg == "" {
				t.Errorf("%s: error body %q is not {\"error\":...}", tt.name, body)
			}
		}
	}
}

func TestServerBackendErrors(t *testing.T) {
	b, c, raw := setup(t)
	b.SetFail(func(string) error { return errors.New("disk on fire") })
	_, err := c.ApplyNetwork(context.Background(), api.Network{Namespace: "default", Name: "x", CIDR: "198.18.10.0/24"})
	if api.StatusOf(err) != 500 || err.Error() != "disk on fire" {
		t.Errorf("plain error = %v (status %d), want 500", err, api.StatusOf(err))
	}
	b.SetFail(func(string) error { return api.Conflict("busy") })
	if err := c.DeletePort(context.Background(), "a/b"); api.StatusOf(err) != 409 {
		t.Errorf("conflict = %v", err)
	}
	b.SetFail(func(string) error { return api.Errorf(200, "nonsense status") })
	if code, _ := raw.do("GET", "/v1/networks/a/b", "", ""); code != 500 {
		t.Errorf("error with status 200 answered %d, want 500", code)
	}
	b.SetFail(nil)
	b.SetPanic(true)
	if code, body := raw.do("GET", "/v1/networks/a/b", "", ""); code != 500 || !strings.Contains(body, "internal error") {
		t.Errorf("panic answered %d %s", code, body)
	}
	b.SetPanic(false)
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("server dead after a panic: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	c := api.NewClient(sock)
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), sock) || api.StatusOf(err) != 500 {
		t.Errorf("no server: %v", err)
	}
	// A server that never answers: the context's deadline ends the call.
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "mute.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = api.NewClient(l.Addr().String()).Status(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("mute server: %v after %v", err, time.Since(start))
	}
}

func TestListenMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "xvr")
	sock := filepath.Join(dir, "xvrd.sock")
	l, err := api.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode = %v, %v; want 0600 socket", fi.Mode(), err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, %v; want 0700", di.Mode(), err)
	}
}

func TestListenStaleAndLive(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "xvrd.sock")
	// A stale socket: bound, then its listener closed without unlinking.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	live, err := api.Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := api.Listen(sock); err == nil || !strings.Contains(err.Error(), "another xvrd is serving") {
		t.Errorf("second listener: %v, want another xvrd is serving", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen on a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("regular file clobbered: %q, %v", b, err)
	}
}

// FuzzServer sends random bodies to PUT /v1/networks/...: the answer is
// never a 5xx, since the fake backend only returns 4xx errors.
func FuzzServer(f *testing.F) {
	for _, s := range []string{leftJSON, `{}`, `{"cidr":"198.18.10.0/31"}`, `{"ref":{"domain":"d","project":"p","name":"n"}}`,
		`{"namespace":"default","name":"vn-left-1","cidr":"198.18.10.0/24","fabricForwarding":true,"vrf":7}`,
		`[1,2]`, `null`, `{"cidr":"198.18.10.0/24"} x`, "\x00", `{"name":"\u0000"}`} {
		f.Add(s)
	}
	b := apitest.NewBackend()
	sock := apitest.Serve(f, b)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	hc := &http.Client{Transport: tr}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := http.NewRequest("PUT", "http://xvrd/v1/networks/default/vn-left-1", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("body %q answered %d %s", body, resp.StatusCode, out)
		}
		if resp.StatusCode == 200 {
			var n api.Network
			if err := json.Unmarshal(out, &n); err != nil || n.Key() != "default/vn-left-1" {
				t.Fatalf("200 with %q (%v)", out, err)
			}
		}
	})
}

func TestPolicies(t *testing.T) {
	_, c, raw := setup(t)
	ctx := context.Background()
	if p, err := c.Policies(ctx); err != nil || p.Enforce || len(p.Interfaces) != 0 {
		t.Fatalf("initial policies: %+v, %v; want none", p, err)
	}
	want := api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{{Pod: api.PodRef{Namespace: "x", Name: "a"},
		Network: "default/cluster-wide-default", Policy: policy.Set{Ingress: true, IngressRules: []policy.Rule{{
			Policy: "NetworkPolicy x/web", AllPeers: true, Ports: []policy.Port{{Protocol: "TCP", Port: 80}}}}}}}}
	if err := c.SetPolicies(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Policies(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("policies = %+v, %v; want %+v", got, err, want)
	}
	badPeer := `{"interfaces":[{"pod":{"namespace":"x","name":"b"},"network":"n/m","policy":{"egress":true,` +
		`"egressRules":[{"policy":"NetworkPolicy x/p","peers":[{"cidr":"198.18.0.0/33"}]}]}}]}`
	for _, tt := range []struct{ name, body, msg string }{
		{"malformed", `{"enforce":`, "invalid request body"},
		{"wrong type", `{"enforce":"yes"}`, "invalid request body"},
		{"unknown field", `{"enforce":true,"color":"red"}`, `unknown field \"color\"`},
		{"invalid policy", badPeer, "interfaces[0] (pod x/b network n/m)"},
	} {
		code, body := raw.do("PUT", "/v1/policies", "", tt.body)
		if code != 400 || !strings.Contains(body, tt.msg) {
			t.Errorf("%s: PUT /v1/policies = %d %.200s; want 400 containing %q", tt.name, code, body, tt.msg)
		}
	}
	if got, _ := c.Policies(ctx); !reflect.DeepEqual(got, want) {
		t.Fatalf("refused PUTs changed the policies: %+v", got)
	}
	code, body := raw.do("PUT", "/v1/policies", "", `{"enforce":false}`)
	if code != 200 || strings.TrimSpace(body) != `{"enforce":false}` {
		t.Fatalf("PUT {enforce:false} = %d %s; want 200 answering the policies now set", code, body)
	}
}
