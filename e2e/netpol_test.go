package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// npSecCIDR is the secondary VN x/vn-sec every pod of TestNetworkPolicy
// attaches (the MultiNetworkPolicy case).
const npSecCIDR = "198.18.120.0/24"

const npSecNet = "x/vn-sec"

// npLivePod is a pod of the suite: its sandbox and node.
type npLivePod struct {
	npPod
	secIP string
	pod   *corev1.Pod
	s     *cniPod
	node  *kubeNode
}

// npSuite is the topology of TestNetworkPolicy.
type npSuite struct {
	kc   *kubeCluster
	pods []*npLivePod
	nsl  map[string]map[string]string
}

func npContainerPorts() []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, tg := range npTargets {
		out = append(out, corev1.ContainerPort{Name: fmt.Sprintf("serve-%d-%s", tg.port, lower(tg.proto)),
			ContainerPort: int32(tg.port), Protocol: tg.proto})
	}
	return out
}

func lower(p corev1.Protocol) string {
	if p == corev1.ProtocolUDP {
		return "udp"
	}
	return "tcp"
}

// TestNetworkPolicy is the truth-table suite of NetworkPolicy and
// MultiNetworkPolicy (in the style of upstream's netpol e2e and cyclonus):
// namespaces x, y, z, pods a, b, c in each spread over two xvrd nodes,
// each serving TCP and UDP on 80 and 81; per case, every (from, to, port,
// protocol) cell is probed with real packets and compared with the matrix
// the oracle (netpol_oracle_test.go) computes from the objects.
func TestNetworkPolicy(t *testing.T) {
	start := time.Now()
	kc := newKubeClusterWith(t, 2, kubetest.Options{AdvertiseAddress: net.ParseIP(underlayIP)})
	kc.startManager(t)
	kc.waitVNReady(t, "default", "cluster-wide-default")
	kc.startNodeNetwork(t, kubetest.ProxyModeIPTables)
	su := &npSuite{kc: kc, nsl: map[string]map[string]string{}}
	for _, ns := range []string{"x", "y", "z"} {
		l := map[string]string{"ns": ns, "kubernetes.io/metadata.name": ns}
		su.nsl[ns] = l
		if err := kc.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l}}); err != nil {
			t.Fatal(err)
		}
	}
	kc.nad(t, "x", "vn-sec", "xvr", map[string]string{"opencontrail.org/cidr": npSecCIDR})
	kc.waitVNReady(t, "x", "vn-sec")
	kc.runCoreDNS(t, kc.nodes[0])
	for i, ns := range []string{"x", "y", "z"} {
		for j, name := range []string{"a", "b", "c"} {
			// x: a,c on node-0, b on node-1; y the other way; z like x.
			node := kc.nodes[(j%2+i%2)%2]
			su.pods = append(su.pods, su.addPod(t, ns, name, node))
		}
	}
	t.Logf("topology ready in %v", time.Since(start).Round(time.Millisecond))
	su.cases(t)
	t.Logf("suite done in %v", time.Since(start).Round(time.Millisecond))
}

// addPod creates, attaches, readies and serves one pod.
func (su *npSuite) addPod(t *testing.T, ns, name string, node *kubeNode) *npLivePod {
	t.Helper()
	kc := su.kc
	l := map[string]string{"pod": name}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l,
		Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": npSecNet}},
		Spec: corev1.PodSpec{NodeName: node.name, Containers: []corev1.Container{{Name: "app",
			Image: "registry.invalid/none", Ports: npContainerPorts()}}}}
	if err := kc.c.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	s := node.attach(t, p)
	for _, tg := range npTargets {
		npServe(t, s.ns.Name, tg)
	}
	kc.ready(t, p, node, s)
	return &npLivePod{npPod: npPod{ns: ns, name: name, labels: l, ip: s.addr(t, "eth0"), ports: npContainerPorts()},
		secIP: s.addr(t, "eth1"), pod: p, s: s, node: node}
}

