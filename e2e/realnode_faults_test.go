package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
)

// Fault bounds of TestRealNode.
const (
	kubeletBackBound = 30 * time.Second // the Node's status updated again after kubelet restarted
	ctrdBackBound    = 30 * time.Second // kubectl exec works again after containerd restarted
	lateAppBound     = 60 * time.Second // a pod created while xvrd was away Ready after it is back
)

// waitVN waits for the VirtualNetwork of a NAD to be Ready.
func (rn *realNode) waitVN(t testing.TB, namespace, name string) {
	t.Helper()
	waitFor(t, "VN "+namespace+"/"+name+" Ready", 60*time.Second, func() (bool, error) {
		var vn v1alpha1.VirtualNetwork
		if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &vn); err != nil {
			return false, err
		}
		for _, c := range vn.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				return c.Status == "True", fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

// createApp creates a test-app pod in default attached to networks (the
// networks annotation) and, if wait, waits for it to be Ready.
func (rn *realNode) createApp(t testing.TB, name, networks string, wait bool) {
	t.Helper()
	rn.createPod(t, appPod(name, networks))
	if wait {
		rn.waitReady(t, name, 90*time.Second)
	}
}

// appPod is a test-app pod in default (label app=rn-test-app) attached to
// networks, Ready once it listens on 8080.
func appPod(name, networks string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
			Labels:      map[string]string{"app": "rn-test-app"},
			Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: networks}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "app", Image: "xvr.local/test-app:" + imageTag,
				ImagePullPolicy: corev1.PullNever,
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
					TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}}},
		},
	}
}

func (rn *realNode) createPod(t testing.TB, p *corev1.Pod) {
	t.Helper()
	if err := rn.c.Create(context.Background(), p); err != nil {
		t.Fatalf("creating pod %s: %v", p.Name, err)
	}
}

func (rn *realNode) waitReady(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	if _, err := rn.kubectl(t, "wait", "--for=condition=Ready", "pod/"+name, fmt.Sprintf("--timeout=%ds", int(timeout.Seconds()))); err != nil {
		out, _ := rn.kubectl(t, "describe", "pod", name)
		t.Fatalf("%v\n%s", err, out)
	}
}

// pod gets a pod of default.
func (rn *realNode) pod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := rn.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// netIP is the address of the pod's interface ifname in its network-status.
func (rn *realNode) netIP(t testing.TB, name, ifname string) string {
	t.Helper()
	p := rn.pod(t, name)
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(p.Annotations[nadv1.NetworkStatusAnnot]), &st); err != nil {
		t.Fatalf("pod %s network-status: %v", name, err)
	}
	for _, e := range st {
		if e.Interface == ifname && len(e.IPs) > 0 {
			return e.IPs[0]
		}
	}
	t.Fatalf("pod %s has no %s in %+v", name, ifname, st)
	return ""
}

// appPID is the host PID of the pod's container, from containerd.
func (rn *realNode) appPID(t testing.TB, name string) string {
	t.Helper()
	p := rn.pod(t, name)
	if len(p.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s: containers %+v", name, p.Status.ContainerStatuses)
	}
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	out, err := rn.ctrd.Ctr("task", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == id {
			return f[1]
		}
	}
	t.Fatalf("pod %s: no task %s in\n%s", name, id, out)
	return ""
}

// inPod runs args (a host program) in the network namespace of the pod's
// container, bounded to 10 s.
func (rn *realNode) inPod(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	pid := rn.appPID(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/" + pid + "/ns/net", "--"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in pod %s: %w: %s", strings.Join(args, " "), name, err, out)
	}
	return string(out), nil
}

// ping is one echo from pod to ip, bounded to a second.
func (rn *realNode) ping(t testing.TB, pod, ip string) error {
	t.Helper()
	_, err := rn.inPod(t, pod, "ping", "-c", "1", "-W", "1", ip)
	return err
}

// waitPing waits (bounded) for pod to reach ip.
func (rn *realNode) waitPing(t testing.TB, what, pod, ip string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, what, timeout, func() (bool, error) {
		err := rn.ping(t, pod, ip)
		return err == nil, err
	})
	return time.Since(start)
}

