package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/bench/topo"
	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/hostif"
)

// Node-network benchmarks: what a Kubernetes node's own traffic costs
// through xvr, next to Linux routing with the same kube-proxy, in one run
// (the figures share a machine state). One API server, the real
// kube-controller-manager and two node namespaces on one underlay:
//
//   - xvr: node-0 as TestKubeNodeNetwork builds it (xvrd -kubeconfig, its
//     host interface xvr-host/xvr-net, pods attached by the real CNI, the
//     real kube-proxy in iptables mode);
//   - linux: linux-0, the same shape (fabric veth with the node IP, the
//     real kube-proxy in iptables mode against the same API server) whose
//     pods are plain veth pairs routed by the node's kernel (gateway /32 and
//     a /32 route on each host end, proxy ARP); transmit checksum offload
//     is off on the pods' eth0 as on xvr's pods, the host ends keep the
//     veth defaults.
//
// Each node has a server pod (iperf3 -s, a short-connection server)
// behind a ClusterIP Service of its own and a client pod; everything is
// on one node per datapath. Sub-benchmarks (measure/datapath):
//
//	node-pod/*          iperf3, one TCP stream, node namespace -> server pod IP     Gbit/s
//	pod-clusterip/*     iperf3, one TCP stream, client pod -> ClusterIP -> server   Gbit/s
//	pod-service-conn/*  connect, one request line, answer, close (server closes
//	                    first), kbConnWorkers at a time, client pod -> ClusterIP  conn/s
//
// retrans/op is iperf3's sender retransmits per op; failed counts short
// connections that did not complete; xvrd-cpu-% is xvrd's CPU time over
// the sub-benchmark (100 = one vCPU) and machine-cpu-% the whole
// machine's busy time (other processes' included). ns/op is reported as 0
// (an op is a fixed time). The parent logs each figure next to its peer
// with the ratio (with -count, the last run of each). Run with:
//
//	go test -run '^$' -bench KubeNodeNetwork -benchtime 3x ./e2e/
const (
	kbIperfPort   = 5201
	kbConnPort    = 8080 // the short-connection server, in the server pod
	kbSvcConnPort = 80   // its Service port
	// kbIperfSecs is one throughput op (iperf3 -t).
	kbIperfSecs = 2
	// kbMaxSub bounds the ops of one sub-benchmark whatever b.N is.
	kbMaxSub = 20 * time.Second
	// One short-connection op: up to kbConnsPerOp connections or
	// kbConnOpTime; at most kbMaxConns per sub-benchmark, which bounds the
	// conntrack and TIME_WAIT entries left behind.
	kbConnWorkers = 4
	kbConnsPerOp  = 4000
	kbConnOpTime  = 2 * time.Second
	kbMaxConns    = 16000
	kbConnTimeout = 2 * time.Second
)

// kbPath is one datapath's node, pods and Service.
type kbPath struct {
	name     string // "xvr" or "linux"
	node     *nettest.NS
	server   *nettest.NS // the server pod
	serverIP string
	client   *nettest.NS // the client pod
	vip      string      // the server's Service's ClusterIP
	xvr      *kubeNode   // the xvr node; nil for linux
	xvrdPID  int         // its xvrd's
}

// kbCPU is a sample of the CPU time xvrd (if any) and the whole machine
// have used.
type kbCPU struct {
	at         time.Time
	xvrd, busy time.Duration
}

