package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/hostif"
)

// hostAddr waits for the node's host interface to be configured and
// returns its address (the host port's, in the default network).
func (cn *cniNode) hostAddr(t testing.TB) string {
	t.Helper()
	var ip string
	waitFor(t, "the host interface "+hostif.DefaultName+" configured", 20*time.Second, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := cn.c.GetPort(ctx, "host")
		if err != nil {
			return false, err
		}
		out, err := cn.ns.Try("ip", "-4", "-o", "addr", "show", "dev", hostif.DefaultName)
		if err != nil || !strings.Contains(out, " "+p.IP+"/32 ") {
			return false, fmt.Errorf("%s has %q, want %s/32 (%v)\nxvrd log:\n%s", hostif.DefaultName, out, p.IP, err, tail(cn.proc.Output(), 1500))
		}
		ip = p.IP
		return true, nil
	})
	return ip
}

// kernelRoutes lists the routes xvrd installed in the node's kernel.
func (cn *cniNode) kernelRoutes(t testing.TB) string {
	t.Helper()
	out, _ := cn.ns.Try("ip", "-4", "route", "show", "proto", fmt.Sprint(hostif.RouteProtocol))
	return strings.TrimSpace(out)
}

// httpServe answers GET / in the namespace on port with body.
func httpServe(t testing.TB, nsName string, port int, body string) {
	t.Helper()
	ln := listenTCPIn(t, nsName, port)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", body, r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
}

