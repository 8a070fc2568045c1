package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// nobody is the uid and gid a non-root caller runs as.
const nobody = 65534

// TestReliabilitySocketRefusesNonRoot starts xvrd with its socket in a
// directory anyone may enter (so that only the socket's own mode can
// refuse) and runs the real xvrctl as uid/gid 65534: it must fail with
// permission denied, while the same command as root succeeds.
func TestReliabilitySocketRefusesNonRoot(t *testing.T) {
	nettest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "xvr-rel-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, "xvrctl")
	copyFile(t, bin("xvrctl"), ctl, 0o755) // binDir is root's 0700 temp dir
	sock := filepath.Join(dir, "xvrd.sock")
	ns := nettest.NewNS(t, "xvn")
	p := ns.Start(t, bin("xvrd"), "-socket", sock, "-db", filepath.Join(t.TempDir(), "xvrd.db"), "-metrics-addr", "")
	c := api.NewClient(sock)
	defer c.Close()
	waitStatus(t, c, p)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}

	cmd := exec.Command(ctl, "--socket", sock, "status")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "permission denied") {
		t.Fatalf("xvrctl status as uid %d: err %v, output %q; want permission denied", nobody, err, out)
	}
	t.Logf("as uid %d: %s", nobody, strings.TrimSpace(string(out)))
	if out, err := exec.Command(ctl, "--socket", sock, "status").CombinedOutput(); err != nil {
		t.Fatalf("xvrctl status as root: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func waitStatus(t *testing.T, c *api.Client, p *nettest.Proc) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("xvrd did not serve within 15s:\n%s", p.Output())
}

// hostile are requests a broken or hostile local client sends, to every
// kind of endpoint of the real xvrd.
var hostile = []struct{ method, path, ctype, body string }{
	{"PUT", "/v1/networks/default/bad", "", `{"cidr":"198.18.60.0/33"}`},
	{"PUT", "/v1/networks/default/bad", "", `{"cidr":"198.18.60.1/24","vrf":"x"}`},
	{"PUT", "/v1/networks/default/bad", "", `{"cidr":"198.18.60.0/24","ref":{"domain":"d","project":"p","name":"n"}}`},
	{"PUT", "/v1/networks/default/bad", "", `{"cidr":"198.18.60.0/24"} {"cidr":"198.18.61.0/24"}`},
	{"PUT", "/v1/networks/default/bad", "text/plain", `{"cidr":"198.18.60.0/24"}`},
	{"PUT", "/v1/networks/default/bad", "", `{"cidr":"198.18.60.0/24","surprise":1}`},
	{"PUT", "/v1/networks/default/bad", "", `{"name":"other","cidr":"198.18.60.0/24"}`},
	{"PUT", "/v1/networks/..%2F..%2Fetc/passwd", "", `{"cidr":"198.18.60.0/24"}`},
	{"PUT", "/v1/networks/default/" + strings.Repeat("n", 5000), "", `{"cidr":"198.18.60.0/24"}`},
	{"PUT", "/v1/networks/default/big", "", `{"cidr":"` + strings.Repeat("9", 2<<20) + `"}`},
	{"PUT", "/v1/networks/default/deep", "", strings.Repeat(`{"ref":`, 100000)},
	{"DELETE", "/v1/networks/default/cluster-wide-default", "", ""},
	{"DELETE", "/v1/networks/default/vn-left-1", "", ""}, // ports use it
	{"PUT", "/v1/ports/c1/eth0", "", `{"network":"default/nope","hostIfName":"xvrnope"}`},
	{"PUT", "/v1/ports/c1/eth0", "", `{"network":"default/vn-left-1","hostIfName":"xvrnope","ip":"198.18.20.5"}`},
	{"PUT", "/v1/ports/c1/eth0", "", `{"network":"default/vn-left-1","hostIfName":"xvrnope","mac":"01:00:5e:00:00:01"}`},
	{"PUT", "/v1/ports/c1/eth0", "", `{"network":"default/vn-left-1","hostIfName":"` + strings.Repeat("x", 300) + `"}`},
	{"PUT", "/v1/ports/c1/eth0", "", `{"id":"c2/eth0","network":"default/vn-left-1","hostIfName":"xvrnope"}`},
	{"PUT", "/v1/ports/c1/eth0", "", `{"network":"default/vn-left-1","hostIfName":"xvrnope","index":-1}`},
	{"PUT", "/v1/ports/", "", `{"network":"default/vn-left-1","hostIfName":"xvrnope"}`},
	{"GET", "/v1/ports/%00", "", ""},
	{"DELETE", "/v1/ports/no-such-port", "", ""},
	{"PUT", "/v1/pods/default/p", "", `{"annotations":{"k8s.v1.cni.cncf.io/networks":7}}`},
	{"PUT", "/v1/pods/default/p", "", `{"annotations":{"k8s.v1.cni.cncf.io/networks":["vn-left-1"]}}`},
	{"PUT", "/v1/pods/default/p", "", `{"annotations":null,"uid":{}}`},
	{"GET", "/v1/pods/default/none/network-status", "", ""},
	{"POST", "/v1/gc", "", `{"validAttachments":[{"containerID":1}]}`},
	{"POST", "/v1/gc", "", ``},
	{"PUT", "/v1/routes", "", `{"network":"default/vn-left-1","prefix":"198.18.10.0/40","nextHop":{"type":"tunnel"}}`},
	{"PUT", "/v1/routes", "", `{"network":"default/vn-left-1","prefix":"198.18.10.9/32","nextHop":{"type":"tunnel","node":"::1"}}`},
	{"PUT", "/v1/routes", "", `{"network":"default/vn-left-1","prefix":"198.18.10.9/32","nextHop":{"type":"warp"}}`},
	{"DELETE", "/v1/routes/default/vn-left-1/not-a-prefix", "", ""},
	{"GET", "/v1/rt/default/nope", "", ""},
	{"PATCH", "/v1/networks/default/vn-left-1", "", `{}`},
	{"BREW", "/v1/status", "", ""},
	{"GET", "/v1//status", "", ""},
	{"GET", "/v1/../v1/status", "", ""},
	{"GET", "/nope", "", ""},
}

// TestReliabilityHostileAPI sends every hostile request to a real xvrd that
// has a VN with two pods: each gets a 4xx (a 500 is a bug), xvrd keeps
// serving, its networks and ports are exactly as before, and the pods still
// reach each other.
func TestReliabilityHostileAPI(t *testing.T) {
	cn := newCNINode(t)
	cn.apply(t, twoVNs)
	a := cn.addPod(t, "default", "hostile-a", "vn-left-1")
	b := cn.addPod(t, "default", "hostile-b", "vn-left-1")
	before := cn.state(t)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", cn.socket)
		}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, h := range hostile {
		req, err := http.NewRequest(h.method, "http://xvrd"+h.path, strings.NewReader(h.body))
		if err != nil {
			t.Fatal(err)
		}
		if h.ctype != "" {
			req.Header.Set("Content-Type", h.ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %.80s: %v\nxvrd log:\n%s", h.method, h.path, err, tail(cn.proc.Output(), 2000))
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %.80s (%d body bytes): %d %s, want a 4xx", h.method, h.path, len(h.body), resp.StatusCode, msg)
		}
	}
	if _, err := cn.c.Status(context.Background()); err != nil {
		t.Fatalf("xvrd stopped serving: %v\n%s", err, tail(cn.proc.Output(), 2000))
	}
	sameState(t, before, cn.state(t))
	mustPingNS(t, a, b.addr(t, "eth1"))
}