func (p *kbPath) cpu(b *testing.B) kbCPU {
	s := kbCPU{at: time.Now()}
	sys, err := topo.ReadSystemCPU()
	if err != nil {
		b.Fatal(err)
	}
	s.busy = sys.Busy
	if p.xvrdPID != 0 {
		if s.xvrd, err = topo.ProcCPU(p.xvrdPID); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// report reports the CPU used since c0 as percent of one CPU: xvrd's
// (xvr only) and the machine's busy time (all processes, other tests'
// included; 200 is both vCPUs), and returns them for the table.
func (p *kbPath) report(b *testing.B, c0, c1 kbCPU) string {
	wall := c1.at.Sub(c0.at).Seconds()
	busy := 100 * (c1.busy - c0.busy).Seconds() / wall
	b.ReportMetric(busy, "machine-cpu-%")
	if p.xvrdPID == 0 {
		return fmt.Sprintf("; machine %.0f%% CPU", busy)
	}
	x := 100 * (c1.xvrd - c0.xvrd).Seconds() / wall
	b.ReportMetric(x, "xvrd-cpu-%")
	return fmt.Sprintf("; xvrd %.0f%%, machine %.0f%% CPU", x, busy)
}

// kbMeasure is one measurement of both datapaths.
type kbMeasure struct {
	name, what, unit string
	run              func(b *testing.B, p *kbPath) kbFigure
}

// kbFigure is what one sub-benchmark measured.
type kbFigure struct {
	value float64
	note  string // retransmits, failures
}

var kbMeasures = []kbMeasure{
	{"node-pod", "node -> pod TCP, 1 stream", "Gbit/s", func(b *testing.B, p *kbPath) kbFigure {
		return benchTCP(b, p.node, p.serverIP)
	}},
	{"pod-clusterip", "pod -> ClusterIP TCP, 1 stream", "Gbit/s", func(b *testing.B, p *kbPath) kbFigure {
		return benchTCP(b, p.client, p.vip)
	}},
	{"pod-service-conn", fmt.Sprintf("pod -> Service short connections (%d at a time)", kbConnWorkers), "conn/s",
		func(b *testing.B, p *kbPath) kbFigure {
			return benchConns(b, p.client, net.JoinHostPort(p.vip, strconv.Itoa(kbSvcConnPort)))
		}},
}

func BenchmarkKubeNodeNetwork(b *testing.B) {
	if testing.Short() {
		b.Skip("a real cluster (kube-apiserver, kube-controller-manager, kube-proxy) is not started under -short")
	}
	paths := newKubeBench(b)
	figs := map[string]kbFigure{}
	for _, m := range kbMeasures {
		for _, p := range paths {
			b.Run(m.name+"/"+p.name, func(b *testing.B) {
				c0 := p.cpu(b)
				f := m.run(b, p)
				f.note += p.report(b, c0, p.cpu(b))
				figs[m.name+"/"+p.name] = f
			})
		}
	}
	for _, m := range kbMeasures {
		x, l := figs[m.name+"/xvr"], figs[m.name+"/linux"]
		ratio := 0.0
		if l.value > 0 {
			ratio = x.value / l.value
		}
		b.Logf("%-48s xvr %8.2f %s%s | linux routing + kube-proxy %8.2f %s%s | %.2fx",
			m.what, x.value, m.unit, x.note, l.value, m.unit, l.note, ratio)
	}
	for _, p := range paths {
		if p.xvr != nil {
			logDrops(b, p.xvr)
		}
	}
}

// newKubeBench builds the cluster and both datapaths, starts the servers
// and waits until each client reaches its Service.
func newKubeBench(b *testing.B) []*kbPath {
	kc := newKubeClusterWith(b, 1, kubetest.Options{AdvertiseAddress: net.ParseIP(underlayIP)})
	kc.startManager(b)
	kc.waitVNReady(b, "default", "cluster-wide-default")
	ln := kc.addLinuxNode(b)
	kc.startProxies(b, ln)
	n := kc.nodes[0]
	xs := kc.xvrPod(b, n, "bench-xvr-server", map[string]string{"bench-server": "xvr"})
	xc := kc.xvrPod(b, n, "bench-xvr-client", nil)
	ls := ln.attach(b, kc, "bench-linux-server", map[string]string{"bench-server": "linux"})
	lc := ln.attach(b, kc, "bench-linux-client", nil)
	paths := []*kbPath{
		{name: "xvr", node: n.ns, server: xs.ns, serverIP: xs.addr(b, "eth0"), client: xc.ns, xvr: n, xvrdPID: pidIn(b, n.ns, "xvrd")},
		{name: "linux", node: ln.ns, server: ls.NS, serverIP: ls.IP.Addr().String(), client: lc.NS},
	}
	for _, p := range paths {
		kc.benchServers(b, p)
	}
	b.Logf("offloads: xvr pod eth0 %s; xvr node %s %s; linux pod eth0 %s; linux host end %s",
		offloads(xc.ns, "eth0"), hostif.DefaultName, offloads(n.ns, hostif.DefaultName), offloads(lc.NS, "eth0"),
		offloads(ln.ns, lc.HostIf))
	return paths
}

// startProxies is startNodeNetwork (kube-controller-manager, kube-proxy in
// iptables mode on the xvr nodes) plus the real kube-proxy on the Linux
// node, with its pod range as clusterCIDR.
func (kc *kubeCluster) startProxies(b *testing.B, ln *linuxNode) {
	kc.startNodeNetwork(b, kubetest.ProxyModeIPTables)
	ln.proxy = kc.startKubeProxy(b, ln.ns, ln.name, ln.ip, linuxPodCIDR, kubetest.ProxyModeIPTables)
	waitKubeProxy(b, ln.ns, ln.name, ln.proxy, kubetest.ProxyModeIPTables)
}

// xvrPod creates, attaches (real CNI) and readies a pod on the xvr node.
func (kc *kubeCluster) xvrPod(b *testing.B, n *kubeNode, name string, labels map[string]string) *cniPod {
	p := kc.podWith(b, "default", name, n, "", labels)
	s := n.attach(b, p)
	kc.ready(b, p, n, s)
	return s
}

// benchServers starts iperf3 and the short-connection server in p's server
// pod, creates its Service and waits until kube-controller-manager has
// its EndpointSlice and the client reaches the server through it.
func (kc *kubeCluster) benchServers(b *testing.B, p *kbPath) {
	iperf := p.server.Start(b, "iperf3", "-s", "-p", strconv.Itoa(kbIperfPort))
	shortConnServe(b, p.server.Name, kbConnPort)
	name := "bench-" + p.name
	svc := kc.service(b, name, map[string]string{"bench-server": p.name}, corev1.ServiceTypeClusterIP, corev1.ServiceAffinityNone,
		port("iperf", corev1.ProtocolTCP, kbIperfPort, kbIperfPort), port("conn", corev1.ProtocolTCP, kbSvcConnPort, kbConnPort))
	if err := kc.c.Get(context.Background(), client.ObjectKeyFromObject(svc), svc); err != nil {
		b.Fatal(err)
	}
	p.vip = svc.Spec.ClusterIP
	waitFor(b, "kube-controller-manager's EndpointSlice for "+name, 30*time.Second, func() (bool, error) {
		eps := kc.endpoints(b, name)
		return len(eps) == 1 && eps[0] == p.serverIP, fmt.Errorf("endpoints %v, want [%s]\nkcm log:\n%s", eps, p.serverIP, tail(kc.kcm.Log(), 1500))
	})
	addr := net.JoinHostPort(p.vip, strconv.Itoa(kbSvcConnPort))
	waitFor(b, p.name+": client pod -> "+name+" "+addr, 30*time.Second, func() (bool, error) {
		err := inNetns(p.client.Name, func() error { return shortConn(addr) })
		return err == nil, err
	})
	waitFor(b, p.name+": iperf3 listens in the server pod", 10*time.Second, func() (bool, error) {
		out, err := p.server.Try("ss", "-Hltn", "sport", "=", ":"+strconv.Itoa(kbIperfPort))
		return err == nil && strings.TrimSpace(out) != "", fmt.Errorf("ss: %q, %v; iperf3: %s", out, err, iperf.Output())
	})
}

// benchTCP runs b.N iperf3 ops (one stream, kbIperfSecs each, at most
// kbMaxSub in all) from the namespace to dst and reports the received
// throughput over all of them.
func benchTCP(b *testing.B, from *nettest.NS, dst string) kbFigure {
	var bytes, secs float64
	var retrans, ops int
	start := time.Now()
	b.ResetTimer()
	for ; ops < b.N && (ops == 0 || time.Since(start) < kbMaxSub); ops++ {
		r, err := iperfIn(from.Name, dst, kbIperfPort, kbIperfSecs)
		if err != nil {
			b.Fatalf("iperf3 %s -> %s: %v", from.Name, dst, err)
		}
		bytes += r.bytes
		secs += r.seconds
		retrans += r.retrans
	}
	b.StopTimer()
	gbps := bytes * 8 / secs / 1e9
	b.ReportMetric(gbps, "Gbit/s")
	b.ReportMetric(float64(retrans)/float64(ops), "retrans/op")
	b.ReportMetric(0, "ns/op")
	return kbFigure{value: gbps, note: fmt.Sprintf(" (%d retrans in %d s)", retrans, ops*kbIperfSecs)}
}

type iperfRun struct {
	bytes, seconds float64
	retrans        int
}

// iperfIn runs one iperf3 client to dst:port for secs in the namespace,
// bounded by a timeout, and returns what the server received.
func iperfIn(nsName, dst string, port, secs int) (iperfRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, "iperf3", "-c", dst, "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000").Output()
	var res struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Seconds float64 `json:"seconds"`
				Bytes   float64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return iperfRun{}, errors.Join(fmt.Errorf("iperf3 output %q: %w", tail(string(out), 500), jerr), err)
	}
	if res.Error != "" {
		return iperfRun{}, fmt.Errorf("iperf3: %s", res.Error)
	}
	s := res.End.SumReceived
	if s.Seconds <= 0 || s.Bytes <= 0 {
		return iperfRun{}, fmt.Errorf("iperf3 received %v bytes in %v s", s.Bytes, s.Seconds)
	}
	return iperfRun{bytes: s.Bytes, seconds: s.Seconds, retrans: res.End.SumSent.Retransmits}, nil
}

