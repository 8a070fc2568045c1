package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/cni"
	"github.com/xvr-project/xvr/vrouter/api"
)

// moreVNs are the CNI tests' networks besides twoVNs: a third VN, one in
// another namespace, and a /29 with four usable addresses.
const moreVNs = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-third
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.30.0/24"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-x
  namespace: other
  annotations:
    opencontrail.org/cidr: "198.18.40.0/24"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-tiny
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.50.0/29"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
`

// TestCNI drives the real plugin binary through libcni against one xvrd.
func TestCNI(t *testing.T) {
	cn := newCNINode(t)
	cn.apply(t, twoVNs)
	cn.apply(t, moreVNs)
	t.Run("product-story", func(t *testing.T) { testStory(t, cn) })
	t.Run("annotation-forms", func(t *testing.T) { testForms(t, cn) })
	t.Run("static-requests", func(t *testing.T) { testStatic(t, cn) })
	t.Run("duplicate-interface", func(t *testing.T) { testDuplicate(t, cn) })
	t.Run("unknown-network-leaves-nothing", func(t *testing.T) { testUnknown(t, cn) })
	t.Run("no-free-address", func(t *testing.T) { testExhausted(t, cn) })
	t.Run("check", func(t *testing.T) { testCheck(t, cn) })
	t.Run("del", func(t *testing.T) { testDel(t, cn) })
	t.Run("late-del", func(t *testing.T) { testLateDel(t, cn) })
	t.Run("gc", func(t *testing.T) { testGC(t, cn) })
	t.Run("status", func(t *testing.T) { testStatus(t, cn) })
	t.Run("contrail-type", func(t *testing.T) { testContrailType(t, cn) })
	t.Run("no-pod-args", func(t *testing.T) { testNoPodArgs(t, cn) })
}

// testStory: a pod asking for vn-left-1 and vn-right-1 gets eth0/eth1/eth2
// matching its ADD result and network-status, reaches a pod on each VN and
// not one on a third VN.
func testStory(t *testing.T, cn *cniNode) {
	podYAML := filepath.Join(cn.dir, "web.yaml")
	if err := os.WriteFile(podYAML, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{"name":"vn-left-1"},{"name":"vn-right-1"}]'
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cn.mustCtl(t, "pod", "apply", "-f", podYAML) // the standalone user's way
	web := cn.sandbox(t, "default", "web")
	if err := cn.add(t, web); err != nil {
		t.Fatalf("ADD web: %v\n%s", err, tail(cn.proc.Output(), 3000))
	}
	left := cn.addPod(t, "default", "left", "vn-left-1")
	right := cn.addPod(t, "default", "right", "vn-right-1")
	third := cn.addPod(t, "default", "third", "vn-third")

	status := checkResultMatchesPod(t, cn, web)
	want := []string{"default/cluster-wide-default eth0 true", "default/vn-left-1 eth1 false", "default/vn-right-1 eth2 false"}
	var got []string
	for _, s := range status {
		got = append(got, fmt.Sprintf("%s %s %v", s.Name, s.Interface, s.Default))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("network-status %v, want %v", got, want)
	}
	mustPingNS(t, web, left.addr(t, "eth1"))
	mustPingNS(t, web, right.addr(t, "eth1"))
	mustPingNS(t, web, left.addr(t, "eth0")) // the default network joins every pod
	// No policy here: the pings between pods took the XDP shortcut, which
	// needs GRO on the pods' ends (xvr-cni turns it on).
	if out := web.ns.Run(t, "ethtool", "-k", "eth1"); !strings.Contains(out, "generic-receive-offload: on") {
		t.Errorf("gro not on in the pod:\n%s", out)
	}
	// A qdisc on the pod's end, so that a full host-end ring pushes back
	// instead of dropping what the pod sends.
	if out := web.ns.Run(t, "tc", "qdisc", "show", "dev", "eth1"); !strings.Contains(out, "qdisc pfifo_fast 1: root") {
		t.Errorf("no pfifo_fast root qdisc on the pod's eth1:\n%s", out)
	}
	if n := shortcutPackets(t, cn, web.rt.ContainerID+"/eth1"); n < 2 {
		t.Errorf("web's eth1 vif counts %d shortcut packets, want its pings (>= 2)", n)
	}
	if out, err := web.ns.Try("ping", "-c", "2", "-W", "1", "-i", "0.2", third.addr(t, "eth1")); err == nil {
		t.Fatalf("web reached a pod on vn-third:\n%s", out)
	}
}

// shortcutPackets is the XDP shortcut's count of the vif of port id.
func shortcutPackets(t *testing.T, cn *cniNode, id string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vifs, err := cn.c.Vifs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vifs {
		if v.Port == id {
			return v.ShortcutPackets
		}
	}
	t.Fatalf("no vif of port %s in %+v", id, vifs)
	return 0
}

// checkResultMatchesPod compares the ADD result, `ip -j addr` inside the pod
// and xvrd's network-status, and returns the latter.
func checkResultMatchesPod(t *testing.T, cn *cniNode, p *cniPod) []api.NetworkStatus {
	t.Helper()
	links := p.links(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, err := cn.c.PodNetworkStatus(ctx, p.namespace, p.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.res.IPs) != len(status) || len(p.res.Interfaces) != 2*len(status) {
		t.Fatalf("result %s vs network-status %+v", p.res, status)
	}
	for i, ip := range p.res.IPs {
		pif := p.res.Interfaces[*ip.Interface]
		l, st := links[pif.Name], status[i]
		if pif.Sandbox != p.rt.NetNS || l.Address != pif.Mac || st.Mac != pif.Mac || st.Interface != pif.Name ||
			len(st.IPs) != 1 || st.IPs[0] != ip.Address.IP.String() || !hasAddr(l, ip.Address.String()) {
			t.Fatalf("interface %d: result %+v %s, pod %+v, status %+v", i, pif, ip.Address.String(), l, st)
		}
	}
	return status
}

func hasAddr(l podLink, cidr string) bool {
	for _, a := range l.AddrInfo {
		if a.Family == "inet" && fmt.Sprintf("%s/%d", a.Local, a.PrefixLen) == cidr {
			return true
		}
	}
	return false
}

func mustPingNS(t *testing.T, p *cniPod, dst string) {
	t.Helper()
	if out, err := p.ns.Try("ping", "-c", "3", "-W", "1", "-i", "0.2", dst); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, p.name, err, out)
	}
}

// testForms: the comma form with a cross-namespace reference and @ifname,
// and the JSON form with a namespace field, reach the same networks.
func testForms(t *testing.T, cn *cniNode) {
	a := cn.addPod(t, "default", "forms-a", "other/vn-x, vn-left-1@net9")
	b := cn.addPod(t, "default", "forms-b", `[{"name":"vn-x","namespace":"other"}]`)
	checkResultMatchesPod(t, cn, a)
	ifs := ifNames(a)
	if !reflect.DeepEqual(ifs, []string{"eth0", "eth1", "net9"}) {
		t.Fatalf("interfaces %v", ifs)
	}
	if !strings.HasPrefix(a.addr(t, "eth1"), "198.18.40.") || !strings.HasPrefix(a.addr(t, "net9"), "198.18.10.") {
		t.Fatalf("addresses %s", a.res)
	}
	mustPingNS(t, b, a.addr(t, "eth1"))
}

func ifNames(p *cniPod) []string {
	var out []string
	for _, i := range p.res.Interfaces {
		if i.Sandbox != "" {
			out = append(out, i.Name)
		}
	}
	return out
}

// testStatic: ips, mac, interface and default-route are honoured.
func testStatic(t *testing.T, cn *cniNode) {
	p := cn.addPod(t, "default", "static", `[{"name":"vn-left-1","ips":["198.18.10.77/24"],"mac":"02:00:00:00:77:01",`+
		`"interface":"left0"},{"name":"vn-right-1","default-route":["198.18.20.254"]}]`)
	checkResultMatchesPod(t, cn, p)
	l := p.links(t)["left0"]
	if l.Address != "02:00:00:00:77:01" || !hasAddr(l, "198.18.10.77/24") {
		t.Fatalf("left0: %+v", l)
	}
	route := strings.TrimSpace(p.ns.Run(t, "ip", "-4", "route", "show", "default"))
	if route != "default via 198.18.20.254 dev eth1" {
		t.Fatalf("default route %q, want via 198.18.20.254 dev eth1", route)
	}
	if len(p.res.Routes) != 1 || p.res.Routes[0].GW.String() != "198.18.20.254" {
		t.Fatalf("result routes %v", p.res.Routes)
	}
	// The same address asked for again is refused and leaves nothing.
	cn.setPod(t, "default", "static2", `[{"name":"vn-left-1","ips":["198.18.10.77"]}]`)
	q := cn.sandbox(t, "default", "static2")
	err := cn.add(t, q)
	if cniCode(err) != types.ErrInvalidNetworkConfig {
		t.Fatalf("ADD of a taken address: %v", err)
	}
	cn.assertNoTrace(t, q.rt.ContainerID)
}

func testDuplicate(t *testing.T, cn *cniNode) {
	cn.setPod(t, "default", "dup", `[{"name":"vn-left-1","interface":"x1"},{"name":"vn-right-1","interface":"x1"}]`)
	p := cn.sandbox(t, "default", "dup")
	err := cn.add(t, p)
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), `duplicate interface name "x1"`) {
		t.Fatalf("ADD with a duplicate interface: %v", err)
	}
	cn.assertNoTrace(t, p.rt.ContainerID)
}

// testUnknown: the ADD fails on the unknown network before any interface is
// made (the plugin resolves every network first); nothing is left, and the
// next pod gets the lowest free addresses.
func testUnknown(t *testing.T, cn *cniNode) {
	wantDefault, wantLeft := lowestFree(t, cn, defaultCIDR), lowestFree(t, cn, "198.18.10.0/24")
	cn.setPod(t, "default", "unknown", `[{"name":"vn-left-1"},{"name":"nope"}]`)
	p := cn.sandbox(t, "default", "unknown")
	err := cn.add(t, p)
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "default/nope") {
		t.Fatalf("ADD with an unknown network: %v", err)
	}
	cn.assertNoTrace(t, p.rt.ContainerID)
	if l := p.links(t); len(l) != 1 {
		t.Fatalf("pod namespace keeps interfaces: %+v", l)
	}
	q := cn.addPod(t, "default", "after-unknown", "vn-left-1")
	if q.addr(t, "eth0") != wantDefault || q.addr(t, "eth1") != wantLeft {
		t.Fatalf("next pod got %s, %s; want the freed %s, %s", q.addr(t, "eth0"), q.addr(t, "eth1"), wantDefault, wantLeft)
	}
}

// lowestFree is the lowest host address of cidr that no port holds.
func lowestFree(t *testing.T, cn *cniNode, cidr string) string {
	t.Helper()
	used := map[string]bool{}
	for _, p := range cn.ports(t, "") {
		used[p.IP] = true
	}
	pfx := netip.MustParsePrefix(cidr)
	for ip := pfx.Addr().Next(); pfx.Contains(ip); ip = ip.Next() {
		if !used[ip.String()] {
			return ip.String()
		}
	}
	t.Fatalf("%s is full", cidr)
	return ""
}

// testExhausted: vn-tiny (/29) has four usable addresses; the fifth pod fails
// with a clear error and leaves nothing.
func testExhausted(t *testing.T, cn *cniNode) {
	for i := range 4 {
		cn.addPod(t, "default", fmt.Sprintf("tiny-%d", i), "vn-tiny")
	}
	cn.setPod(t, "default", "tiny-4", "vn-tiny")
	p := cn.sandbox(t, "default", "tiny-4")
	err := cn.add(t, p)
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "eth1 on network default/vn-tiny") {
		t.Fatalf("ADD on a full network: %v", err)
	}
	t.Logf("full network: %v", err)
	cn.assertNoTrace(t, p.rt.ContainerID)
}

// testCheck: CHECK passes on a fresh pod and reports a removed address and
// a removed interface.
func testCheck(t *testing.T, cn *cniNode) {
	p := cn.addPod(t, "default", "check", `vn-left-1,vn-right-1`)
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return cn.cfg.CheckNetworkList(ctx, cn.list, p.rt)
	}
	if err := check(); err != nil {
		t.Fatalf("CHECK of a fresh pod: %v", err)
	}
	a := p.addr(t, "eth1") + "/24"
	p.ns.Run(t, "ip", "addr", "del", a, "dev", "eth1")
	if err := check(); cniCode(err) != cni.ErrStateMismatch || !strings.Contains(err.Error(), "address "+a+" is missing on eth1") {
		t.Fatalf("CHECK after removing %s: %v", a, err)
	}
	p.ns.Run(t, "ip", "addr", "add", a, "dev", "eth1")
	if err := check(); err != nil {
		t.Fatalf("CHECK after restoring the address: %v", err)
	}
	p.ns.Run(t, "ip", "link", "del", "eth2")
	if err := check(); cniCode(err) != cni.ErrStateMismatch || !strings.Contains(err.Error(), "interface eth2") {
		t.Fatalf("CHECK after removing eth2: %v", err)
	}
}

// testDel: DEL twice; DEL without a netns; DEL after the netns is gone.
func testDel(t *testing.T, cn *cniNode) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := cn.addPod(t, "default", "del", "vn-left-1,vn-right-1")
	for i := range 2 {
		if err := cn.cfg.DelNetworkList(ctx, cn.list, p.rt); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	cn.assertNoTrace(t, p.rt.ContainerID)

	q := cn.addPod(t, "default", "del-nons", "vn-left-1")
	rt := *q.rt
	rt.NetNS = ""
	if err := cn.cfg.DelNetworkList(ctx, cn.list, &rt); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
	cn.assertNoTrace(t, q.rt.ContainerID)

	r := cn.addPod(t, "default", "del-gone", "vn-left-1")
	rt = *r.rt
	rt.NetNS = "/var/run/netns/xvr-no-such-ns"
	if err := cn.cfg.DelNetworkList(ctx, cn.list, &rt); err != nil {
		t.Fatalf("DEL with a vanished netns: %v", err)
	}
	cn.assertNoTrace(t, r.rt.ContainerID)
}

// testLateDel: a pod's sandbox is replaced; the old sandbox's late DEL
// leaves the new one's ports, veths and connectivity alone.
func testLateDel(t *testing.T, cn *cniNode) {
	old := cn.addPod(t, "default", "late", "vn-left-1")
	peer := cn.addPod(t, "default", "late-peer", "vn-left-1")
	fresh := cn.sandbox(t, "default", "late")
	if err := cn.add(t, fresh); err != nil {
		t.Fatal(err)
	}
	cn.del(t, old)
	cn.assertNoTrace(t, old.rt.ContainerID)
	if n := len(cn.ports(t, fresh.rt.ContainerID)); n != 2 {
		t.Fatalf("new sandbox has %d ports after the old one's DEL", n)
	}
	mustPingNS(t, fresh, peer.addr(t, "eth1"))
	checkResultMatchesPod(t, cn, fresh)
}

// testGC: a sandbox whose DEL was lost (ADDed through another runtime cache)
// is removed by GC; the valid sandbox keeps all three interfaces.
func testGC(t *testing.T, cn *cniNode) {
	keep := cn.addPod(t, "default", "gc-keep", "vn-left-1,vn-right-1")
	leak := cn.sandbox(t, "default", "gc-leak")
	cn.setPod(t, "default", "gc-leak", "vn-left-1,vn-right-1")
	other := libcni.NewCNIConfigWithCacheDir(cn.cfg.Path, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := other.AddNetworkList(ctx, cn.list, leak.rt); err != nil {
		t.Fatal(err)
	}
	valid := []types.GCAttachment{{ContainerID: keep.rt.ContainerID, IfName: "eth0"}}
	for _, p := range cn.ports(t, "") { // every other sandbox of this test stays too
		if p.ContainerID != leak.rt.ContainerID {
			valid = append(valid, types.GCAttachment{ContainerID: p.ContainerID, IfName: "eth0"})
		}
	}
	if err := cn.cfg.GCNetworkList(ctx, cn.list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	cn.assertNoTrace(t, leak.rt.ContainerID)
	if n := len(cn.ports(t, keep.rt.ContainerID)); n != 3 {
		t.Fatalf("valid sandbox has %d ports after GC, want 3", n)
	}
	for _, ifn := range []string{"eth0", "eth1", "eth2"} {
		cn.ns.Run(t, "ip", "link", "show", cni.HostIfName(keep.rt.ContainerID, ifn))
	}
}

func testStatus(t *testing.T, cn *cniNode) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cn.cfg.GetStatusNetworkList(ctx, cn.list); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	bad, err := libcni.ConfListFromBytes([]byte(cn.conf("xvr", filepath.Join(cn.dir, "nobody.sock"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.cfg.GetStatusNetworkList(ctx, bad); cniCode(err) != cni.ErrPluginNotAvailable {
		t.Fatalf("STATUS without xvrd: %v", err)
	}
}

// testContrailType: a conflist written for TF ("contrail-k8s-cni") works.
func testContrailType(t *testing.T, cn *cniNode) {
	list := cn.writeConf(t, "contrail-k8s-cni")
	cn.setPod(t, "default", "tf", "vn-left-1")
	p := cn.sandbox(t, "default", "tf")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cn.cfg.AddNetworkList(ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	if n := len(cn.ports(t, p.rt.ContainerID)); n != 2 {
		t.Fatalf("%d ports", n)
	}
	if err := cn.cfg.DelNetworkList(ctx, list, p.rt); err != nil {
		t.Fatal(err)
	}
	cn.assertNoTrace(t, p.rt.ContainerID)
}

// testNoPodArgs: without K8S_POD_* the pod gets eth0 only.
func testNoPodArgs(t *testing.T, cn *cniNode) {
	p := cn.sandbox(t, "default", "anon")
	p.rt.Args = nil
	if err := cn.add(t, p); err != nil {
		t.Fatal(err)
	}
	if ifs := ifNames(p); !reflect.DeepEqual(ifs, []string{"eth0"}) {
		t.Fatalf("interfaces %v", ifs)
	}
}

// Churn bounds.
const (
	churnPods    = 200
	churnWorkers = 8
	churnLimit   = 3 * time.Minute
)

// TestCNIChurn adds and deletes 200 three-interface pods with 8 concurrent
// workers, then checks that no veth, port, address or namespace is left.
func TestCNIChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn: 200 pods through the real plugin; skipped in -short")
	}
	cn := newCNINode(t)
	cn.apply(t, twoVNs)
	for i := range churnPods {
		cn.setPod(t, "default", fmt.Sprintf("churn-%d", i), "vn-left-1,vn-right-1")
	}
	nss := newPodNamespaces(t)
	start := time.Now()
	errs := make(chan error, churnWorkers)
	next := make(chan int)
	for range churnWorkers {
		cfg := libcni.NewCNIConfigWithCacheDir(cn.cfg.Path, t.TempDir(), nil)
		go func() {
			var first error
			for i := range next {
				if first == nil && time.Since(start) < churnLimit {
					_, first = cn.cycle(t, cfg, nss, fmt.Sprintf("churn-%d", i))
				}
			}
			errs <- first
		}()
	}
	for i := range churnPods {
		next <- i
	}
	close(next)
	var failed error
	for range churnWorkers { // wait for every worker before failing
		if err := <-errs; err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		t.Fatalf("churn: %v\nxvrd log:\n%s", failed, tail(cn.proc.Output(), 3000))
	}
	took := time.Since(start)
	if took > churnLimit {
		t.Fatalf("churn of %d pods took %v, over %v", churnPods, took, churnLimit)
	}
	t.Logf("churn: %d pods x 3 interfaces, %d workers: %v (%.1f pods/s)", churnPods, churnWorkers, took.Round(time.Millisecond),
		float64(churnPods)/took.Seconds())
	assertClean(t, cn, nss)
}

func assertClean(t *testing.T, cn *cniNode, nss *podNamespaces) {
	if v := cn.hostVeths(t); len(v) != 0 {
		t.Fatalf("%d veths left in the node: %v", len(v), v)
	}
	if p := cn.ports(t, ""); len(p) != 0 {
		t.Fatalf("%d ports left in xvrd: %+v", len(p), p)
	}
	if left := nss.leftovers(t); len(left) != 0 {
		t.Fatalf("pod namespaces left: %v", left)
	}
	p := cn.addPod(t, "default", "churn-0", "vn-left-1,vn-right-1")
	got := []string{p.addr(t, "eth0"), p.addr(t, "eth1"), p.addr(t, "eth2")}
	if want := []string{"198.18.100.1", "198.18.10.1", "198.18.20.1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("a fresh pod got %v, want the lowest addresses %v", got, want)
	}
}

// BenchmarkCNIAdd3If measures ADD through the real plugin binary (libcni
// exec, as a runtime does) of a pod with three interfaces: p50/p99 over 100
// pods per iteration. Namespace creation and DEL are outside the timing.
func BenchmarkCNIAdd3If(b *testing.B) {
	const podsPerOp = 100
	cn := newCNINode(b)
	cn.apply(b, twoVNs)
	cn.setPod(b, "default", "bench", "vn-left-1,vn-right-1")
	nss := newPodNamespaces(b)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for range podsPerOp {
			took, err := cn.cycle(b, cn.cfg, nss, "bench")
			if err != nil {
				b.Fatalf("%v\nxvrd log:\n%s", err, tail(cn.proc.Output(), 3000))
			}
			lat = append(lat, took)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports p50, p99 and max of lat in milliseconds instead of
// ns/op.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(ms(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}
