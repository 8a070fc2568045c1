package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/controller"
	"github.com/xvr-project/xvr/kube/crds"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

var deployDir = filepath.Join("..", "..", "deploy")

func TestFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "xvr-system")
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.cluster != "k8s" || o.defaultCIDR.String() != "198.19.0.0/16" || !o.leaderElect || o.leaseNamespace != "xvr-system" || !o.networkPolicy {
		t.Errorf("defaults = %+v", o)
	}
	for _, bad := range [][]string{{"-default-cidr", "198.19.0.0"}, {"-log-level", "loud"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestPrintCRDs(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-print-crds"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "crds.yaml"))
	if err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Errorf("-print-crds differs from deploy/kubernetes/crds.yaml (%v)", err)
	}
}

// decodeManifest strictly decodes every document of a file in
// deploy/kubernetes (an unknown or misspelt field fails).
func decodeManifest(t *testing.T, name string) []runtime.Object {
	t.Helper()
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.DecodeManifest(scheme, filepath.Join(deployDir, "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]runtime.Object, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}

// TestManifests: the manifests decode strictly, the controller's arguments
// are flags it has, and the CNI config the DaemonSet installs is
// deploy/10-xvr.conflist.
func TestManifests(t *testing.T) {
	for _, name := range []string{"config.yaml", "crds.yaml", "rbac.yaml", "node.yaml", "controller.yaml"} {
		if objs := decodeManifest(t, name); len(objs) == 0 {
			t.Errorf("%s holds no objects", name)
		}
	}
	for _, obj := range decodeManifest(t, "controller.yaml") {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		if _, err := parseFlags(d.Spec.Template.Spec.Containers[0].Args, &bytes.Buffer{}); err != nil {
			t.Errorf("controller.yaml args: %v", err)
		}
	}
	want, err := os.ReadFile(filepath.Join(deployDir, "10-xvr.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range decodeManifest(t, "node.yaml") {
		if cm, ok := obj.(*corev1.ConfigMap); ok && !jsonEqual(t, cm.Data["10-xvr.conflist"], string(want)) {
			t.Errorf("node.yaml's 10-xvr.conflist differs from deploy/10-xvr.conflist")
		}
	}
}

// TestBinary runs the real binary against a fresh API server, as the
// ServiceAccount of deploy/kubernetes/rbac.yaml with a kubeconfig file: it
// creates the CRDs, becomes the leader, turns a NAD into a VN, collects an
// orphaned InstanceIP, releases a deleted NAD, answers /readyz, and stops
// cleanly on SIGTERM, releasing the Lease.
func TestBinary(t *testing.T) {
	env := kubetest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := adminClient(t, env)
	for _, crd := range crds.All() {
		if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); !apierrors.IsNotFound(err) {
			t.Fatalf("CRD %s before the binary runs: %v, want none", crd.Name, err)
		}
	}
	for _, obj := range decodeManifest(t, "rbac.yaml") {
		if err := c.Create(ctx, obj.(client.Object)); err != nil {
			t.Fatalf("applying rbac.yaml: %v", err)
		}
	}
	kubeconfig := serviceAccountKubeconfig(ctx, t, c, env, "xvr-kube-manager")
	bin := build(ctx, t)
	health := freeAddr(t)
	p := startProcess(t, bin, "-kubeconfig", kubeconfig, "-health-addr", health, "-metrics-addr", "0")

	poll(ctx, t, "/readyz answers 200", func() bool { return httpOK("http://" + health + "/readyz") })
	vn := nadBecomesVN(ctx, t, c)
	leaseKey := client.ObjectKey{Namespace: "kube-system", Name: leaseName}
	if holder := leaseHolder(ctx, t, c, leaseKey); holder == "" {
		t.Fatalf("Lease %s is not held", leaseKey)
	}
	collectsOrphan(ctx, t, c, vn)
	computesPolicy(ctx, t, c)
	releasesNAD(ctx, t, c, vn)

	if err := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.logs.String(), `"msg":"xvr-kube-manager stopped"`) {
		t.Errorf("no clean stop in the log")
	}
	if strings.Contains(p.logs.String(), "forbidden") {
		t.Errorf("the ServiceAccount lacks a permission; the log says forbidden")
	}
	if holder := leaseHolder(ctx, t, c, leaseKey); holder != "" {
		t.Errorf("Lease after SIGTERM held by %q, want it released", holder)
	}
}

func nadBecomesVN(ctx context.Context, t *testing.T, c client.Client) *v1alpha1.VirtualNetwork {
	t.Helper()
	obj := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vn-left-1",
			Annotations: map[string]string{nad.AnnotationCIDR: "198.18.10.0/24"}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","type":"contrail-k8s-cni"}`},
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	var vn v1alpha1.VirtualNetwork
	poll(ctx, t, "the NAD becomes a Ready VN", func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(obj), &vn) == nil &&
			meta.IsStatusConditionTrue(vn.Status.Conditions, v1alpha1.ConditionReady)
	})
	if vn.Spec.VNName != "k8s-vn-left-1-pod-network" || vn.Spec.Project != "k8s-default" || vn.Spec.VNI == 0 {
		t.Errorf("VN = %+v", vn.Spec)
	}
	return &vn
}

// collectsOrphan: an InstanceIP on a node that does not exist is deleted.
func collectsOrphan(ctx context.Context, t *testing.T, c client.Client, vn *v1alpha1.VirtualNetwork) {
	t.Helper()
	iip := &v1alpha1.InstanceIP{
		ObjectMeta: metav1.ObjectMeta{Name: strings.Replace(vn.Key(), "/", ".", 1) + ".198.18.10.1"},
		Spec:       v1alpha1.InstanceIPSpec{Network: vn.Key(), Attachment: vn.Key(), IP: "198.18.10.1", Node: "gone", Port: "c/eth1"},
	}
	if err := c.Create(ctx, iip); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the InstanceIP of a missing node is collected", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(iip), iip))
	})
}

