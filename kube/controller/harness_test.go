package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xvr-project/xvr/kube/crds"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

func TestMain(m *testing.M) {
	kubetest.Main(m, func() {
		if stopManager != nil {
			stopManager()
			<-managerDone
		}
	})
}

// testDefaultCIDR is the default network the in-process controller owns.
var testDefaultCIDR = netip.MustParsePrefix("198.19.0.0/16")

// The in-process controller, shared by the package's tests (each works in
// namespaces of its own).
var (
	managerOnce sync.Once
	managerErr  error
	stopManager context.CancelFunc
	managerDone chan struct{}
	direct      client.Client // uncached: what the tests see
	outcomes    = &observer{seen: map[string]int{}}
)

// observer counts the reconcilers' outcomes per controller, key and outcome.
type observer struct {
	mu   sync.Mutex
	seen map[string]int
}

func (o *observer) record(controller, key, outcome string) {
	o.mu.Lock()
	o.seen[controller+" "+key+" "+outcome]++
	o.mu.Unlock()
}

func (o *observer) count(controller, key, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[controller+" "+key+" "+outcome]
}

// start returns a client of the shared API server on which the controller
// runs. The retry interval is far longer than any test, so what a test sees
// is the work of watch events, not of retries.
func start(t *testing.T) client.Client {
	t.Helper()
	env := kubetest.Require(t)
	managerOnce.Do(func() { managerErr = startManager(env) })
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return direct
}

