package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// relNode is a cniNode that remembers how its xvrd was started, so that the
// reliability tests can stop and start it again with the same flags.
type relNode struct {
	*cniNode
	args  []string
	owner *testing.T // the test whose end stops every xvrd started here
}

// newRelNode starts xvrd like newCNINode does (default network defaultCIDR,
// the node's conflist), with extra flags.
func newRelNode(t *testing.T, extra ...string) *relNode {
	t.Helper()
	nettest.RequireRoot(t)
	path := cniPath(t)
	dir := t.TempDir()
	n := &node{t: t, ns: nettest.NewNS(t, "xvn"), dir: dir, socket: filepath.Join(dir, "xvrd.sock")}
	args := append([]string{bin("xvrd"), "-socket", n.socket, "-db", filepath.Join(dir, "xvrd.db"),
		"-mac", vrouterMAC, "-reconcile", "500ms", "-default-cidr", defaultCIDR}, extra...)
	n.proc = n.ns.Start(t, args...)
	rn := &relNode{cniNode: &cniNode{node: n, c: api.NewClient(n.socket)}, args: args, owner: t}
	t.Cleanup(rn.c.Close)
	rn.waitAPI(t)
	rn.cfg = libcni.NewCNIConfigWithCacheDir([]string{path}, filepath.Join(dir, "cache"), nil)
	rn.list = rn.writeConf(t, "xvr")
	return rn
}

// restart starts a new xvrd with the same flags (the old one must have
// exited) and returns when its socket answers /v1/status: the moment it is
// ready, as systemd's READY=1 would say. The new xvrd lives until the test
// that made rn ends, so that pods a subtest added are deleted (their DEL
// cleanups) while it still runs.
func (rn *relNode) restart(t *testing.T) time.Time {
	t.Helper()
	rn.proc = rn.ns.Start(rn.owner, rn.args...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := rn.c.Status(ctx)
		cancel()
		if err == nil {
			return time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("restarted xvrd did not serve within 20s:\n%s", rn.proc.Output())
	return time.Time{}
}

// state is what must survive a restart: every network and every port.
type state struct {
	networks []api.Network
	ports    []api.Port
}

func (cn *cniNode) state(t *testing.T) state {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nets, err := cn.c.ListNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := cn.c.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Key() < nets[j].Key() })
	sort.Slice(ports, func(i, j int) bool { return ports[i].ID < ports[j].ID })
	return state{networks: nets, ports: ports}
}

// sameState fails t unless after has exactly before's networks and ports,
// every field equal (ids, VRFs, vifs, addresses, MACs, state).
func sameState(t *testing.T, before, after state) {
	t.Helper()
	if !reflect.DeepEqual(before.networks, after.networks) {
		t.Fatalf("networks changed across the restart:\nbefore %+v\nafter  %+v", before.networks, after.networks)
	}
	if len(before.ports) != len(after.ports) {
		t.Fatalf("%d ports before the restart, %d after:\nbefore %+v\nafter  %+v",
			len(before.ports), len(after.ports), before.ports, after.ports)
	}
	for i := range before.ports {
		if !reflect.DeepEqual(before.ports[i], after.ports[i]) {
			t.Fatalf("port changed across the restart:\nbefore %+v\nafter  %+v", before.ports[i], after.ports[i])
		}
	}
}

// xvrdPID is the pid of the process serving socket, from SO_PEERCRED.
func xvrdPID(t testing.TB, socket string) int {
	t.Helper()
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", socket, err)
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		t.Fatalf("SO_PEERCRED on %s: %v %v", socket, err, cerr)
	}
	return int(cred.Pid)
}

// procSample is one look at a process: resident memory, threads, open fds.
type procSample struct {
	at      time.Time
	rssKB   int
	threads int
	fds     int
}

func sampleProc(t testing.TB, pid int) procSample {
	t.Helper()
	s := procSample{at: time.Now()}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of pid %d: %v", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKB, _ = strconv.Atoi(fields[0])
		case "Threads":
			s.threads, _ = strconv.Atoi(fields[0])
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("listing fds of pid %d: %v", pid, err)
	}
	s.fds = len(ents)
	if s.rssKB == 0 {
		t.Fatalf("pid %d: no VmRSS in /proc status", pid)
	}
	return s
}

