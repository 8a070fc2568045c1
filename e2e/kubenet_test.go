package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/kube/kubetest"
)

// kubeDNSIP is the kube-dns Service's ClusterIP in the tests.
const kubeDNSIP = "198.18.96.10"

// startNodeNetwork runs what a real node's network needs beside xvr: the
// real kube-controller-manager (EndpointSlices, ServiceAccounts) and, in
// every node's namespace, the real kube-proxy (iptables mode) against the
// API server; the `kubernetes` Service's endpoint is the API server on the
// underlay (a forwarder at underlayIP). It waits until each node's host
// interface is up and its kube-proxy has programmed the `kubernetes`
// Service.
func (kc *kubeCluster) startNodeNetwork(t testing.TB, mode string) {
	t.Helper()
	kc.ov.underlay.ForwardTCPTo(t, fmt.Sprintf("%s:%d", underlayIP, kc.env.SecurePort), kc.api)
	kc.kcm = kc.env.StartControllerManager(t, kubetest.ControllerManagerOptions{})
	for _, n := range kc.nodes {
		n.hostIP = n.hostAddr(t)
		n.proxy = kc.startKubeProxy(t, n.ns, n.name, n.ip, kubeDefaultCIDR, mode)
	}
	for _, n := range kc.nodes {
		waitKubeProxy(t, n.ns, n.name, n.proxy, mode)
	}
}

// startKubeProxy runs the real kube-proxy in ns for Node name (address
// ip), with the pods' range cidr as its clusterCIDR.
func (kc *kubeCluster) startKubeProxy(t testing.TB, ns *nettest.NS, name, ip, cidr, mode string) *nettest.Proc {
	t.Helper()
	args, err := kubetest.KubeProxyArgs(t.TempDir(), kubetest.KubeProxyConfig{Mode: mode, NodeName: name,
		NodeIP: ip, ClusterCIDR: cidr, Kubeconfig: kc.env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Start(t, args...)
}

// waitKubeProxy waits until the kube-proxy in ns has programmed the
// kubernetes Service.
func waitKubeProxy(t testing.TB, ns *nettest.NS, name string, proxy *nettest.Proc, mode string) {
	t.Helper()
	waitFor(t, "kube-proxy on "+name+" programs the kubernetes Service", 60*time.Second, func() (bool, error) {
		out, _ := ns.Try("iptables-save", "-t", "nat")
		if mode == kubetest.ProxyModeNFTables {
			out, _ = ns.Try("nft", "list", "table", "ip", "kube-proxy")
		}
		if strings.Contains(out, kubetest.KubernetesServiceIP) {
			return true, nil
		}
		return false, fmt.Errorf("no rule for %s yet; kube-proxy log:\n%s", kubetest.KubernetesServiceIP, tail(proxy.Output(), 1500))
	})
}

// ready sets the pod's status as kubelet does once its sandbox has the
// address: Running, Ready, the eth0 address as its podIP.
func (kc *kubeCluster) ready(t testing.TB, p *corev1.Pod, n *kubeNode, s *cniPod) {
	t.Helper()
	ctx := context.Background()
	if err := kc.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	ip := s.addr(t, "eth0")
	now := metav1.Now()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: n.ip, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		HostIPs: []corev1.HostIP{{IP: n.ip}}, StartTime: &now}
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	if err := kc.c.Status().Update(ctx, p); err != nil {
		t.Fatalf("pod %s status: %v", p.Name, err)
	}
}

// backend is a pod serving its name over HTTP on 8080 and 8081 and over
// UDP and TCP on 9090, plus the UDP echo of the probers.
type backend struct {
	pod *corev1.Pod
	s   *cniPod
	ip  string
}

// runBackend creates, attaches and readies a pod with labels on node n and
// starts its servers.
func (kc *kubeCluster) runBackend(t *testing.T, n *kubeNode, name string, labels map[string]string) *backend {
	t.Helper()
	p := kc.podWith(t, "default", name, n, "", labels)
	s := n.attach(t, p)
	b := &backend{pod: p, s: s, ip: s.addr(t, "eth0")}
	httpServe(t, s.ns.Name, 8080, name)
	httpServe(t, s.ns.Name, 8081, name+"-alt")
	httpServe(t, s.ns.Name, 9090, name+"-tcp")
	udpServe(t, s.ns.Name, 9090, name+"-udp")
	startEcho(t, s.ns.Name)
	kc.ready(t, p, n, s)
	return b
}

// udpServe answers every datagram on port with body.
func udpServe(t testing.TB, nsName string, port int, body string) {
	t.Helper()
	var c net.PacketConn
	if err := inNetns(nsName, func() (err error) {
		c, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("udp server in %s: %v", nsName, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo([]byte(body), from) //nolint:errcheck // a lost answer is a failed ask
		}
	}()
}

// udpAsk sends one datagram from the namespace and returns the answer.
func udpAsk(nsName, addr string) (string, error) {
	var c net.Conn
	if err := inNetns(nsName, func() (err error) {
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for range 3 {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(time.Second)) //nolint:errcheck // the read reports it
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no answer from %s", addr)
}

// service creates a Service of the pods with the selector.
func (kc *kubeCluster) service(t testing.TB, name string, sel map[string]string, typ corev1.ServiceType, affinity corev1.ServiceAffinity, ports ...corev1.ServicePort) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Selector: sel, Type: typ, SessionAffinity: affinity, Ports: ports}}
	if err := kc.c.Create(context.Background(), svc); err != nil {
		t.Fatalf("creating service %s: %v", name, err)
	}
	return svc
}

func port(name string, proto corev1.Protocol, p, target int) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: int32(p), TargetPort: intstr.FromInt32(int32(target))}
}

