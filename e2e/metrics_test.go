package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/nettest"
)

// metricsAddr is xvrd's default -metrics-addr, inside the node namespace.
const metricsAddr = "127.0.0.1:9470"

// TestMetrics scrapes a node's /metrics after same-VN and cross-VN pings.
func TestMetrics(t *testing.T) {
	tp := setupThreePods(t)
	mustPing(t, tp.a, "198.18.10.2")
	if out, err := tp.a.Ping(addr("198.18.20.1"), 2); err == nil {
		t.Fatalf("pod on vn-left-1 reached vn-right-1:\n%s", out)
	}
	code, body := nsGet(t, tp.n.ns, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	m := parseMetrics(t, body)
	rx := fmt.Sprintf(`xvr_vif_rx_packets_total{name=%q,network="default/vn-left-1",vif=`, tp.a.HostIf)
	if v, ok := m.first(rx); !ok || v < 3 {
		t.Fatalf("%s...}: %v (found %v), want >= 3\n%s", rx, v, ok, body)
	}
	if v, _ := m.first(`xvr_drops_total{reason="no_route"}`); v < 2 {
		t.Fatalf("no_route drops %v, want >= 2", v)
	}
	if v, _ := m.first(`xvr_api_requests_total{code="200",method="PUT",route="/v1/ports/{id...}"}`); v != 3 {
		t.Fatalf("api requests PUT /v1/ports/{id...} 200: %v, want 3 (one per pod)", v)
	}
	if v, ok := m.first(`xvr_build_info{`); !ok || v != 1 {
		t.Fatalf("xvr_build_info missing or not 1: %v", v)
	}
	busy, ok1 := m.first(`xvr_poller_busy_seconds_total{poller="0"}`)
	running, ok2 := m.first(`xvr_poller_running_seconds_total{poller="0"}`)
	if !ok1 || !ok2 || busy <= 0 || busy > running {
		t.Fatalf("poller 0 busy %v s of %v s running (found %v %v), want 0 < busy <= running", busy, running, ok1, ok2)
	}
	if v, ok := m.first(`go_goroutines`); !ok || v < 1 {
		t.Fatalf("go_goroutines %v (found %v)", v, ok)
	}
	if code, body := nsGet(t, tp.n.ns, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
}

// TestSystemdNotify runs xvrd with a fake systemd notify socket and a
// 400 ms watchdog: it must say READY=1, pet the watchdog, and say
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	nettest.RequireRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ns := nettest.NewNS(t, "xvn")
	p := ns.Start(t, "env", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000", bin("xvrd"),
		"-socket", filepath.Join(dir, "xvrd.sock"), "-db", filepath.Join(dir, "xvrd.db"), "-metrics-addr", "")
	got := readNotify(t, conn, 15*time.Second, "READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1")
	t.Logf("notifications: %q", got)
	if err := p.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	readNotify(t, conn, 10*time.Second, "STOPPING=1")
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("xvrd after SIGTERM: %v\n%s", err, p.Output())
	}
}

// readNotify reads datagrams until it has seen want in order, or fails at
// the deadline.
func readNotify(t *testing.T, conn *net.UnixConn, within time.Duration, want ...string) []string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 4096)
	for len(want) > 0 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q (got %q): %v", want[0], got, err)
		}
		msg := string(buf[:n])
		got = append(got, msg)
		if strings.Contains(msg, want[0]) {
			want = want[1:]
		}
	}
	return got
}

// nsGet fetches path from xvrd's metrics address inside ns.
func nsGet(t *testing.T, ns *nettest.NS, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialIn(ns.Name)}}
	resp, err := c.Get("http://" + metricsAddr + path)
	if err != nil {
		t.Fatalf("GET %s in %s: %v", path, ns.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// dialIn dials from inside the named network namespace: the socket is made
// on a locked thread switched into it; the thread is switched back, or
// left locked (and so discarded) when that fails.
func dialIn(name string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("opening own netns: %w", err)
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("opening netns %s: %w", name, err)
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("entering netns %s: %w", name, err)
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		return c, err
	}
}

// scraped is a Prometheus text exposition as series → value.
type scraped []struct {
	series string
	value  float64
}

func parseMetrics(t *testing.T, body string) scraped {
	t.Helper()
	var out scraped
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q: %v", line, err)
		}
		out = append(out, struct {
			series string
			value  float64
		}{line[:i], v})
	}
	return out
}

// first is the value of the first series that starts with prefix.
func (s scraped) first(prefix string) (float64, bool) {
	for _, m := range s {
		if strings.HasPrefix(m.series, prefix) {
			return m.value, true
		}
	}
	return 0, false
}