// inNetns runs f in the named network namespace (nettest.InNetns).
func inNetns(name string, f func() error) error { return nettest.InNetns(name, f) }

// probePort is the UDP port of the echo sockets.
const probePort = 7007

// echo answers every UDP datagram on probePort in a namespace with itself.
type echo struct{ conn net.PacketConn }

func startEcho(t *testing.T, nsName string) *echo {
	t.Helper()
	var e echo
	if err := inNetns(nsName, func() (err error) {
		e.conn, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", probePort))
		return err
	}); err != nil {
		t.Fatalf("echo in %s: %v", nsName, err)
	}
	t.Cleanup(func() { e.conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := e.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			e.conn.WriteTo(buf[:n], from) //nolint:errcheck // a lost echo is a lost probe
		}
	}()
	return &e
}

// prober sends a numbered UDP probe every interval from a namespace to an
// echo and records, for each reply, when its probe was sent and when the
// reply came back. It stops after limit at the latest.
type prober struct {
	name string
	conn net.PacketConn
	dst  *net.UDPAddr

	mu      sync.Mutex
	sent    []time.Time // by sequence number
	replies []reply
	done    chan struct{}
	stop    chan struct{}
}

type reply struct {
	seq        int
	sent, recv time.Time
}

func startProber(t *testing.T, name, nsName, dst string, interval, limit time.Duration) *prober {
	t.Helper()
	p := &prober{name: name, dst: &net.UDPAddr{IP: net.ParseIP(dst), Port: probePort},
		done: make(chan struct{}), stop: make(chan struct{})}
	if err := inNetns(nsName, func() (err error) {
		p.conn, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		t.Fatalf("prober in %s: %v", nsName, err)
	}
	go p.receive()
	go p.send(interval, limit)
	t.Cleanup(p.close)
	return p
}

func (p *prober) send(interval, limit time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(limit)
	var b [8]byte
	for seq := 0; ; seq++ {
		p.mu.Lock()
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		binary.BigEndian.PutUint64(b[:], uint64(seq))
		p.conn.WriteTo(b[:], p.dst) //nolint:errcheck // unreachable while xvrd is down: a lost probe
		select {
		case <-tick.C:
		case <-end:
			return
		case <-p.stop:
			return
		}
	}
}

func (p *prober) receive() {
	buf := make([]byte, 64)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if n != 8 {
			continue
		}
		seq := int(binary.BigEndian.Uint64(buf[:8]))
		p.mu.Lock()
		if seq < len(p.sent) {
			p.replies = append(p.replies, reply{seq: seq, sent: p.sent[seq], recv: now})
		}
		p.mu.Unlock()
	}
}

// close stops sending and receiving.
func (p *prober) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.conn.Close()
}

// counts returns how many probes were sent and answered.
func (p *prober) counts() (sent, answered int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent), len(p.replies)
}

// firstReplyAfter returns the first reply to a probe sent after t0.
func (p *prober) firstReplyAfter(t0 time.Time) (reply, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.sent.After(t0) {
			return r, true
		}
	}
	return reply{}, false
}

// waitAnswered waits up to within for a reply to a probe sent after now.
func (p *prober) waitAnswered(t *testing.T, within time.Duration) {
	t.Helper()
	t0 := time.Now()
	for time.Since(t0) < within {
		if _, ok := p.firstReplyAfter(t0); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, a := p.counts()
	t.Fatalf("prober %s: no reply within %v (%d sent, %d answered)", p.name, within, s, a)
}

// repliesBetween counts replies received in [from, to).
func (p *prober) repliesBetween(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.replies {
		if !r.recv.Before(from) && r.recv.Before(to) {
			n++
		}
	}
	return n
}

// scrape fetches xvrd's /metrics in the node namespace on a connection it
// closes afterwards (an idle keep-alive connection would hold an fd of
// xvrd's and skew the fd count).
func (cn *cniNode) scrape(t *testing.T) scraped {
	t.Helper()
	tr := &http.Transport{DialContext: dialIn(cn.ns.Name), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics in %s: %v", cn.ns.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return parseMetrics(t, string(b))
}