// npServe serves tg in the namespace: TCP echoes what it reads, UDP
// answers every datagram with it.
func npServe(t testing.TB, nsName string, tg npTarget) {
	t.Helper()
	addr := fmt.Sprintf(":%d", tg.port)
	if tg.proto == corev1.ProtocolUDP {
		var c net.PacketConn
		if err := inNetns(nsName, func() (err error) { c, err = net.ListenPacket("udp4", addr); return err }); err != nil {
			t.Fatalf("udp %s in %s: %v", addr, nsName, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 512)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				c.WriteTo(buf[:n], from) //nolint:errcheck // a lost answer is a failed probe
			}
		}()
		return
	}
	var ln net.Listener
	if err := inNetns(nsName, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatalf("tcp %s in %s: %v", addr, nsName, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c) //nolint:errcheck // the prober sees a failed echo
			}()
		}
	}()
}

// npProbe sends one probe from the namespace: TCP connect + one echoed
// byte, UDP one request and its answer, each within about a second.
func npProbe(nsName, ip string, tg npTarget) bool {
	addr := net.JoinHostPort(ip, fmt.Sprint(tg.port))
	var c net.Conn
	network := "tcp4"
	if tg.proto == corev1.ProtocolUDP {
		network = "udp4"
	}
	if err := inNetns(nsName, func() (err error) {
		c, err = net.DialTimeout(network, addr, time.Second)
		return err
	}); err != nil {
		return false
	}
	defer c.Close()
	buf := make([]byte, 16)
	tries := 1
	if tg.proto == corev1.ProtocolUDP {
		tries = 2
	}
	for range tries {
		if _, err := c.Write([]byte("p")); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(time.Second / time.Duration(tries))) //nolint:errcheck // the read reports it
		if n, err := c.Read(buf); err == nil && n == 1 && buf[0] == 'p' {
			return true
		}
	}
	return false
}

// probe measures the matrix concurrently; sec probes the secondary
// addresses.
func (su *npSuite) probe(sec bool) npMatrix {
	m := npMatrix{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, src := range su.pods {
		m[src.key()] = map[string][]bool{}
		for _, dst := range su.pods {
			row := make([]bool, len(npTargets))
			m[src.key()][dst.key()] = row
			ip := dst.ip
			if sec {
				ip = dst.secIP
			}
			for i, tg := range npTargets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok := npProbe(src.s.ns.Name, ip, tg)
					mu.Lock()
					row[i] = ok
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	return m
}

func (su *npSuite) world(sec bool) npWorld {
	w := npWorld{nsLabels: su.nsl}
	for _, p := range su.pods {
		pp := p.npPod
		if sec {
			pp.ip = p.secIP
		}
		w.pods = append(w.pods, pp)
	}
	return w
}

// check waits up to 20 s for the probed matrix to equal want, then probes
// once more: that final matrix must match.
func (su *npSuite) check(t *testing.T, what string, sec bool, want npMatrix) {
	t.Helper()
	w := su.world(sec)
	start := time.Now()
	rounds := 0
	for time.Since(start) < 20*time.Second {
		rounds++
		if su.probe(sec).equal(want) {
			break
		}
		time.Sleep(200 * time.Millisecond) // a round is up to ~1 s of timeouts; spare the 2 cores between them
	}
	got := su.probe(sec)
	if d := w.diff(want, got); d != "" {
		t.Errorf("%s: observed matrix differs from the oracle's after %v (%d rounds):\n%s", what, time.Since(start).Round(time.Millisecond), rounds, d)
		return
	}
	t.Logf("%s: matrix as expected after %v (%d rounds)", what, time.Since(start).Round(time.Millisecond), rounds)
}

// apply creates the policies, returns a func deleting them.
func (su *npSuite) apply(t *testing.T, objs ...client.Object) func() {
	t.Helper()
	for _, o := range objs {
		if err := su.kc.c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	return func() {
		for _, o := range objs {
			if err := su.kc.c.Delete(context.Background(), o); client.IgnoreNotFound(err) != nil {
				t.Errorf("deleting %s: %v", o.GetName(), err)
			}
		}
	}
}

// Policy builders.

func np(ns, name string, sel metav1.LabelSelector, types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types}}
}

var (
	npIngress = networkingv1.PolicyTypeIngress
	npEgress  = networkingv1.PolicyTypeEgress
)

func sel(kv ...string) *metav1.LabelSelector {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: l}
}

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

func npPortNum(p corev1.Protocol, n int) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(int32(n))
	return networkingv1.NetworkPolicyPort{Protocol: proto(p), Port: &v}
}