// peers runs a second test-app pod on vn-left-1 and one on blue/vn-blue
// (examples/vn-blue.yaml): app reaches the first over its vn-left-1
// interface; pointed at vn-left-1's gateway, it does not reach the blue
// pod, nor the blue pod the vn-left-1 one. It returns the vn-left-1
// peer's address.
func (rn *realNode) peers(t testing.TB, app string) string {
	t.Helper()
	rn.mustKubectl(t, "create", "namespace", "blue")
	rn.mustKubectl(t, "apply", "-f", "../examples/vn-blue.yaml")
	rn.waitVN(t, "blue", "vn-blue")
	start := time.Now()
	rn.createApp(t, "peer-left", `[{"name":"vn-left-1"}]`, false)
	rn.createApp(t, "peer-blue", `[{"namespace":"blue","name":"vn-blue"}]`, false)
	rn.waitReady(t, "peer-left", 90*time.Second)
	rn.waitReady(t, "peer-blue", 90*time.Second)
	t.Logf("two more pods Ready in %v", time.Since(start).Round(time.Millisecond))
	rn.checkExecAddr(t, "peer-left", "default/vn-left-1")
	rn.checkExecAddr(t, "peer-blue", "blue/vn-blue")
	left, blue := rn.netIP(t, "peer-left", "eth1"), rn.netIP(t, "peer-blue", "eth1")
	d := rn.waitPing(t, app+" -> peer-left on vn-left-1", app, left, 10*time.Second)
	t.Logf("%s -> peer-left (%s) on vn-left-1 after %v", app, left, d.Round(time.Millisecond))
	if _, err := rn.inPod(t, app, "ip", "route", "replace", "198.18.30.0/24", "via", "198.18.10.254", "dev", "eth1"); err != nil {
		t.Fatal(err)
	}
	if _, err := rn.inPod(t, "peer-blue", "ip", "route", "replace", "198.18.10.0/24", "via", "198.18.30.254", "dev", "eth1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to string }{{app, blue}, {"peer-blue", left}} {
		if out, err := rn.inPod(t, c.from, "ping", "-c", "3", "-i", "0.2", "-W", "1", c.to); err == nil {
			t.Errorf("%s reached %s across VNs:\n%s", c.from, c.to, out)
		}
	}
	return left
}

// restartKubelet stops and starts the node's kubelet: the running pods
// keep their containers (same PIDs), interfaces and traffic; the Node's
// status is posted again within kubeletBackBound and it stays Ready.
func (rn *realNode) restartKubelet(t testing.TB, app, peer string) {
	t.Helper()
	pid := rn.appPID(t, app)
	start := time.Now().Truncate(time.Second)
	if err := rn.kubelet.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := rn.ping(t, app, peer); err != nil {
		t.Errorf("%s -> %s right after kubelet's restart: %v", app, peer, err)
	}
	waitFor(t, "the Node's status posted by the new kubelet", kubeletBackBound, func() (bool, error) {
		var n corev1.Node
		if err := rn.c.Get(context.Background(), client.ObjectKey{Name: rn.name}, &n); err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(start),
					fmt.Errorf("Ready %s, heartbeat %v", c.Status, c.LastHeartbeatTime)
			}
		}
		return false, nil
	})
	posted := time.Since(start)
	rn.waitExec(t, app, kubeletBackBound, "kubelet")
	t.Logf("kubelet restarted: the Node's status posted again after %v, kubectl exec back after %v",
		posted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	rn.checkStill(t, app, pid, "kubelet", "default/vn-left-1", "default/vn-right-1")
}

// restartContainerd stops and starts the node's containerd: the pods keep
// running and reaching each other; kubectl exec (kubelet -> CRI) works
// again within ctrdBackBound.
func (rn *realNode) restartContainerd(t testing.TB, app, peer string) {
	t.Helper()
	pid := rn.appPID(t, app)
	start := time.Now()
	if err := rn.ctrd.Restart(); err != nil {
		t.Fatal(err)
	}
	serving := time.Since(start)
	if err := rn.ping(t, app, peer); err != nil {
		t.Errorf("%s -> %s right after containerd's restart: %v", app, peer, err)
	}
	rn.waitExec(t, app, ctrdBackBound, "containerd")
	t.Logf("containerd restarted: serving after %v, kubectl exec back after %v",
		serving.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	rn.checkStill(t, app, pid, "containerd", "default/vn-left-1", "default/vn-right-1")
}

// waitExec waits for kubectl exec into app to work after what restarted.
func (rn *realNode) waitExec(t testing.TB, app string, bound time.Duration, what string) {
	t.Helper()
	waitFor(t, "kubectl exec after "+what+"'s restart", bound, func() (bool, error) {
		_, err := rn.kubectl(t, "exec", app, "--", "ip", "link")
		return err == nil, err
	})
}

// checkStill asserts that app's container is the one of pid, never
// restarted, with the same interfaces, after what restarted.
func (rn *realNode) checkStill(t testing.TB, app, pid, what string, networks ...string) {
	t.Helper()
	if now := rn.appPID(t, app); now != pid {
		t.Errorf("pod %s's container is PID %s after %s's restart, was %s", app, now, what, pid)
	}
	if cs := rn.pod(t, app).Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount != 0 {
		t.Errorf("pod %s's containers after %s's restart: %+v", app, what, cs)
	}
	rn.checkExecAddr(t, app, networks...)
}

// awayLabel is the nodeSelector that takes the xvr-node DaemonSet off
// every node (no Node has it).
const awayLabel = "xvr.test/away"

// podVeths lists the veths in the node's namespace other than the
// fabric and xvr's host interface: the pods'.
func (rn *realNode) podVeths(t testing.TB) []string {
	t.Helper()
	var left []string
	out := rn.ns.Run(t, "ip", "-o", "link", "show", "type", "veth")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if dev != rn.fabric && dev != "xvr-host" && dev != "xvr-net" {
			left = append(left, "veth "+dev)
		}
	}
	return left
}