// benchConns runs b.N short-connection ops from the namespace to addr (at
// most kbMaxSub and kbMaxConns in all) and reports completed connections
// per second.
func benchConns(b *testing.B, from *nettest.NS, addr string) kbFigure {
	var total connResult
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N && total.ok+total.failed < kbMaxConns && (i == 0 || time.Since(start) < kbMaxSub); i++ {
		r := connLoop(from.Name, addr, kbConnWorkers, min(kbConnsPerOp, kbMaxConns-total.ok-total.failed), kbConnOpTime)
		total.ok += r.ok
		total.failed += r.failed
		total.elapsed += r.elapsed
		if total.err == nil {
			total.err = r.err
		}
	}
	b.StopTimer()
	if total.ok == 0 {
		b.Fatalf("no short connection to %s completed (%d failed, first: %v)", addr, total.failed, total.err)
	}
	rate := float64(total.ok) / total.elapsed.Seconds()
	b.ReportMetric(rate, "conn/s")
	b.ReportMetric(float64(total.failed), "failed")
	b.ReportMetric(0, "ns/op")
	note := fmt.Sprintf(" (%d conns)", total.ok)
	if total.failed > 0 {
		b.Logf("%d of %d connections to %s failed; first: %v", total.failed, total.ok+total.failed, addr, total.err)
		note = fmt.Sprintf(" (%d conns, %d failed)", total.ok, total.failed)
	}
	return kbFigure{value: rate, note: note}
}