// listenTCPIn listens on port (every address) inside the namespace until
// the test ends.
func listenTCPIn(t testing.TB, nsName string, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(nsName, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listening on :%d in %s: %v", port, nsName, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// httpGet does a GET from inside the namespace, as kubelet's httpGet probe
// does from the node, and returns the body.
func httpGet(nsName, url string) (string, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(nsName, func() (err error) {
			d := net.Dialer{Timeout: 3 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return line, nil
}

// tcpProbe connects from the namespace as kubelet's tcpSocket probe does.
func tcpProbe(nsName, addr string) error {
	return inNetns(nsName, func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// TestHostInterface: the node's kernel reaches its pods through xvr-host,
// as kubelet's probes do (httpGet, tcpSocket, UDP, ping, a TCP transfer),
// and pods reach the node's addresses; secondary VNs stay unreachable;
// the kernel routes survive a restart of xvrd and go with -uninstall.
func TestHostInterface(t *testing.T) {
	cn := newCNINode(t)
	// Pods are the subtest's, so their DELs run while the last xvrd, the
	// test's, still serves.
	t.Run("walk", func(st *testing.T) { hostWalk(st, t, cn) })
}

func hostWalk(t, owner *testing.T, cn *cniNode) {
	cn.apply(t, `
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-blue
  annotations:
    opencontrail.org/cidr: "198.18.101.0/24"
spec:
  config: '{"cniVersion":"1.0.0","type":"xvr"}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-green
  annotations:
    opencontrail.org/cidr: "198.18.102.0/24"
    xvr.io/host-access: "true"
spec:
  config: '{"cniVersion":"1.0.0","type":"xvr"}'
`)
	hostIP := cn.hostAddr(t)
	if want := "198.18.100.252"; hostIP != want { // the highest free address: pods' numbering is untouched
		t.Errorf("host port address %s, want %s", hostIP, want)
	}
	var routes string
	waitFor(t, "kernel routes for the default network and vn-green (host access)", 10*time.Second, func() (bool, error) {
		routes = cn.kernelRoutes(t)
		for _, p := range []string{defaultCIDR, "198.18.102.0/24"} {
			if !strings.Contains(routes, p+" via 198.18.100.254 dev "+hostif.DefaultName) || !strings.Contains(routes, "src "+hostIP) {
				return false, fmt.Errorf("kernel routes %q, want %s via the gateway on %s from %s", routes, p, hostif.DefaultName, hostIP)
			}
		}
		return !strings.Contains(routes, "198.18.101.0"), fmt.Errorf("kernel routes %q include vn-blue", routes)
	})
	a := cn.addPod(t, "default", "pod-a", "vn-blue,vn-green")
	aIP, blueIP, greenIP := a.addr(t, "eth0"), a.addr(t, "eth1"), a.addr(t, "eth2")
	if aIP != "198.18.100.1" {
		t.Errorf("first pod got %s, want 198.18.100.1", aIP)
	}

	// Node -> pod: what kubelet's probes do.
	httpServe(t, a.ns.Name, 8080, "pod-a")
	body, err := httpGet(cn.ns.Name, "http://"+aIP+":8080/")
	if err != nil || !strings.HasPrefix(body, "pod-a from "+hostIP+":") {
		t.Fatalf("httpGet from the node to %s: %q, %v (want the node's host address %s as the source)\n%s", aIP, body, err, hostIP, cn.diag(t))
	}
	if err := tcpProbe(cn.ns.Name, aIP+":8080"); err != nil {
		t.Fatalf("tcpSocket probe from the node: %v", err)
	}
	if out, err := cn.ns.Try("ping", "-c", "3", "-i", "0.2", "-W", "2", aIP); err != nil {
		t.Fatalf("ping from the node to %s: %v\n%s", aIP, err, out)
	}
	startEcho(t, a.ns.Name)
	pr := startProber(t, "node->pod udp", cn.ns.Name, aIP, 20*time.Millisecond, 5*time.Second)
	pr.waitAnswered(t, 5*time.Second)
	pr.close()
	a.ns.TCPTransfer(t, cn.ns, netip.MustParseAddr(aIP), 5201, 16<<20)

	// Pod -> node: the host address and the node's other addresses.
	cn.ns.Run(t, "ip", "addr", "add", "198.18.30.1/32", "dev", "lo")
	for _, dst := range []string{hostIP, "198.18.30.1"} {
		if out, err := a.ping(dst, 2); err != nil {
			t.Fatalf("ping from the pod to the node's %s: %v\n%s\n%s", dst, err, out, cn.diag(t))
		}
	}
	httpServe(t, cn.ns.Name, 8081, "node")
	if body, err := httpGet(a.ns.Name, "http://198.18.30.1:8081/"); err != nil || !strings.HasPrefix(body, "node from "+aIP+":") {
		t.Fatalf("pod -> node http: %q, %v", body, err)
	}

	// A secondary VN that opted in is the node's too.
	httpServe(t, a.ns.Name, 8082, "pod-a-green")
	if body, err := httpGet(cn.ns.Name, "http://"+greenIP+":8082/"); err != nil || !strings.HasPrefix(body, "pod-a-green from "+hostIP+":") {
		t.Fatalf("node -> vn-green %s: %q, %v\n%s", greenIP, body, err, cn.diag(t))
	}
	// ... but not a way around VN isolation: a pod of the default network
	// only, whose packets to vn-green the kernel would forward, does not
	// reach it.
	b := cn.addPod(t, "default", "pod-b", "")
	if out, err := b.ping(greenIP, 2); err == nil {
		t.Fatalf("a default-network pod reached vn-green %s through the node's kernel:\n%s", greenIP, out)
	}
	// A secondary VN that did not opt in: no kernel route, and xvr drops
	// the kernel's packets to it even with one.
	if out, err := cn.ns.Try("ping", "-c", "1", "-W", "1", blueIP); err == nil {
		t.Fatalf("the node reached %s on vn-blue:\n%s", blueIP, out)
	}
	cn.ns.Run(t, "ip", "route", "add", "198.18.101.0/24", "via", "198.18.100.254", "dev", hostif.DefaultName, "onlink")
	before := cn.dropCount(t, "no_route")
	if out, err := cn.ns.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", blueIP); err == nil {
		t.Fatalf("the node reached %s on vn-blue through a hand-made route:\n%s", blueIP, out)
	}
	if after := cn.dropCount(t, "no_route"); after < before+2 {
		t.Errorf("no_route %d -> %d: the kernel's packets to vn-blue were not dropped as no_route", before, after)
	}
	cn.ns.Run(t, "ip", "route", "del", "198.18.101.0/24")

	// xvrctl vif shows the host vif.
	var vifs []api.Vif
	cn.ctlJSON(t, &vifs, "vif")
	found := false
	for _, v := range vifs {
		if v.Type == api.VifHost && v.Name == hostif.DefaultPeer && v.IP == hostIP && v.RXPackets > 0 && v.TXPackets > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("xvrctl vif has no host vif %s with %s and traffic: %+v", hostif.DefaultPeer, hostIP, vifs)
	}

	// Restart: the kernel keeps the routes while xvrd is down.
	cn.proc.Signal(15) //nolint:errcheck // checked by Wait
	if err := cn.proc.Wait(10 * time.Second); err != nil {
		t.Fatalf("xvrd did not stop: %v", err)
	}
	if got := cn.kernelRoutes(t); got != routes {
		t.Fatalf("routes while xvrd is down: %q, want %q", got, routes)
	}
	cn.restartSame(owner)
	if got := cn.hostAddr(t); got != hostIP {
		t.Errorf("host address after restart %s, want %s", got, hostIP)
	}
	waitFor(t, "node -> pod after the restart", 10*time.Second, func() (bool, error) {
		_, err := httpGet(cn.ns.Name, "http://"+aIP+":8080/")
		return err == nil, err
	})

	// -uninstall (with xvrd stopped) removes the kernel side.
	cn.proc.Signal(15) //nolint:errcheck // checked by Wait
	if err := cn.proc.Wait(10 * time.Second); err != nil {
		t.Fatalf("xvrd did not stop: %v", err)
	}
	if out, err := cn.ns.Try(bin("xvrd"), "-uninstall"); err != nil {
		t.Fatalf("xvrd -uninstall: %v\n%s", err, out)
	}
	if got := cn.kernelRoutes(t); got != "" {
		t.Errorf("routes after -uninstall: %q", got)
	}
	if out, err := cn.ns.Try("ip", "link", "show", hostif.DefaultName); err == nil {
		t.Errorf("%s still exists after -uninstall:\n%s", hostif.DefaultName, out)
	}
	if out, err := cn.ns.Try("iptables", "-t", "nat", "-S", hostif.Chain); err == nil {
		t.Errorf("chain %s still exists after -uninstall:\n%s", hostif.Chain, out)
	}
	cn.restartSame(owner) // for the cleanup's DELs
}

// diag is what xvrd holds and drops, for failure messages.
func (cn *cniNode) diag(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"vif"}, {"dropstats"}, {"flow"}} {
		out, _ := cn.ctl(args...)
		fmt.Fprintf(&b, "$ xvrctl %s\n%s\n", strings.Join(args, " "), out)
	}
	out, _ := cn.ns.Try("ip", "route")
	fmt.Fprintf(&b, "$ ip route\n%s\nxvrd log:\n%s", out, tail(cn.proc.Output(), 2000))
	return b.String()
}

// restartSame starts xvrd again with the flags it had and waits for its API.
func (cn *cniNode) restartSame(t testing.TB) {
	t.Helper()
	cn.proc = cn.ns.Start(t, cn.args...)
	cn.waitAPI(t)
}