// podCreatedWithoutXvrd takes the xvr-node DaemonSet off the node (a
// nodeSelector no Node matches), creates a pod on vn-left-1 whose
// sandbox kubelet cannot network (the plugin's ADD fails with CNI code 11:
// xvrd unreachable) and checks nothing of the failed attempts stays (no
// veth, no InstanceIP); with the DaemonSet back, kubelet's retried ADD
// gives the pod its interfaces within lateAppBound and app reaches it.
func (rn *realNode) podCreatedWithoutXvrd(t testing.TB, app, name string) {
	t.Helper()
	veths := len(rn.podVeths(t))
	rn.mustKubectl(t, "-n", "kube-system", "patch", "daemonset", "xvr-node", "--type=strategic",
		"-p", `{"spec":{"template":{"spec":{"nodeSelector":{"`+awayLabel+`":"true"}}}}}`)
	waitFor(t, "no xvr-node pod", 60*time.Second, func() (bool, error) {
		var l corev1.PodList
		if err := rn.c.List(context.Background(), &l, client.InNamespace("kube-system"),
			client.MatchingLabels{"app.kubernetes.io/name": "xvr-node"}); err != nil {
			return false, err
		}
		return len(l.Items) == 0, fmt.Errorf("pods %s", podSummary(l.Items))
	})
	rn.createApp(t, name, `[{"name":"vn-left-1"}]`, false)
	var msg string
	waitFor(t, "kubelet's ADD for "+name+" failed", 30*time.Second, func() (bool, error) {
		var l corev1.EventList
		if err := rn.c.List(context.Background(), &l, client.InNamespace("default")); err != nil {
			return false, err
		}
		for _, e := range l.Items {
			if e.InvolvedObject.Name == name && e.Reason == "FailedCreatePodSandBox" {
				msg = e.Message
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(l.Items))
	})
	t.Logf("pod %s without xvrd: %s", name, msg)
	if !strings.Contains(msg, "cannot reach xvrd") { // cni.errors: code 11, try again later
		t.Errorf("pod %s without xvrd: sandbox failed with %q, want xvrd unreachable", name, msg)
	}
	if p := rn.pod(t, name); podReady(p) || p.Status.PodIP != "" {
		t.Errorf("pod %s without xvrd: ready %v, IP %q", name, podReady(p), p.Status.PodIP)
	}
	if now := rn.podVeths(t); len(now) != veths {
		t.Errorf("%d pod veths after the failed ADDs, %d before: %v", len(now), veths, now)
	}
	var xips v1alpha1.InstanceIPList
	if err := rn.c.List(context.Background(), &xips); err != nil {
		t.Fatal(err)
	}
	for _, x := range xips.Items {
		if x.Spec.Pod != nil && x.Spec.Pod.Name == name {
			t.Errorf("InstanceIP %s of a failed ADD", x.Name)
		}
	}
	start := time.Now()
	rn.mustKubectl(t, "-n", "kube-system", "patch", "daemonset", "xvr-node", "--type=strategic",
		"-p", `{"spec":{"template":{"spec":{"nodeSelector":{"`+awayLabel+`":null}}}}}`)
	rn.waitDaemonPod(t, "")
	back := time.Since(start)
	rn.waitReady(t, name, lateAppBound)
	ready := time.Since(start)
	rn.checkExecAddr(t, name, "default/vn-left-1")
	rn.waitPing(t, app+" -> "+name, app, rn.netIP(t, name, "eth1"), 10*time.Second)
	t.Logf("xvr-node back: Ready after %v, %s Ready after %v", back.Round(time.Millisecond), name, ready.Round(time.Millisecond))
}