// eventually retries get until it answers with a body starting with want.
func eventually(t *testing.T, what string, timeout time.Duration, get func() (string, error), want string) string {
	t.Helper()
	var got string
	waitFor(t, what, timeout, func() (bool, error) {
		var err error
		got, err = get()
		if err != nil {
			return false, err
		}
		return strings.HasPrefix(got, want), fmt.Errorf("answer %q, want %q", got, want)
	})
	return got
}

// endpoints lists the addresses of a Service's EndpointSlices (written by
// kube-controller-manager).
func (kc *kubeCluster) endpoints(t testing.TB, svc string) []string {
	t.Helper()
	var l discoveryv1.EndpointSliceList
	if err := kc.c.List(context.Background(), &l, client.InNamespace("default"),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			out = append(out, e.Addresses...)
		}
	}
	return out
}

// TestKubeNodeNetwork is a real node's network with xvr as the primary CNI:
// two xvrd nodes, the real kube-controller-manager, the real kube-proxy in
// each node's namespace and the real CoreDNS attached as a pod. It checks
// what sig-network's conformance checks: node-pod and pod-pod over http and
// udp, kubelet-style probes, Services (basic, multi-port, the same port on
// TCP and UDP, NodePort from the other node and from the underlay, ClientIP
// affinity, endpoints that move, hairpin), DNS, egress seen as the node IP,
// isolation of secondary VNs, and kill -9 of xvrd under probe and Service
// traffic.
func TestKubeNodeNetwork(t *testing.T) {
	for _, mode := range []string{kubetest.ProxyModeIPTables, kubetest.ProxyModeNFTables} {
		t.Run(mode, func(t *testing.T) {
			kc := newKubeClusterWith(t, 2, kubetest.Options{AdvertiseAddress: net.ParseIP(underlayIP)})
			kc.startManager(t)
			kc.waitVNReady(t, "default", "cluster-wide-default")
			kc.startNodeNetwork(t, mode)
			// Pods are the subtest's, so that their DELs run while the
			// xvrds it may restart, owned by t, still serve.
			t.Run("walk", func(st *testing.T) { kubeNetWalk(st, t, kc) })
		})
	}
}