// computesPolicy: a node gets its NodePolicy with its pod's interface
// isolated by a NetworkPolicy; a MultiNetworkPolicy naming a missing NAD
// gets Enforced=False in its status annotation (the RBAC covers reading
// policies, pods and namespaces, writing NodePolicies and patching
// policies).
func computesPolicy(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "policy-node"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "policed", Labels: map[string]string{"app": "p"}},
		Spec:       corev1.PodSpec{NodeName: node.Name, Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause"}}},
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "deny"}}
	multi := &mnp.MultiNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "multi",
		Annotations: map[string]string{mnp.PolicyForAnnotation: "missing"}}}
	for _, obj := range []client.Object{node, pod, np, multi} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	poll(ctx, t, "the node's NodePolicy isolates the pod", func() bool {
		var got v1alpha1.NodePolicy
		if c.Get(ctx, client.ObjectKeyFromObject(node), &got) != nil || len(got.Spec.Interfaces) != 1 {
			return false
		}
		e := got.Spec.Interfaces[0]
		return e.Pod.Name == pod.Name && e.Network == "default/cluster-wide-default" && e.Policy.Ingress && !e.Policy.Egress
	})
	poll(ctx, t, "the MultiNetworkPolicy says it is not enforced", func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(multi), multi) == nil &&
			strings.Contains(multi.Annotations[controller.AnnotationPolicyStatus], `"status":"False"`)
	})
}

// releasesNAD: a deleted NAD loses its VN and then its finalizer.
func releasesNAD(ctx context.Context, t *testing.T, c client.Client, vn *v1alpha1.VirtualNetwork) {
	t.Helper()
	obj := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: vn.Namespace, Name: vn.Name}}
	if err := c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the deleted NAD and its VN are gone", func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)) &&
			apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(vn), vn))
	})
}

func adminClient(t *testing.T, env *kubetest.Env) client.Client {
	t.Helper()
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serviceAccountKubeconfig writes a kubeconfig for a ServiceAccount of
// kube-system with a token from the TokenRequest API.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, c client.Client, env *kubetest.Env, sa string) string {
	t.Helper()
	path, err := env.ServiceAccountKubeconfig(ctx, c, t.TempDir(), "kube-system", sa)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func leaseHolder(ctx context.Context, t *testing.T, c client.Client, key client.ObjectKey) string {
	t.Helper()
	var lease coordinationv1.Lease
	if err := c.Get(ctx, key, &lease); err != nil {
		t.Fatalf("Lease %s: %v", key, err)
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func build(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xvr-kube-manager")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is the binary running; its output goes to logs, shown if the
// test fails.
type process struct {
	cmd    *exec.Cmd
	logs   syncBuffer
	exited chan error
	done   bool
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "POD_NAMESPACE=", "KUBECONFIG=")
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.done {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("xvr-kube-manager output:\n%s", p.logs.String())
		}
	})
	return p
}

// stop signals the process and waits for a clean exit.
func (p *process) stop(sig os.Signal, timeout time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case err := <-p.exited:
		p.done = true
		if err != nil {
			return fmt.Errorf("exit after %v: %w", sig, err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running %v after %v", timeout, sig)
	}
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func poll(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr is a 127.0.0.1 address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

func ptr[T any](v T) *T { return &v }