func derefs(objs []*networkingv1.NetworkPolicy) []networkingv1.NetworkPolicy {
	out := make([]networkingv1.NetworkPolicy, 0, len(objs))
	for _, o := range objs {
		out = append(out, *o)
	}
	return out
}

func objects(objs []*networkingv1.NetworkPolicy) []client.Object {
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o)
	}
	return out
}

func (su *npSuite) find(ns, name string) *npLivePod {
	for _, p := range su.pods {
		if p.ns == ns && p.name == name {
			return p
		}
	}
	return nil
}

// cases runs the truth-table cases.
func (su *npSuite) cases(t *testing.T) {
	all := metav1.LabelSelector{}
	yb := su.find("y", "b")
	endPort := int32(81)
	named := intstr.FromString("serve-80-tcp")
	tcp80 := npPortNum(corev1.ProtocolTCP, 80)
	tcp80.EndPort = &endPort

	denyIn := func() *networkingv1.NetworkPolicy { return np("x", "deny-ingress", all, npIngress) }
	withIngress := func(p *networkingv1.NetworkPolicy, rules ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
		p.Spec.Ingress = rules
		return p
	}
	type tc struct {
		name  string
		pols  []*networkingv1.NetworkPolicy
		extra func(t *testing.T)
	}
	dnsEgress := np("x", "dns-only", all, npEgress)
	dnsEgress.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("kubernetes.io/metadata.name", "kube-system"),
			PodSelector: sel("k8s-app", "kube-dns")}},
		Ports: []networkingv1.NetworkPolicyPort{npPortNum(corev1.ProtocolUDP, 53), npPortNum(corev1.ProtocolTCP, 53)}}}
	exprSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "ns", Operator: metav1.LabelSelectorOpIn, Values: []string{"y", "z"}}}}
	cases := []tc{
		{name: "no-policy"},
		{name: "deny-ingress-x", pols: []*networkingv1.NetworkPolicy{denyIn()}, extra: su.introspectDenied},
		{name: "deny-egress-x", pols: []*networkingv1.NetworkPolicy{np("x", "deny-egress", all, npEgress)}},
		{name: "allow-all-ingress-on-deny", pols: []*networkingv1.NetworkPolicy{denyIn(),
			withIngress(np("x", "allow-all", all, npIngress), networkingv1.NetworkPolicyIngressRule{})}},
		{name: "allow-from-ns-y", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "from-y", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}})}},
		{name: "allow-from-ns-in-y-z-expr", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "from-yz", *sel("pod", "a"), npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: exprSel}}})}},
		{name: "allow-from-y-b", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "from-yb", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y"), PodSelector: sel("pod", "b")}}})}},
		{name: "allow-from-b-any-ns", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "from-any-b", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &all, PodSelector: sel("pod", "b")}}})}},
		{name: "allow-from-pod-b-same-ns", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "from-b", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}})}},
		{name: "ipblock-except", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "ipblock", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: kubeDefaultCIDR, Except: []string{yb.ip + "/32"}}}}})}},
		{name: "named-port-serve-80-tcp", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "named", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}})}},
		{name: "endport-80-81-tcp", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "endport", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{tcp80}})}},
		{name: "udp-81-only", pols: []*networkingv1.NetworkPolicy{withIngress(np("x", "udp81", all, npIngress),
			networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{npPortNum(corev1.ProtocolUDP, 81)}})}},
		{name: "egress-dns-only", pols: []*networkingv1.NetworkPolicy{dnsEgress}, extra: func(t *testing.T) {
			a := su.find("x", "a")
			got, err := resolveIn(a.s.ns.Name, "kubernetes.default.svc.cluster.local")
			if err != nil || got != kubetest.KubernetesServiceIP {
				t.Errorf("x/a resolving through kube-dns under egress-to-DNS-only: %q, %v; want %s", got, err, kubetest.KubernetesServiceIP)
			}
		}},
		{name: "union-of-two", pols: []*networkingv1.NetworkPolicy{
			withIngress(np("x", "u1", all, npIngress), networkingv1.NetworkPolicyIngressRule{
				From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}, Ports: []networkingv1.NetworkPolicyPort{npPortNum(corev1.ProtocolTCP, 80)}}),
			withIngress(np("x", "u2", *sel("pod", "a"), npIngress), networkingv1.NetworkPolicyIngressRule{
				From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "z")}}, Ports: []networkingv1.NetworkPolicyPort{npPortNum(corev1.ProtocolUDP, 81)}})}},
		{name: "deny-all-both-directions", pols: []*networkingv1.NetworkPolicy{np("x", "deny-all", all, npIngress, npEgress)}},
		{name: "egress-deny-ingress-replies", pols: []*networkingv1.NetworkPolicy{np("x", "deny-egress-a", *sel("pod", "a"), npEgress)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			del := su.apply(t, objects(c.pols)...)
			defer del()
			su.check(t, c.name, false, su.world(false).expect(derefs(c.pols)))
			if c.extra != nil {
				c.extra(t)
			}
			t.Logf("case %s: %v", c.name, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("policy-deleted", func(t *testing.T) { su.caseDeleted(t) })
	t.Run("node-traffic-allowed", func(t *testing.T) { su.caseNode(t) })
	t.Run("update-while-flowing", func(t *testing.T) { su.caseUpdate(t) })
	t.Run("multinetworkpolicy", func(t *testing.T) { su.caseMNP(t) })
	t.Run("new-pod-isolated", func(t *testing.T) { su.caseNewPod(t) })
}

// introspectDenied: under default-deny ingress in x, the node of x/a shows
// what it enforced: x/a's eth0 isolated for ingress (xvrctl policy), flows
// to it denied by "default deny (ingress of x/a eth0)" (xvrctl flow), and
// policy_denied drops (xvrctl dropstats).
func (su *npSuite) introspectDenied(t *testing.T) {
	a := su.find("x", "a")
	n := a.node
	if out := n.mustCtl(t, "policy"); !regexp.MustCompile(`(?m)^x/a eth0 .* ingress +ingress|^x/a eth0 .* ingress +-`).MatchString(out) {
		t.Errorf("xvrctl policy on %s does not show x/a eth0 isolated for ingress:\n%s", n.name, out)
	}
	var flows []api.Flow
	if err := json.Unmarshal([]byte(n.mustCtl(t, "flow", "-o", "json")), &flows); err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, f := range flows {
		if strings.HasPrefix(f.Dst, a.ip+":") && f.Verdict == "deny" && f.Policy == "default deny (ingress of x/a eth0)" {
			denied++
		}
	}
	if denied == 0 {
		t.Errorf("xvrctl flow on %s: no flow to x/a (%s) denied by its ingress; flows:\n%+v", n.name, a.ip, flows)
	}
	var drops []api.DropStat
	if err := json.Unmarshal([]byte(n.mustCtl(t, "dropstats", "-o", "json")), &drops); err != nil {
		t.Fatal(err)
	}
	var policyDrops uint64
	for _, d := range drops {
		if d.Reason == "policy_denied" {
			policyDrops = d.Count
		}
	}
	if policyDrops == 0 {
		t.Errorf("xvrctl dropstats on %s: no policy_denied drops: %+v", n.name, drops)
	}
	t.Logf("%s: %d flows to x/a denied by its ingress, %d policy_denied drops", n.name, denied, policyDrops)
}

func (su *npSuite) timed(t *testing.T) func() {
	start := time.Now()
	return func() { t.Logf("case %s: %v", t.Name(), time.Since(start).Round(time.Millisecond)) }
}

// caseDeleted: a deny-all policy, then its deletion: all allowed again.
func (su *npSuite) caseDeleted(t *testing.T) {
	defer su.timed(t)()
	p := np("x", "deny-all", metav1.LabelSelector{}, npIngress, npEgress)
	del := su.apply(t, p)
	su.check(t, "deny-all before the delete", false, su.world(false).expect([]networkingv1.NetworkPolicy{*p}))
	del()
	su.check(t, "after the delete", false, su.world(false).allAllowed())
}

// caseNode: with default-deny ingress in x, each node still reaches its
// own x pods (kubelet's tcpSocket probes).
func (su *npSuite) caseNode(t *testing.T) {
	defer su.timed(t)()
	p := np("x", "deny-ingress", metav1.LabelSelector{}, npIngress)
	defer su.apply(t, p)()
	su.check(t, "deny-ingress-x", false, su.world(false).expect([]networkingv1.NetworkPolicy{*p}))
	for _, pod := range su.pods {
		if pod.ns != "x" {
			continue
		}
		if !npProbe(pod.node.ns.Name, pod.ip, npTarget{80, corev1.ProtocolTCP}) {
			t.Errorf("node %s -> %s (%s) tcp/80: no answer under default-deny ingress; the node's own traffic must pass", pod.node.name, pod.key(), pod.ip)
		}
	}
}

// caseUpdate: a TCP connection opened before an update that denies it
// stops passing data; after the update allowing again, a new connection
// works.
func (su *npSuite) caseUpdate(t *testing.T) {
	defer su.timed(t)()
	src, dst := su.find("y", "a"), su.find("x", "b")
	var c net.Conn
	if err := inNetns(src.s.ns.Name, func() (err error) {
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(dst.ip, "80"), 2*time.Second)
		return err
	}); err != nil {
		t.Fatalf("y/a -> x/b tcp/80 before any policy: %v", err)
	}
	defer c.Close()
	echo := func() error {
		if _, err := c.Write([]byte("u")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second)) //nolint:errcheck // the read reports it
		buf := make([]byte, 1)
		_, err := io.ReadFull(c, buf)
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("established connection before the update: %v", err)
	}
	allowZ := withRules(np("x", "update", metav1.LabelSelector{}, npIngress), sel("ns", "z"))
	if err := su.kc.c.Create(context.Background(), allowZ); err != nil {
		t.Fatal(err)
	}
	defer su.kc.c.Delete(context.Background(), allowZ) //nolint:errcheck // best effort
	su.check(t, "after the update denying y", false, su.world(false).expect([]networkingv1.NetworkPolicy{*allowZ}))
	if err := echo(); err == nil {
		t.Errorf("the connection y/a -> x/b opened before the update still passes data after the update denied it")
	}
	// Allow y again.
	if err := su.kc.c.Get(context.Background(), client.ObjectKeyFromObject(allowZ), allowZ); err != nil {
		t.Fatal(err)
	}
	allowZ.Spec.Ingress[0].From = append(allowZ.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")})
	if err := su.kc.c.Update(context.Background(), allowZ); err != nil {
		t.Fatal(err)
	}
	su.check(t, "after the update allowing y again", false, su.world(false).expect([]networkingv1.NetworkPolicy{*allowZ}))
	if !npProbe(src.s.ns.Name, dst.ip, npTarget{80, corev1.ProtocolTCP}) {
		t.Errorf("a new connection y/a -> x/b after the update allowing y failed")
	}
}

func withRules(p *networkingv1.NetworkPolicy, nsSel *metav1.LabelSelector) *networkingv1.NetworkPolicy {
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSel}}}}
	return p
}

