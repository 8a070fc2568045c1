package e2e

import (
	"context"
	"net"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/internal/nettest"
)

// The Linux-routing peer of a kubeNode in the node-network benchmarks: a
// node namespace of the same shape (a fabric veth on the cluster's
// underlay holding the node IP, the API server forwarded onto its
// 127.0.0.1, the real kube-proxy) whose pods are plain veth pairs routed
// by the node's kernel, as a routed CNI (Calico-like) would attach them.
const (
	linuxNodeName = "linux-0"
	linuxNodeIP   = "198.18.200.9"
	// linuxPodCIDR is the Linux node's pods' range, apart from the xvr
	// default network (kubeDefaultCIDR) and the Service CIDR.
	linuxPodCIDR = "198.18.108.0/24"
	linuxPodGW   = "198.18.108.254"
)

// linuxNode is a node namespace whose kernel routes between its pods.
type linuxNode struct {
	name, ip string
	ns       *nettest.NS
	proxy    *nettest.Proc
	pods     int // pods attached so far
}

// addLinuxNode registers the Linux node with the API server (InternalIP,
// as kubelet would) and builds its namespace: IPv4 forwarding on,
// reverse-path filtering off, the fabric link, the API server forwarder.
func (kc *kubeCluster) addLinuxNode(t testing.TB) *linuxNode {
	t.Helper()
	ln := &linuxNode{name: linuxNodeName, ip: linuxNodeIP, ns: nettest.NewNS(t, "xkln")}
	nd := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ln.name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ln.ip}}}}
	if err := kc.c.Create(context.Background(), nd); err != nil {
		t.Fatal(err)
	}
	ln.ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0")
	ln.ns.ForwardTCP(t, kc.api)
	kc.ov.fabricLink(t, ln.ns, "xklf", ln.ip)
	return ln
}

// linuxPod is a pod attached to a linuxNode and its Pod object.
type linuxPod struct {
	*nettest.Pod
	pod *corev1.Pod
}

// attach creates the Pod object (bound to the node) and its sandbox: a
// veth pair with eth0 in the pod (a /24 of linuxPodCIDR, default route via
// linuxPodGW, transmit checksum offload off as on xvr's pods) and the host
// end in the node holding linuxPodGW/32, a /32 route to the pod and proxy
// ARP. Then it sets the pod's status as kubelet would.
func (ln *linuxNode) attach(t testing.TB, kc *kubeCluster, name string, labels map[string]string) *linuxPod {
	t.Helper()
	ln.pods++
	if ln.pods > 250 {
		t.Fatal("linux node: more than 250 pods")
	}
	a := netip.MustParsePrefix(linuxPodCIDR).Addr().As4()
	a[3] = byte(ln.pods)
	ip := netip.PrefixFrom(netip.AddrFrom4(a), 24)
	mac := net.HardwareAddr{0x02, 0x78, 0x6c, 0x00, 0x00, byte(ln.pods)}
	p := kc.podWith(t, "default", name, &kubeNode{name: ln.name}, "", labels)
	np := nettest.AddPod(t, ln.ns, "xklp", ip, netip.MustParseAddr(linuxPodGW), mac)
	h := np.HostIf
	ln.ns.Run(t, "sysctl", "-qw", "net.ipv4.conf."+h+".rp_filter=0", "net.ipv4.conf."+h+".proxy_arp=1",
		"net.ipv4.neigh."+h+".proxy_delay=0")
	ln.ns.Run(t, "ip", "addr", "add", linuxPodGW+"/32", "dev", h)
	ln.ns.Run(t, "ip", "route", "add", ip.Addr().String()+"/32", "dev", h)
	kc.readyAt(t, p, ln.ip, ip.Addr().String())
	return &linuxPod{Pod: np, pod: p}
}

// readyAt is kubeCluster.ready for a pod that no xvr node attached: status
// Running and Ready with podIP on the node at hostIP.
func (kc *kubeCluster) readyAt(t testing.TB, p *corev1.Pod, hostIP, podIP string) {
	t.Helper()
	ctx := context.Background()
	if err := kc.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: hostIP, PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		HostIPs: []corev1.HostIP{{IP: hostIP}}, StartTime: &now}
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	if err := kc.c.Status().Update(ctx, p); err != nil {
		t.Fatalf("pod %s status: %v", p.Name, err)
	}
}
