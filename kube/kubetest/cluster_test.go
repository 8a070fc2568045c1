package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// waitFor polls cond every 200ms until it returns true or timeout passes,
// then fails t with what and cond's last error.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func clientset(t *testing.T, e *Env) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func createNamespace(t *testing.T, cs *kubernetes.Clientset, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesService: the `kubernetes` Service (which kube-apiserver
// makes shortly after it reports healthy) has the first address of
// ServiceCIDR.
func TestKubernetesService(t *testing.T) {
	e := Require(t)
	cs := clientset(t, e)
	var svc *corev1.Service
	waitFor(t, 30*time.Second, "default/kubernetes exists", func() (bool, error) {
		var err error
		svc, err = cs.CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
		return err == nil, err
	})
	if svc.Spec.ClusterIP != KubernetesServiceIP {
		t.Errorf("kubernetes ClusterIP %s, want %s", svc.Spec.ClusterIP, KubernetesServiceIP)
	}
}

// TestOptions: on an Env of its own, the `kubernetes` Service's endpoint is
// Options.AdvertiseAddress:SecurePort (with the default, 127.0.0.1, there
// is none: Endpoints may not hold a loopback address), the serving
// certificate, verified with CAFile, names that address and the Service,
// and with Options.ServiceAccountAdmission a Pod gets its token volume.
func TestOptions(t *testing.T) {
	Require(t) // for -short
	const addr = "198.18.99.1"
	e, err := StartWith(Options{AdvertiseAddress: net.ParseIP(addr), ServiceAccountAdmission: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	}()
	cs := clientset(t, e)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "default/kubernetes endpoints are "+addr+":SecurePort", func() (bool, error) {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range ep.Subsets {
			if len(s.Addresses) == 1 && s.Addresses[0].IP == addr && len(s.Ports) == 1 && int(s.Ports[0].Port) == e.SecurePort {
				return true, nil
			}
		}
		return false, fmt.Errorf("subsets %+v", ep.Subsets)
	})
	caPEM, err := os.ReadFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in CAFile")
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.SecurePort), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	for _, name := range []string{addr, KubernetesServiceIP, "kubernetes.default.svc." + ClusterDomain} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	t.Run("serviceaccount-admission", func(t *testing.T) { checkServiceAccountAdmission(t, e, cs) })
}

// checkServiceAccountAdmission: a Pod is rejected until the controller
// manager has made its Namespace's default ServiceAccount, then admitted
// with the projected token volume.
func checkServiceAccountAdmission(t *testing.T, e *Env, cs *kubernetes.Clientset) {
	ctx := context.Background()
	const ns = "sa-admission"
	createNamespace(t, cs, ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "serviceaccount") {
		t.Fatalf("a Pod without its ServiceAccount: %v, want rejected", err)
	}
	e.StartControllerManager(t, ControllerManagerOptions{})
	var got *corev1.Pod
	waitFor(t, 60*time.Second, "the Pod is admitted once default exists", func() (bool, error) {
		var err error
		got, err = cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err == nil, err
	})
	if got.Spec.ServiceAccountName != "default" || len(got.Spec.Volumes) != 1 || got.Spec.Volumes[0].Projected == nil {
		t.Errorf("admitted Pod: account %q, volumes %+v; want default and a projected token volume", got.Spec.ServiceAccountName, got.Spec.Volumes)
	}
}