func kubeNetWalk(t, owner *testing.T, kc *kubeCluster) {
	n0, n1 := kc.nodes[0], kc.nodes[1]
	web0 := kc.runBackend(t, n1, "web-0", map[string]string{"app": "web", "solo": "yes"})
	web1 := kc.runBackend(t, n0, "web-1", map[string]string{"app": "web"})
	client0 := kc.runBackend(t, n0, "client-0", map[string]string{"app": "client"})
	client1 := kc.runBackend(t, n1, "client-1", map[string]string{"app": "client"})

	// Node-pod communication, http and udp, to pods on the node and on
	// the other node; the source is the node's host address.
	for _, n := range kc.nodes {
		for _, b := range []*backend{web0, web1} {
			what := fmt.Sprintf("%s -> %s (%s) http", n.name, b.pod.Name, b.ip)
			eventually(t, what, 10*time.Second, func() (string, error) { return httpGet(n.ns.Name, "http://"+b.ip+":8080/") },
				b.pod.Name+" from "+n.hostIP+":")
			if got, err := udpAsk(n.ns.Name, b.ip+":9090"); err != nil || got != b.pod.Name+"-udp" {
				t.Fatalf("%s -> %s udp: %q, %v", n.name, b.pod.Name, got, err)
			}
			if err := tcpProbe(n.ns.Name, b.ip+":8080"); err != nil {
				t.Fatalf("tcpSocket probe %s -> %s: %v", n.name, b.pod.Name, err)
			}
		}
	}
	// Intra-pod communication, http and udp, across the nodes.
	if got, err := httpGet(client0.s.ns.Name, "http://"+web0.ip+":8080/"); err != nil || !strings.HasPrefix(got, "web-0 from "+client0.ip+":") {
		t.Fatalf("client-0 -> web-0 http: %q, %v", got, err)
	}
	if got, err := udpAsk(client0.s.ns.Name, web0.ip+":9090"); err != nil || got != "web-0-udp" {
		t.Fatalf("client-0 -> web-0 udp: %q, %v", got, err)
	}

	// A Service: basic endpoint, two ports, port 90 on TCP and UDP, NodePort.
	web := kc.service(t, "web", map[string]string{"solo": "yes"}, corev1.ServiceTypeNodePort, corev1.ServiceAffinityNone,
		port("http", corev1.ProtocolTCP, 80, 8080), port("alt", corev1.ProtocolTCP, 81, 8081),
		port("echo-tcp", corev1.ProtocolTCP, 90, 9090), port("echo-udp", corev1.ProtocolUDP, 90, 9090),
		port("probe", corev1.ProtocolUDP, probePort, probePort))
	if err := kc.c.Get(context.Background(), client.ObjectKeyFromObject(web), web); err != nil {
		t.Fatal(err)
	}
	vip := web.Spec.ClusterIP
	waitFor(t, "kube-controller-manager's EndpointSlice for web", 30*time.Second, func() (bool, error) {
		eps := kc.endpoints(t, "web")
		return len(eps) > 0 && eps[0] == web0.ip, fmt.Errorf("endpoints %v\nkcm log:\n%s", eps, tail(kc.kcm.Log(), 1500))
	})
	for _, c := range []*backend{client0, client1} { // endpoint on the other node, on the same node
		eventually(t, c.pod.Name+" -> web ClusterIP", 20*time.Second, func() (string, error) { return httpGet(c.s.ns.Name, "http://"+vip+":80/") },
			"web-0 from "+c.ip+":") // kube-proxy keeps the pod's source
		if got, err := httpGet(c.s.ns.Name, "http://"+vip+":81/"); err != nil || !strings.HasPrefix(got, "web-0-alt") {
			t.Fatalf("%s -> web:81: %q, %v", c.pod.Name, got, err)
		}
		if got, err := httpGet(c.s.ns.Name, "http://"+vip+":90/"); err != nil || !strings.HasPrefix(got, "web-0-tcp") {
			t.Fatalf("%s -> web:90/tcp: %q, %v", c.pod.Name, got, err)
		}
		if got, err := udpAsk(c.s.ns.Name, vip+":90"); err != nil || got != "web-0-udp" {
			t.Fatalf("%s -> web:90/udp: %q, %v", c.pod.Name, got, err)
		}
	}
	nodePort := fmt.Sprint(web.Spec.Ports[0].NodePort)
	// NodePort from the node itself, from the other node (n1 -> n0's
	// address; the endpoint is on n1) and from the underlay.
	eventually(t, "n0 -> its own NodePort", 10*time.Second, func() (string, error) { return httpGet(n0.ns.Name, "http://"+n0.ip+":"+nodePort+"/") }, "web-0")
	eventually(t, "n1 -> n0 NodePort", 10*time.Second, func() (string, error) { return httpGet(n1.ns.Name, "http://"+n0.ip+":"+nodePort+"/") }, "web-0")
	eventually(t, "underlay -> n0 NodePort", 10*time.Second, func() (string, error) {
		return httpGet(kc.ov.underlay.Name, "http://"+n0.ip+":"+nodePort+"/")
	}, "web-0")
	eventually(t, "underlay -> n1 NodePort", 10*time.Second, func() (string, error) {
		return httpGet(kc.ov.underlay.Name, "http://"+n1.ip+":"+nodePort+"/")
	}, "web-0")
	// Hairpin: web-0 reaches itself through its Service.
	eventually(t, "hairpin web-0 -> web -> web-0", 10*time.Second, func() (string, error) { return httpGet(web0.s.ns.Name, "http://"+vip+":80/") }, "web-0")

	// ClientIP affinity over the two web pods: 20 connections, one backend.
	sticky := kc.service(t, "sticky", map[string]string{"app": "web"}, corev1.ServiceTypeClusterIP, corev1.ServiceAffinityClientIP,
		port("http", corev1.ProtocolTCP, 80, 8080))
	if err := kc.c.Get(context.Background(), client.ObjectKeyFromObject(sticky), sticky); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two endpoints for sticky", 30*time.Second, func() (bool, error) {
		return len(kc.endpoints(t, "sticky")) == 2, nil
	})
	first := eventually(t, "client-0 -> sticky", 20*time.Second, func() (string, error) {
		return httpGet(client0.s.ns.Name, "http://"+sticky.Spec.ClusterIP+"/")
	}, "web-")
	backendOf := func(body string) string { b, _, _ := strings.Cut(body, " "); return b }
	for i := range 20 {
		got, err := httpGet(client0.s.ns.Name, "http://"+sticky.Spec.ClusterIP+"/")
		if err != nil || backendOf(got) != backendOf(first) {
			t.Fatalf("sticky connection %d: %q, %v; the first went to %s", i, got, err, backendOf(first))
		}
	}

	// Endpoints that move: the only pod of a Service deleted, a new one on the other node.
	mover0 := kc.runBackend(t, n0, "mover-0", map[string]string{"app": "mover"})
	mover := kc.service(t, "mover", map[string]string{"app": "mover"}, corev1.ServiceTypeClusterIP, corev1.ServiceAffinityNone,
		port("http", corev1.ProtocolTCP, 80, 8080))
	if err := kc.c.Get(context.Background(), client.ObjectKeyFromObject(mover), mover); err != nil {
		t.Fatal(err)
	}
	eventually(t, "client-1 -> mover (mover-0)", 30*time.Second, func() (string, error) {
		return httpGet(client1.s.ns.Name, "http://"+mover.Spec.ClusterIP+"/")
	}, "mover-0")
	n0.del(t, mover0.s)
	kc.deletePod(t, mover0.pod)
	kc.runBackend(t, n1, "mover-1", map[string]string{"app": "mover"})
	eventually(t, "client-1 -> mover (mover-1)", 30*time.Second, func() (string, error) {
		return httpGet(client1.s.ns.Name, "http://"+mover.Spec.ClusterIP+"/")
	}, "mover-1")

	// DNS: the real CoreDNS attached as a pod behind kube-dns, reaching the
	// API server through the kubernetes Service.
	kc.runCoreDNS(t, n0)
	for _, c := range []*backend{client0, client1} {
		for name, want := range map[string]string{"kubernetes.default.svc.cluster.local": kubetest.KubernetesServiceIP,
			"web.default.svc.cluster.local": vip, "sticky.default.svc.cluster.local": sticky.Spec.ClusterIP} {
			waitFor(t, c.pod.Name+" resolves "+name, 30*time.Second, func() (bool, error) {
				got, err := resolveIn(c.s.ns.Name, name)
				return err == nil && got == want, fmt.Errorf("%q, %v; want %s", got, err, want)
			})
		}
	}

	// Egress: a listener in the underlay, outside every VN, sees the node's address.
	httpServe(t, kc.ov.underlay.Name, 8090, "outside")
	for _, c := range []struct {
		b *backend
		n *kubeNode
	}{{client0, n0}, {client1, n1}} {
		got, err := httpGet(c.b.s.ns.Name, "http://"+underlayIP+":8090/")
		if err != nil || !strings.HasPrefix(got, "outside from "+c.n.ip+":") {
			t.Fatalf("%s -> the outside: %q, %v (want the node's %s as the source)", c.b.pod.Name, got, err, c.n.ip)
		}
	}

	// Isolation: a secondary VN is not the host's, and VNs stay apart.
	kc.nad(t, "default", "vn-left", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.10.0/24"})
	kc.nad(t, "default", "vn-blue", "xvr", map[string]string{"opencontrail.org/cidr": "198.18.11.0/24"})
	kc.waitVNReady(t, "default", "vn-left")
	kc.waitVNReady(t, "default", "vn-blue")
	left := n0.attach(t, kc.pod(t, "default", "left", n0, "vn-left"))
	blue := n0.attach(t, kc.pod(t, "default", "blue", n0, "vn-blue"))
	if out, err := n0.ns.Try("ping", "-c", "1", "-W", "1", left.addr(t, "eth1")); err == nil {
		t.Fatalf("the node reached a pod on vn-left:\n%s", out)
	}
	if out, err := left.ping(blue.addr(t, "eth1"), 1); err == nil {
		t.Fatalf("vn-left reached vn-blue:\n%s", out)
	}

	// kill -9 of xvrd on n1 (web-0's node) under probe and Service traffic.
	kc.killRecover(t, owner, n1, web0, client0, vip)
}

