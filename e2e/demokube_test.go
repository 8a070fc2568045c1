//go:build demo

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDemoKube is `make demo-kube` (built only with -tags demo): the seed's
// walkthrough told with the real kubectl on a real one-node cluster —
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
// and kubelet, the node in a network namespace of its own — with xvr
// installed from its own images by `kubectl apply -f deploy/kubernetes/`.
// It prints each command and what it answered, and fails where the story
// does (the same checks as TestRealNode).
func TestDemoKube(t *testing.T) {
	say := func(format string, args ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", args...) }
	say("a one-node cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet (v1.32.13); xvr's images built and imported")
	start := time.Now()
	rn := newRealNode(t)
	fmt.Printf("up in %v\n", time.Since(start).Round(time.Millisecond))
	kubectl := func(args ...string) string {
		fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
		out := rn.mustKubectl(t, args...)
		fmt.Print(out)
		if out != "" && !strings.HasSuffix(out, "\n") {
			fmt.Println()
		}
		return out
	}

	say("xvr installed the way an operator does: kubectl apply -f deploy/kubernetes/")
	rn.install(t)
	kubectl("-n", "kube-system", "get", "daemonset,deployment,pods", "-o", "wide")

	say("virtual networks from NetworkAttachmentDefinitions with Contrail's annotations")
	kubectl("apply", "-f", "../examples/vn-left-1.yaml", "-f", "../examples/vn-right-1.yaml")
	kubectl("wait", "--for=condition=Ready", "virtualnetwork/vn-left-1", "virtualnetwork/vn-right-1", "--timeout=60s")
	kubectl("get", "net-attach-def", "-A")
	kubectl("get", "xvn", "-A")

	say("a pod asking for two networks gets three interfaces; kubelet's probes reach it through xvr")
	kubectl("apply", "-f", "../examples/pod-test-app.yaml")
	kubectl("wait", "--for=condition=Ready", "pod/multi-net-app", "--timeout=90s")
	kubectl("get", "pod", "multi-net-app", "-o", "wide")

	say("its network-status: every interface with its IP, MAC and network")
	kubectl("get", "pod", "multi-net-app", "-o", `jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}`)

	say("inside the pod: the same IPs and MACs")
	kubectl("exec", "multi-net-app", "--", "ip", "addr")
	rn.checkExecAddr(t, "multi-net-app", "default/vn-left-1", "default/vn-right-1")
	kubectl("get", "xip")

	say("a second pod on vn-left-1 and one on blue/vn-blue: a VN's pods reach each other, other VNs' do not")
	left := rn.peers(t, "multi-net-app")
	kubectl("get", "pods", "-A", "-o", "wide")
	inPod := func(pod string, args ...string) {
		fmt.Printf("$ (in %s) %s\n", pod, strings.Join(args, " "))
		out, err := rn.inPod(t, pod, args...)
		if err != nil {
			fmt.Println("(no answer: another VN)")
			return
		}
		fmt.Print(out)
	}
	inPod("multi-net-app", "ping", "-c", "2", "-i", "0.2", left)
	inPod("multi-net-app", "ping", "-c", "2", "-i", "0.2", "-W", "1", rn.netIP(t, "peer-blue", "eth1"))

	say("a Service in front of the pods, reached by name through CoreDNS (kube-dns) and kube-proxy")
	rn.dns(t, "multi-net-app", "peer-left", "peer-blue")
	kubectl("get", "svc", "-A")
	kubectl("exec", "multi-net-app", "--", "/test-app", "get", "http://rn-app/")

	say("kubectl delete leaves nothing behind: no veth, no port, no InstanceIP")
	kubectl("delete", "pod", "peer-left", "-n", "default", "--wait=true", "--timeout=60s")
	kubectl("delete", "pod", "peer-blue", "-n", "default", "--wait=true", "--timeout=60s")
	kubectl("delete", "-f", "../examples/pod-test-app.yaml", "--wait=true", "--timeout=60s")
	waitFor(t, "nothing left of the pod", 30*time.Second, func() (bool, error) {
		left := rn.leftovers(t)
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	kubectl("get", "xip")
	say("demo done in %v", time.Since(start).Round(time.Second))
}
