package e2e

import (
	"os"

	"golang.org/x/sys/unix"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

const twoVNs = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-left-1
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.10.0/24"
    opencontrail.org/ip_fabric_forwarding: "false"
    opencontrail.org/ip_fabric_snat: "false"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-right-1
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.20.0/24"
spec:
  config: '{ "cniVersion": "0.3.1", "type": "contrail-k8s-cni" }'
`

type threePods struct {
	n       *node
	a, b, c *nettest.Pod
}

// setupThreePods: pods a and b on vn-left-1, c on vn-right-1.
func setupThreePods(t *testing.T) *threePods {
	n := newNode(t)
	n.applyNADs(twoVNs)
	return &threePods{n: n,
		a: n.addPod("default/vn-left-1", "198.18.10.1/24", "198.18.10.254", "02:00:00:00:0a:01"),
		b: n.addPod("default/vn-left-1", "198.18.10.2/24", "198.18.10.254", "02:00:00:00:0a:02"),
		c: n.addPod("default/vn-right-1", "198.18.20.1/24", "198.18.20.254", "02:00:00:00:14:01"),
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustPing(t *testing.T, p *nettest.Pod, dst string, extra ...string) string {
	t.Helper()
	out, err := p.Ping(addr(dst), 3, extra...)
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, p.NS.Name, err, out)
	}
	return out
}

func TestSingleNode(t *testing.T) {
	tp := setupThreePods(t)
	n := tp.n

	t.Run("ports-up", func(t *testing.T) {
		var ports []api.Port
		n.ctlJSON(t, &ports, "port", "list")
		if len(ports) != 3 {
			t.Fatalf("%d ports: %+v", len(ports), ports)
		}
		for _, p := range ports {
			if p.State != "up" {
				t.Fatalf("port %s is %q", p.ID, p.State)
			}
		}
	})
	t.Run("contrail-names", func(t *testing.T) {
		var nets []api.Network
		n.ctlJSON(t, &nets, "network", "list")
		byName := map[string]api.Network{}
		for _, x := range nets {
			byName[x.Key()] = x
		}
		left := byName["default/vn-left-1"]
		if len(nets) != 3 || left.VNName != "k8s-vn-left-1-pod-network" || left.Project != "k8s-default" ||
			left.Gateway != "198.18.10.254" || left.DNS != "198.18.10.253" || byName["default/cluster-wide-default"].CIDR == "" {
			t.Fatalf("networks (want vn-left-1, vn-right-1 and the cluster default): %+v", nets)
		}
	})
	t.Run("gateway-answers-arp", func(t *testing.T) {
		mustPing(t, tp.a, "198.18.10.254")
		out := tp.a.NS.Run(t, "ip", "neigh", "show", "198.18.10.254", "dev", "eth0")
		if !strings.Contains(out, "lladdr "+vrouterMAC) {
			t.Fatalf("gateway neighbour entry %q lacks the vRouter MAC %s", out, vrouterMAC)
		}
	})
	t.Run("same-vn-ping", func(t *testing.T) {
		mustPing(t, tp.a, "198.18.10.2")
		mustPing(t, tp.b, "198.18.10.1")
	})
	t.Run("cross-vn-dropped", func(t *testing.T) {
		before := n.dropCount(t, "no_route")
		if out, err := tp.a.Ping(addr("198.18.20.1"), 3); err == nil {
			t.Fatalf("pod on vn-left-1 reached vn-right-1:\n%s", out)
		}
		if out, err := tp.c.Ping(addr("198.18.10.1"), 2); err == nil {
			t.Fatalf("pod on vn-right-1 reached vn-left-1:\n%s", out)
		}
		if after := n.dropCount(t, "no_route"); after < before+5 {
			t.Fatalf("no_route drops went from %d to %d, want +5", before, after)
		}
	})
	t.Run("ttl-exceeded", func(t *testing.T) {
		before := n.dropCount(t, "ttl_exceeded")
		out, _ := tp.a.Ping(addr("198.18.10.2"), 1, "-t", "1")
		if !strings.Contains(out, "Time to live exceeded") || !strings.Contains(out, "198.18.10.254") {
			t.Fatalf("no time-exceeded from the gateway:\n%s", out)
		}
		if n.dropCount(t, "ttl_exceeded") <= before {
			t.Fatal("ttl_exceeded not counted")
		}
	})
	t.Run("tcp-100MB", func(t *testing.T) {
		tp.b.NS.TCPTransfer(t, tp.a.NS, addr("198.18.10.2"), 5001, 100<<20)
		var vifs []api.Vif
		n.ctlJSON(t, &vifs, "vif")
		for _, v := range vifs {
			if v.Name == tp.b.HostIf && v.TXBytes < 100<<20 {
				t.Fatalf("vif %d sent %d bytes to pod b, want >= 100 MiB", v.ID, v.TXBytes)
			}
		}
	})
	t.Run("malformed-flood", func(t *testing.T) {
		invalid := func() uint64 {
			var ds []api.DropStat
			n.ctlJSON(t, &ds, "dropstats", "--all")
			var sum uint64
			for _, d := range ds {
				sum += d.Count
			}
			return sum
		}
		before := invalid()
		sent := 0
		for _, kind := range []string{"random", "truncated-eth", "truncated-ip", "bad-ihl", "bad-total-length", "ipv6", "unknown-ethertype", "mixed"} {
			sent += tp.a.RawSend(t, 5000, kind)
		}
		if got := invalid() - before; got < uint64(sent)*9/10 {
			t.Fatalf("sent %d malformed frames, %d counted as invalid drops", sent, got)
		}
		mustPing(t, tp.a, "198.18.10.2")
	})
	t.Run("introspection", func(t *testing.T) {
		var rt []api.RouteEntry
		n.ctlJSON(t, &rt, "rt", "--vn", "default/vn-left-1")
		want := map[string]string{"198.18.10.1/32": "encap", "198.18.10.2/32": "encap", "198.18.10.254/32": "receive", "198.18.10.253/32": "receive"}
		if len(rt) != len(want) {
			t.Fatalf("routes: %+v", rt)
		}
		for _, e := range rt {
			if want[e.Prefix] != e.Type {
				t.Fatalf("route %s is %s, want %s", e.Prefix, e.Type, want[e.Prefix])
			}
		}
		var nhs []api.NextHop
		n.ctlJSON(t, &nhs, "nh")
		if len(nhs) != 5 {
			t.Fatalf("next hops: %+v", nhs)
		}
		for _, cmd := range [][]string{{"vif"}, {"rt", "--vn", "default/vn-left-1"}, {"nh"}, {"dropstats"}} {
			if out := n.mustCtl(t, cmd...); len(strings.TrimSpace(out)) == 0 {
				t.Fatalf("xvrctl %v printed nothing", cmd)
			}
		}
	})
}

var seqRE = regexp.MustCompile(`icmp_seq=(\d+) `)

// TestRestartUnderTraffic kills xvrd with SIGKILL while a pod pings another,
// starts it again, and checks that the pings resume with nothing re-added.
func TestRestartUnderTraffic(t *testing.T) {
	tp := setupThreePods(t)
	n := tp.n
	mustPing(t, tp.a, "198.18.10.2")
	ping := tp.a.NS.Start(t, "ping", "-i", "0.1", "-W", "1", "-w", "12", "198.18.10.2")
	time.Sleep(2 * time.Second)
	if err := n.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	killedAt := lastSeq(ping.Output())
	n.start()
	if err := ping.Wait(20 * time.Second); err != nil {
		t.Logf("ping exit: %v", err) // lost pings make ping exit 1; the replies below decide
	}
	out := ping.Output()
	if last := lastSeq(out); last < killedAt+30 {
		t.Fatalf("pings did not resume after restart (last reply seq %d, at kill %d):\n%s\nxvrd:\n%s",
			last, killedAt, tail(out, 2000), tail(n.proc.Output(), 2000))
	}
	mustPing(t, tp.b, "198.18.10.1")
	var ports []api.Port
	n.ctlJSON(t, &ports, "port", "list")
	if len(ports) != 3 {
		t.Fatalf("after restart %d ports", len(ports))
	}
}

func lastSeq(out string) int {
	last := 0
	for _, m := range seqRE.FindAllStringSubmatch(out, -1) {
		if v, _ := strconv.Atoi(m[1]); v > last {
			last = v
		}
	}
	return last
}

// TestStopDetaches: on SIGTERM xvrd exits cleanly, takes its XDP program off
// every device it attached and removes its socket.
func TestStopDetaches(t *testing.T) {
	n := newNode(t)
	n.applyNADs(twoVNs)
	pod := n.addPod("default/vn-left-1", "198.18.10.1/24", "198.18.10.254", "02:00:00:00:0a:01")
	if out := n.ns.Run(t, "ip", "-d", "link", "show", "dev", pod.HostIf); !strings.Contains(out, "prog/xdp") {
		t.Fatalf("no XDP program on %s while xvrd runs:\n%s", pod.HostIf, out)
	}
	if err := n.proc.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := n.proc.Wait(15 * time.Second); err != nil {
		t.Fatalf("xvrd did not exit cleanly on SIGTERM: %v\n%s", err, tail(n.proc.Output(), 2000))
	}
	if out := n.ns.Run(t, "ip", "-d", "link", "show", "dev", pod.HostIf); strings.Contains(out, "prog/xdp") {
		t.Fatalf("XDP program left on %s after xvrd stopped:\n%s", pod.HostIf, out)
	}
	if _, err := os.Stat(n.socket); !os.IsNotExist(err) {
		t.Fatalf("socket %s left behind: %v", n.socket, err)
	}
}