// killRecover kills n's xvrd (-9) while the node probes b over UDP and c
// reaches b through the Service's probe port, restarts it, and checks
// both recover within the docs/reliability.md bound with the host routes
// intact.
func (kc *kubeCluster) killRecover(t, owner *testing.T, n *kubeNode, b, c *backend, vip string) {
	t.Helper()
	routes := n.kernelRoutes(t)
	probe := startProber(t, "node->pod", n.ns.Name, b.ip, 10*time.Millisecond, 60*time.Second)
	svc := startProber(t, "pod->service", c.s.ns.Name, vip, 10*time.Millisecond, 60*time.Second)
	probe.waitAnswered(t, 10*time.Second)
	svc.waitAnswered(t, 10*time.Second)
	if err := n.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n.proc.Wait(10 * time.Second) // "signal: killed" is the expected exit
	if got := n.kernelRoutes(t); got != routes {
		t.Fatalf("host routes after kill -9: %q, want %q", got, routes)
	}
	start := time.Now()
	n.restartSame(owner)
	for _, p := range []*prober{probe, svc} {
		waitFor(t, p.name+" back after kill -9", 20*time.Second, func() (bool, error) {
			_, ok := p.firstReplyAfter(start)
			return ok, nil
		})
		r, _ := p.firstReplyAfter(start)
		gap := r.recv.Sub(start)
		t.Logf("%s: first reply %v after the restart began", p.name, gap.Round(time.Millisecond))
		if gap > time.Second {
			t.Errorf("%s: back %v after the restart, want < 1s (docs/reliability.md)", p.name, gap)
		}
	}
}