const mnpCRD = "multi-networkpolicies.k8s.cni.cncf.io"

// ensureMNPCRD installs the MultiNetworkPolicy CRD (upstream's group,
// schema left open) unless something installed it already.
func (su *npSuite) ensureMNPCRD(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := su.kc.c.Get(ctx, client.ObjectKey{Name: mnpCRD}, &crd); err == nil {
		return
	}
	yes := true
	crd = apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: mnpCRD},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "k8s.cni.cncf.io", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "multi-networkpolicies", Singular: "multi-networkpolicy",
				Kind: "MultiNetworkPolicy", ListKind: "MultiNetworkPolicyList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1beta1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &yes}}}}}}
	if err := su.kc.c.Create(ctx, &crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("installing the MultiNetworkPolicy CRD: %v", err)
	}
	waitFor(t, "the MultiNetworkPolicy CRD established", 30*time.Second, func() (bool, error) {
		if err := su.kc.c.Get(ctx, client.ObjectKey{Name: crd.Name}, &crd); err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// caseMNP: a MultiNetworkPolicy for x/vn-sec isolates the x pods' secondary
// interfaces (ingress only from x) while the default network stays open.
func (su *npSuite) caseMNP(t *testing.T) {
	defer su.timed(t)()
	su.ensureMNPCRD(t)
	spec := networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{npIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": raw}}
	u.SetAPIVersion("k8s.cni.cncf.io/v1beta1")
	u.SetKind("MultiNetworkPolicy")
	u.SetNamespace("x")
	u.SetName("sec-from-x")
	u.SetAnnotations(map[string]string{"k8s.v1.cni.cncf.io/policy-for": npSecNet})
	if err := su.newClient(t).Create(context.Background(), u); err != nil {
		t.Fatalf("creating the MultiNetworkPolicy: %v", err)
	}
	defer su.newClient(t).Delete(context.Background(), u) //nolint:errcheck // best effort
	as := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "sec-from-x"}, Spec: spec}
	su.check(t, "secondary network x/vn-sec", true, su.world(true).expect([]networkingv1.NetworkPolicy{as}))
	su.check(t, "default network under the MultiNetworkPolicy", false, su.world(false).allAllowed())
}

// newClient is a client whose discovery knows CRDs installed since.
func (su *npSuite) newClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(su.kc.env.Config, client.Options{Scheme: kubeScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caseNewPod: a pod created after a default-deny ingress policy is
// isolated from its first packet.
func (su *npSuite) caseNewPod(t *testing.T) {
	defer su.timed(t)()
	p := np("x", "deny-ingress", metav1.LabelSelector{}, npIngress)
	defer su.apply(t, p)()
	su.check(t, "deny-ingress-x", false, su.world(false).expect([]networkingv1.NetworkPolicy{*p}))
	d := su.addPod(t, "x", "d", su.kc.nodes[1])
	defer su.kc.deletePod(t, d.pod)
	for _, src := range []*npLivePod{su.find("y", "a"), su.find("x", "b"), su.find("z", "c")} {
		for _, tg := range npTargets {
			if npProbe(src.s.ns.Name, d.ip, tg) {
				t.Errorf("%s -> new pod x/d %s: answered; a pod created under default-deny must be isolated from its first packet", src.key(), tg)
			}
		}
	}
	if !npProbe(d.s.ns.Name, su.find("y", "a").ip, npTarget{80, corev1.ProtocolTCP}) {
		t.Errorf("new pod x/d -> y/a tcp/80: no answer; its egress is not isolated")
	}
}
