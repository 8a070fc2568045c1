package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
)

// iperf runs an iperf3 server (one test) in srv on addr:port and a client
// in cli for secs seconds, one TCP stream.
func iperf(t testing.TB, srv, cli *nettest.NS, addr string, port, secs int) iperfRun {
	t.Helper()
	server := srv.Start(t, "iperf3", "-s", "-1", "-B", addr, "-p", strconv.Itoa(port))
	waitFor(t, "iperf3 listens", 10*time.Second, func() (bool, error) {
		out, err := srv.Try("ss", "-Hltn", "sport", "=", ":"+strconv.Itoa(port))
		return err == nil && strings.TrimSpace(out) != "", err
	})
	r, err := iperfIn(cli.Name, addr, port, secs)
	_ = server.Wait(5 * time.Second)
	if err != nil {
		t.Fatalf("iperf3 -c %s:%d: %v", addr, port, err)
	}
	return r
}

// connRate opens, uses (one HTTP GET) and closes connections from the
// namespace to url for d (at most max of them) and returns them per second.
func connRate(t testing.TB, nsName, url string, d time.Duration, max int) float64 {
	t.Helper()
	start := time.Now()
	n := 0
	for ; n < max && time.Since(start) < d; n++ {
		if _, err := httpGet(nsName, url); err != nil {
			t.Fatalf("connection %d to %s: %v", n, url, err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkEgress compares the two ways a pod reaches the outside, in one
// run on one topology (docs/decisions/0006): a default-network pod through
// the host interface and the node's masquerade, and a pod of a fabric-SNAT
// VN through xvr's own source NAT. Each: one TCP stream's Gbit/s to a
// listener in the underlay (iperf3), and short connections per second
// (connect, GET, close).
func BenchmarkEgress(b *testing.B) {
	o, fab1, _ := fabricTopo(b)
	n := o.nodes[0]
	host := n.addPod(b, "default", "egress-host", "") // eth0 only: the default network, through the host interface
	n.hostAddr(b)
	httpServe(b, o.underlay.Name, 8090, "outside")
	paths := []struct {
		name string
		pod  *cniPod
	}{{"host-masquerade", host}, {"fabric-snat", fab1}}
	for _, p := range paths { // both work, and the outside sees the node IP
		got, err := httpGet(p.pod.ns.Name, "http://"+underlayIP+":8090/")
		if err != nil || !strings.HasPrefix(got, "outside from "+nodeIPs[0]+":") {
			b.Fatalf("%s: %q, %v (want the node IP %s as the source)\n%s", p.name, got, err, nodeIPs[0], n.diag(b))
		}
	}
	res := map[string][]float64{}
	b.ResetTimer()
	for i := range b.N {
		for j, p := range paths {
			r := iperf(b, o.underlay, p.pod.ns, underlayIP, 5400+2*i+j, 2)
			// At most 500 connections: fabric SNAT holds a closed flow's
			// port for 10 s and its TCP pool has 1024 (TF's).
			rate := connRate(b, p.pod.ns.Name, "http://"+underlayIP+":8090/", time.Second, 500)
			res[p.name] = append(res[p.name], r.bytes*8/r.seconds/1e9, float64(r.retrans), rate)
		}
	}
	b.StopTimer()
	for _, p := range paths {
		v := res[p.name]
		var g, re, c float64
		for k := 0; k < len(v); k += 3 {
			g, re, c = g+v[k], re+v[k+1], c+v[k+2]
		}
		runs := float64(len(v) / 3)
		b.ReportMetric(g/runs, p.name+"-Gbit/s")
		b.ReportMetric(c/runs, p.name+"-conn/s")
		b.Logf("%s: %.2f Gbit/s one TCP stream (%.0f retransmits), %.0f connections/s", p.name, g/runs, re/runs, c/runs)
	}
}