// TestControllerManager runs the real kube-controller-manager and checks
// the work of its controllers: a Namespace's default ServiceAccount and
// root CA ConfigMap, a token Secret that the API server accepts (so the
// signing keys match), a Deployment's ReplicaSet and Pods, and the
// EndpointSlice of a Service whose Pod the test made Ready as kubelet
// would.
func TestControllerManager(t *testing.T) {
	e := Require(t)
	cs := clientset(t, e)
	ctx := context.Background()
	kcm := e.StartControllerManager(t, ControllerManagerOptions{})
	const ns = "kcm-test"
	createNamespace(t, cs, ns)

	waitFor(t, 60*time.Second, "the serviceaccount controller makes kcm-test/default", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	waitFor(t, 30*time.Second, "the root CA publisher makes kcm-test/kube-root-ca.crt", func() (bool, error) {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE"), err
	})
	t.Run("token", func(t *testing.T) { checkTokenSecret(t, e, cs, ns) })
	t.Run("deployment", func(t *testing.T) { checkDeployment(t, cs, ns) })
	t.Run("endpointslice", func(t *testing.T) { checkEndpointSlice(t, cs, ns) })
	if t.Failed() {
		t.Logf("kube-controller-manager log:\n%s", tail(kcm.Log(), 40))
	}
}

// checkTokenSecret: the serviceaccount-token controller fills a token
// Secret, and the API server authenticates its token as the account.
func checkTokenSecret(t *testing.T, e *Env, cs *kubernetes.Clientset, ns string) {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "default-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: "default"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var token string
	waitFor(t, 30*time.Second, "the token controller fills the Secret", func() (bool, error) {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = token
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the API server rejects the controller's token: %v", err)
	}
	if want := "system:serviceaccount:" + ns + ":default"; r.Status.UserInfo.Username != want {
		t.Errorf("token authenticates as %q, want %q", r.Status.UserInfo.Username, want)
	}
}

// checkDeployment: the deployment and replicaset controllers make a
// ReplicaSet and its Pods (which stay Pending: nothing schedules them).
func checkDeployment(t *testing.T, cs *kubernetes.Clientset, ns string) {
	replicas := int32(2)
	labels := map[string]string{"app": "deploy"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
			},
		},
	}
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a ReplicaSet owned by the Deployment", func() (bool, error) {
		rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=deploy"})
		if err != nil {
			return false, err
		}
		for _, rs := range rss.Items {
			if o := metav1.GetControllerOf(&rs); o != nil && o.Kind == "Deployment" && o.Name == d.Name {
				return true, nil
			}
		}
		return false, nil
	})
	waitFor(t, 60*time.Second, "2 Pods of the ReplicaSet", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=deploy"})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 2, fmt.Errorf("%d pods", len(pods.Items))
	})
}

// checkEndpointSlice: a Service's EndpointSlice gets the address of a Ready
// Pod on a Node, both made by the test as the scheduler and kubelet would.
func checkEndpointSlice(t *testing.T, cs *kubernetes.Clientset, ns string) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kcm-node"}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}) })
	const podIP = "198.18.100.5"
	readyPod(t, cs, ns, "web-0", node.Name, podIP, map[string]string{"app": "web"})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "an EndpointSlice of web with the Pod's address, ready", func() (bool, error) {
		sl, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err
		}
		for _, s := range sl.Items {
			for _, ep := range s.Endpoints {
				ready := ep.Conditions.Ready != nil && *ep.Conditions.Ready
				if len(ep.Addresses) == 1 && ep.Addresses[0] == podIP && ready && len(s.Ports) == 1 && *s.Ports[0].Port == 8080 {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("slices %+v", sl.Items)
	})
}

// readyPod creates a Pod bound to node, serving on port 8080, and sets its
// status as kubelet would once it runs: Running, ip, Ready.
func readyPod(t *testing.T, cs *kubernetes.Clientset, ns, name, node, ip string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "pause", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		},
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubeProxy runs the real kube-proxy in a fresh node namespace that
// reaches the API server through a forwarder, in each mode, and checks
// that a ClusterIP Service's address and its Pod's (from the EndpointSlice
// the real controller manager makes) show up in the namespace's rules and
// go away with the Service.
func TestKubeProxy(t *testing.T) {
	e := Require(t)
	nettest.RequireRoot(t)
	e.StartControllerManager(t, ControllerManagerOptions{})
	for _, mode := range []string{ProxyModeIPTables, ProxyModeNFTables} {
		t.Run(mode, func(t *testing.T) { testKubeProxy(t, e, mode) })
	}
}