// runCoreDNS attaches a CoreDNS pod (kube-system, k8s-app=kube-dns) on n,
// creates the kube-dns Service at kubeDNSIP and waits until it answers.
func (kc *kubeCluster) runCoreDNS(t *testing.T, n *kubeNode) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "coredns", Image: "registry.invalid/coredns"}}}}
	if err := kc.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	s := n.attach(t, p)
	// In a pod, the API server is the kubernetes Service (in-cluster config).
	cfg, err := clientcmd.LoadFromFile(kc.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + kubetest.KubernetesServiceIP + ":443"
	}
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "in-cluster.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kcfg); err != nil {
		t.Fatal(err)
	}
	args, err := kubetest.CoreDNSArgs(dir, kubetest.CoreDNSConfig{Listen: "0.0.0.0:53", Kubeconfig: kcfg,
		HealthAddr: "0.0.0.0:8080", ReadyAddr: "0.0.0.0:8181"})
	if err != nil {
		t.Fatal(err)
	}
	proc := s.ns.Start(t, args...)
	kc.ready(t, p, n, s)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{ClusterIP: kubeDNSIP, Selector: map[string]string{"k8s-app": "kube-dns"},
			Ports: []corev1.ServicePort{port("dns", corev1.ProtocolUDP, 53, 53), port("dns-tcp", corev1.ProtocolTCP, 53, 53)}}}
	if err := kc.c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CoreDNS ready (synced with the API server through the kubernetes Service)", 60*time.Second, func() (bool, error) {
		_, err := httpGet(n.ns.Name, "http://"+s.addr(t, "eth0")+":8181/ready")
		return err == nil, fmt.Errorf("%v\ncoredns log:\n%s", err, tail(proc.Output(), 1500))
	})
}

// resolveIn resolves name's A record from inside the namespace through
// kube-dns, as a pod whose resolv.conf names it does.
func resolveIn(nsName, name string) (string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(nsName, func() (err error) {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err = d.DialContext(ctx, network, kubeDNSIP+":53")
			return err
		})
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := r.LookupHost(ctx, name)
	if err != nil {
		return "", err
	}
	return strings.Join(ips, ","), nil
}