type connResult struct {
	ok, failed int
	elapsed    time.Duration
	err        error // the first failure
}

// connLoop makes up to n short connections to addr from inside the
// namespace, workers at a time, for at most d.
func connLoop(nsName, addr string, workers, n int, d time.Duration) connResult {
	var (
		mu   sync.Mutex // guards res
		res  connResult
		left atomic.Int64
		wg   sync.WaitGroup
	)
	left.Store(int64(n))
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, failed int
			var first error
			err := inNetns(nsName, func() error {
				for left.Add(-1) >= 0 && time.Now().Before(deadline) {
					if err := shortConn(addr); err != nil {
						failed++
						if first == nil {
							first = err
						}
					} else {
						ok++
					}
				}
				return nil
			})
			if err != nil && first == nil {
				first = err
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			if res.err == nil {
				res.err = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// shortConn connects to addr, sends one request line, reads the answer
// to EOF (the server closes first) and closes.
func shortConn(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, kbConnTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(kbConnTimeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "?\n"); err != nil {
		return err
	}
	got, err := io.ReadAll(io.LimitReader(c, 64))
	if err != nil {
		return err
	}
	if string(got) != "ok\n" {
		return fmt.Errorf("answer %q, want \"ok\\n\"", got)
	}
	return nil
}

// shortConnServe answers every connection on port in the namespace: it
// reads one line, writes "ok\n" and closes.
func shortConnServe(t testing.TB, nsName string, port int) {
	t.Helper()
	ln := listenTCPIn(t, nsName, port)
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(10 * time.Millisecond) // EMFILE and the like
				continue
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(kbConnTimeout)) //nolint:errcheck // the read reports it
				if _, err := bufio.NewReaderSize(c, 64).ReadString('\n'); err == nil {
					io.WriteString(c, "ok\n") //nolint:errcheck // a lost answer is a failed connection
				}
			}()
		}
	}()
}

// pidIn returns the pid of the one process named comm in the namespace.
func pidIn(b *testing.B, ns *nettest.NS, comm string) int {
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		b.Fatalf("ip netns pids %s: %v", ns.Name, err)
	}
	var found []int
	for _, f := range strings.Fields(string(out)) {
		c, err := os.ReadFile("/proc/" + f + "/comm")
		if pid, perr := strconv.Atoi(f); err == nil && perr == nil && strings.TrimSpace(string(c)) == comm {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		b.Fatalf("processes named %s in %s: %v, want one", comm, ns.Name, found)
	}
	return found[0]
}

// offloads is dev's transmit checksum, TSO, GSO and GRO settings in ns.
func offloads(ns *nettest.NS, dev string) string {
	out, err := ns.Try("ethtool", "-k", dev)
	if err != nil {
		return "?"
	}
	var fs []string
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		switch k { // tx-tcp-segmentation, not tcp-segmentation-offload: that stays "on" when only requested
		case "tx-checksumming", "tx-tcp-segmentation", "generic-segmentation-offload", "generic-receive-offload":
			if ok {
				fs = append(fs, k+"="+strings.Fields(v)[0])
			}
		}
	}
	return "[" + strings.Join(fs, " ") + "]"
}

// logDrops logs the xvr node's non-zero drop reasons.
func logDrops(b *testing.B, n *kubeNode) {
	out, err := n.ctl("dropstats", "--all", "-o", "json")
	if err != nil {
		b.Logf("xvrctl dropstats: %v", err)
		return
	}
	var ds []api.DropStat
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		b.Logf("xvrctl dropstats: %v", err)
		return
	}
	var nz []string
	for _, d := range ds {
		if d.Count != 0 {
			nz = append(nz, fmt.Sprintf("%s=%d", d.Reason, d.Count))
		}
	}
	b.Logf("xvrd drops on %s after all measures: %v", n.name, nz)
}