func testKubeProxy(t *testing.T, e *Env, mode string) {
	cs := clientset(t, e)
	ctx := context.Background()
	node := nettest.NewNS(t, "kp")
	// The node's address on a link of its own (a veth pair inside the
	// namespace: this kernel may lack dummy links).
	dev := nettest.Name(t, "kpa")
	node.AddVeth(t, dev, nettest.Name(t, "kpb"))
	const nodeIP = "198.18.97.2"
	node.Run(t, "ip", "addr", "add", nodeIP+"/24", "dev", dev)
	node.ForwardTCP(t, "127.0.0.1:"+strconv.Itoa(e.SecurePort))
	// The Node with its address, as kubelet would report it: kube-proxy
	// waits (up to about 30s) for it.
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}) })
	argv, err := KubeProxyArgs(t.TempDir(), KubeProxyConfig{
		Mode: mode, NodeName: node.Name, NodeIP: nodeIP, ClusterCIDR: "198.18.98.0/24", Kubeconfig: e.Kubeconfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	proxy := node.Start(t, argv...)
	defer func() {
		if t.Failed() {
			t.Logf("kube-proxy log:\n%s", tail(proxy.Output(), 60))
		}
	}()
	// iptables-save shows the xtables rules only (even on the nft backend);
	// the nftables proxier has a table of its own.
	rules := []string{"iptables-save"}
	if mode == ProxyModeNFTables {
		rules = []string{"nft", "list", "table", "ip", "kube-proxy"}
	}
	ns := "kp-" + mode
	createNamespace(t, cs, ns)
	const podIP = "198.18.98.10"
	readyPod(t, cs, ns, "web-0", node.Name, podIP, map[string]string{"app": "web"})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	svc, err = cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	if _, cidr, _ := net.ParseCIDR(ServiceCIDR); !cidr.Contains(net.ParseIP(ip)) {
		t.Fatalf("ClusterIP %s is outside %s", ip, ServiceCIDR)
	}
	dnat := podIP + ":8080"
	waitFor(t, 60*time.Second, fmt.Sprintf("%s rules name ClusterIP %s and endpoint %s", mode, ip, dnat), func() (bool, error) {
		out, err := node.Try(rules...)
		return err == nil && strings.Contains(out, ip) && strings.Contains(out, dnat), err
	})
	if err := cs.CoreV1().Services(ns).Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("%s rules forget ClusterIP %s and endpoint %s", mode, ip, dnat), func() (bool, error) {
		out, err := node.Try(rules...)
		return err == nil && !strings.Contains(out, ip) && !strings.Contains(out, dnat), err
	})
	if err := proxy.Wait(100 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("kube-proxy exited: %v", err)
	}
}

// freePort returns a port of 127.0.0.1 that is free for both TCP and UDP
// at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return 0
}

// TestCoreDNS runs the real CoreDNS beside the test and resolves the
// `kubernetes` Service and a new Service (forward and reverse) through it
// with real DNS queries.
func TestCoreDNS(t *testing.T) {
	e := Require(t)
	cs := clientset(t, e)
	ctx := context.Background()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ready := "127.0.0.1:" + strconv.Itoa(freePort(t))
	argv, err := CoreDNSArgs(t.TempDir(), CoreDNSConfig{
		Listen: listen, Kubeconfig: e.Kubeconfig, ReadyAddr: ready,
		HealthAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	dns := nettest.StartHost(t, argv...)
	defer func() {
		if t.Failed() {
			t.Logf("coredns log:\n%s", tail(dns.Output(), 60))
		}
	}()
	waitFor(t, 60*time.Second, "CoreDNS is ready", func() (bool, error) {
		r, err := http.Get("http://" + ready + "/ready")
		if err != nil {
			return false, err
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK, fmt.Errorf("status %s", r.Status)
	})
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, listen)
	}}
	lookup := func(name, want string) {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("%s resolves to %s", name, want), func() (bool, error) {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			addrs, err := res.LookupHost(qctx, name)
			return err == nil && len(addrs) == 1 && addrs[0] == want, fmt.Errorf("%v %v", addrs, err)
		})
	}
	lookup("kubernetes.default.svc."+ClusterDomain+".", KubernetesServiceIP)
	const ns = "dns-test"
	createNamespace(t, cs, ns)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	svc, err = cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := "web." + ns + ".svc." + ClusterDomain + "."
	lookup(name, svc.Spec.ClusterIP)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if names, err := res.LookupAddr(qctx, svc.Spec.ClusterIP); err != nil || len(names) != 1 || names[0] != name {
		t.Errorf("reverse lookup of %s: %v %v, want %s", svc.Spec.ClusterIP, names, err, name)
	}
}