func startManager(env *kubetest.Env) error {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	if direct, err = client.New(env.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := crds.Ensure(ctx, direct); err != nil {
		cancel()
		return err
	}
	mgr, err := manager.New(env.Config, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		cancel()
		return err
	}
	opts := Options{DefaultCIDR: testDefaultCIDR, RetryInterval: time.Hour, observe: outcomes.record}
	if err := Setup(mgr, opts); err != nil {
		cancel()
		return err
	}
	stopManager, managerDone = cancel, make(chan struct{})
	go func() {
		defer close(managerDone)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitTimeout bounds every wait for the controller.
const waitTimeout = 30 * time.Second

// eventually polls cond until it holds, failing the test with what the
// last poll said.
func eventually(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		ok, msg := cond()
		last = msg
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v; last: %s", what, err, last)
	}
}

// namespace creates a namespace with a unique name.
func namespace(ctx context.Context, t *testing.T, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

const (
	xvrConfig      = `{"cniVersion":"1.0.0","type":"xvr"}`
	contrailConfig = `{"cniVersion":"0.3.1","name":"contrail","type":"contrail-k8s-cni"}`
)

func createNAD(ctx context.Context, t *testing.T, c client.Client, ns, name, config string, ann map[string]string) *nadv1.NetworkAttachmentDefinition {
	t.Helper()
	obj := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func cidr(s string) map[string]string { return map[string]string{nad.AnnotationCIDR: s} }

func ref(project, vn string) map[string]string {
	return map[string]string{nad.AnnotationNetwork: fmt.Sprintf(`{"domain":"default-domain","project":%q,"name":%q}`, project, vn)}
}

// updateNAD changes a NAD with retries on conflicts.
func updateNAD(ctx context.Context, t *testing.T, c client.Client, key types.NamespacedName, change func(*nadv1.NetworkAttachmentDefinition)) {
	t.Helper()
	eventually(ctx, t, "updating NAD "+key.String(), func() (bool, string) {
		var obj nadv1.NetworkAttachmentDefinition
		if err := c.Get(ctx, key, &obj); err != nil {
			return false, err.Error()
		}
		change(&obj)
		if err := c.Update(ctx, &obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// waitVN waits until the VN key exists and cond holds for it.
func waitVN(ctx context.Context, t *testing.T, c client.Client, key types.NamespacedName, cond func(*v1alpha1.VirtualNetwork) (bool, string)) *v1alpha1.VirtualNetwork {
	t.Helper()
	var vn v1alpha1.VirtualNetwork
	eventually(ctx, t, "VirtualNetwork "+key.String(), func() (bool, string) {
		if err := c.Get(ctx, key, &vn); err != nil {
			return false, err.Error()
		}
		return cond(&vn)
	})
	return &vn
}

// readyIs is a waitVN condition: Ready has that status and reason.
func readyIs(status metav1.ConditionStatus, reason string) func(*v1alpha1.VirtualNetwork) (bool, string) {
	return conditionIs(v1alpha1.ConditionReady, status, reason)
}

func conditionIs(typ string, status metav1.ConditionStatus, reason string) func(*v1alpha1.VirtualNetwork) (bool, string) {
	return func(vn *v1alpha1.VirtualNetwork) (bool, string) {
		c := meta.FindStatusCondition(vn.Status.Conditions, typ)
		if c == nil {
			return false, "no " + typ + " condition"
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == vn.Generation,
			fmt.Sprintf("%s=%s %s (generation %d of %d): %s", typ, c.Status, c.Reason, c.ObservedGeneration, vn.Generation, c.Message)
	}
}

// waitGone waits until obj no longer exists.
func waitGone(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	eventually(ctx, t, fmt.Sprintf("%T %s gone", obj, key), func() (bool, string) {
		err := c.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("still there (err %v, deletionTimestamp %v, finalizers %v)", err, obj.GetDeletionTimestamp(), obj.GetFinalizers())
	})
}

// waitEvent waits for an Event of that type and reason on the object
// named involved in ns whose message contains every one of contains, and
// returns it.
func waitEvent(ctx context.Context, t *testing.T, c client.Client, ns, involved, typ, reason string, contains ...string) corev1.Event {
	t.Helper()
	var found corev1.Event
	eventually(ctx, t, fmt.Sprintf("%s Event %s on %s/%s", typ, reason, ns, involved), func() (bool, string) {
		var list corev1.EventList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name != involved {
				continue
			}
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
			if e.Type == typ && e.Reason == reason && containsAll(e.Message, contains) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("events: %q", seen)
	})
	return found
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// waitOutcome waits until controller has reported outcome for key more
// than after times.
func waitOutcome(ctx context.Context, t *testing.T, controller, key, outcome string, after int) {
	t.Helper()
	eventually(ctx, t, fmt.Sprintf("%s: %s %s", controller, key, outcome), func() (bool, string) {
		n := outcomes.count(controller, key, outcome)
		return n > after, fmt.Sprintf("%d times", n)
	})
}

func createNode(ctx context.Context, t *testing.T, c client.Client, name string) *corev1.Node {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	return node
}

func createPod(ctx context.Context, t *testing.T, c client.Client, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// createIIP claims ip in network for a pod (nil: a hand-made port) on
// node, as a node agent would.
func createIIP(ctx context.Context, t *testing.T, c client.Client, network, attachment, ip, node string, pod *corev1.Pod) *v1alpha1.InstanceIP {
	t.Helper()
	addr := netip.MustParseAddr(ip)
	iip := &v1alpha1.InstanceIP{
		ObjectMeta: metav1.ObjectMeta{
			Name:   v1alpha1.InstanceIPName(network, addr),
			Labels: map[string]string{v1alpha1.LabelNetwork: v1alpha1.NetworkLabel(network), v1alpha1.LabelNode: node},
		},
		Spec: v1alpha1.InstanceIPSpec{Network: network, Attachment: attachment, IP: ip, Node: node, Port: "c0/eth1"},
	}
	if pod != nil {
		iip.Spec.Pod = &v1alpha1.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
		iip.Labels[v1alpha1.LabelPodUID] = string(pod.UID)
	}
	if err := c.Create(ctx, iip); err != nil {
		t.Fatal(err)
	}
	return iip
}

func deleteObj(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Delete(ctx, obj, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
}

func vnKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}
