package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvr-project/xvr/vrouter/api"
)

// fakeAgent answers Status, or blocks until ctx is done when hung.
type fakeAgent struct{ hung bool }

func (f fakeAgent) Status(ctx context.Context) api.Status {
	if f.hung {
		<-ctx.Done()
	}
	return api.Status{}
}

func testOps(ag statuser, running, pollers int32) *ops {
	r := new(atomic.Int32)
	r.Store(running)
	return &ops{ag: ag, running: r, pollers: int(pollers), log: slog.New(slog.DiscardHandler)}
}

func TestHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := testOps(fakeAgent{}, 2, 2).health(ctx); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	if err := testOps(fakeAgent{}, 1, 2).health(ctx); err == nil || err.Error() != "1 of 2 pollers running" {
		t.Fatalf("a stopped poller: %v", err)
	}
	if err := testOps(fakeAgent{hung: true}, 2, 2).health(ctx); err == nil || !strings.Contains(err.Error(), "agent") {
		t.Fatalf("a hung agent: %v", err)
	}
}

// TestWatchdogPetsOnlyWhenHealthy: WATCHDOG=1 goes to NOTIFY_SOCKET while
// healthy and not while a poller is down.
func TestWatchdogPetsOnlyWhenHealthy(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	testOps(fakeAgent{}, 0, 1).petIfHealthy(context.Background(), 100*time.Millisecond)
	testOps(fakeAgent{}, 1, 1).petIfHealthy(context.Background(), 100*time.Millisecond)
	if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "WATCHDOG=1" {
		t.Fatalf("first datagram %q, %v; want WATCHDOG=1", buf[:n], err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("a second datagram %q: the unhealthy call petted too", buf[:n])
	}
}

// TestWatchdogOff: without WATCHDOG_USEC the watchdog returns at once.
func TestWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() {
		testOps(fakeAgent{}, 1, 1).watchdog(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("watchdog ran without WATCHDOG_USEC")
	}
}

func TestHostAccess(t *testing.T) {
	def := netip.MustParsePrefix("198.18.104.0/22")
	nets := []api.Network{
		{Name: "default", CIDR: "198.18.104.0/22", HostAccess: true},  // the default network itself
		{Name: "green", CIDR: "198.18.102.0/24", HostAccess: true},    // in
		{Name: "blue", CIDR: "198.18.101.0/24"},                       // not opted in
		{Name: "inner", CIDR: "198.18.105.0/24", HostAccess: true},    // overlaps the default network
		{Name: "green2", CIDR: "198.18.102.128/25", HostAccess: true}, // overlaps green
		{Name: "ref", HostAccess: true, Ref: &api.NetworkRef{Name: "x"}},
	}
	got := hostAccess(nets, def)
	if len(got) != 1 || got[0] != netip.MustParsePrefix("198.18.102.0/24") {
		t.Fatalf("hostAccess = %v, want [198.18.102.0/24]", got)
	}
}
