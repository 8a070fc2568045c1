package crds_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/crds"
	"github.com/xvr-project/xvr/kube/kubetest"
	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

func newClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := mnp.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func getCRD(ctx context.Context, t *testing.T, c client.Client, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
		t.Fatalf("reading CRD %s: %v", name, err)
	}
	return &crd
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// TestEnsure: on an API server without them, Ensure creates every CRD
// and returns once they are established; a second call changes nothing; an
// xvr CRD that drifted is put back; a NAD CRD is never rewritten.
func TestEnsure(t *testing.T) {
	env := kubetest.Require(t)
	ctx := testContext(t)
	c := newClient(t, env.Config)
	for _, want := range crds.All() {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &crd); !apierrors.IsNotFound(err) {
			t.Fatalf("CRD %s before Ensure: %v, want not found", want.Name, err)
		}
	}
	if err := crds.Ensure(ctx, c); err != nil {
		t.Fatal(err)
	}
	generations := map[string]int64{}
	for _, want := range crds.All() {
		crd := getCRD(ctx, t, c, want.Name)
		if !established(crd) {
			t.Errorf("CRD %s is not established after Ensure", want.Name)
		}
		if want.Name != crds.NADName && !equality.Semantic.DeepEqual(crd.Spec, want.Spec) {
			t.Errorf("CRD %s as stored differs from its definition", want.Name)
		}
		generations[want.Name] = crd.Generation
	}
	if err := crds.Ensure(ctx, c); err != nil {
		t.Fatal(err)
	}
	for name, gen := range generations {
		if got := getCRD(ctx, t, c, name).Generation; got != gen {
			t.Errorf("second Ensure rewrote %s (generation %d -> %d)", name, gen, got)
		}
	}
	vn := getCRD(ctx, t, c, crds.VirtualNetworkName)
	vn.Spec.Versions[0].AdditionalPrinterColumns = nil
	if err := c.Update(ctx, vn); err != nil {
		t.Fatal(err)
	}
	if err := crds.Ensure(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := getCRD(ctx, t, c, crds.VirtualNetworkName); !equality.Semantic.DeepEqual(got.Spec, crds.VirtualNetwork().Spec) {
		t.Errorf("Ensure did not restore the VirtualNetwork CRD: printer columns %+v", got.Spec.Versions[0].AdditionalPrinterColumns)
	}
	t.Run("schemas", func(t *testing.T) { testSchemas(ctx, t, c) })
}

// testSchemas: objects with every field set survive the OpenAPI schemas
// (nothing pruned), and the status subresource takes the status.
func testSchemas(ctx context.Context, t *testing.T, c client.Client) {
	vn := &v1alpha1.VirtualNetwork{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "schema-vn"},
		Spec: v1alpha1.VirtualNetworkSpec{VNName: "k8s-schema-vn-pod-network", Project: "k8s-default", CIDR: "198.18.10.0/24",
			FabricForwarding: true, FabricSNAT: true, CNIType: "xvr", VNI: 1<<24 - 1,
			Ref: &v1alpha1.NetworkRef{Domain: "default-domain", Project: "k8s-default", Name: "k8s-x-pod-network"}},
	}
	if err := c.Create(ctx, vn); err != nil {
		t.Fatal(err)
	}
	vn.Status = v1alpha1.VirtualNetworkStatus{ObservedGeneration: 1, Interfaces: 3, Conditions: []metav1.Condition{{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Resolved", Message: "m",
		LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second)), ObservedGeneration: 1}}}
	if err := c.Status().Update(ctx, vn); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.VirtualNetwork
	if err := c.Get(ctx, client.ObjectKeyFromObject(vn), &got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Spec, vn.Spec) || !equality.Semantic.DeepEqual(got.Status, vn.Status) {
		t.Errorf("VirtualNetwork read back = %+v %+v, want %+v %+v", got.Spec, got.Status, vn.Spec, vn.Status)
	}
	vn.Spec.VNI = 1 << 24
	if err := c.Update(ctx, vn); !apierrors.IsInvalid(err) {
		t.Errorf("VNI 2^24: %v, want invalid", err)
	}
	iip := &v1alpha1.InstanceIP{
		ObjectMeta: metav1.ObjectMeta{Name: "default.schema-vn.198.18.10.1"},
		Spec: v1alpha1.InstanceIPSpec{Network: "default/schema-vn", Attachment: "other/alias", IP: "198.18.10.1",
			MAC: "02:00:00:00:00:01", Node: "n1", NodeIP: "198.18.0.1", Label: 17, Port: "c1/eth1",
			Pod: &v1alpha1.PodRef{Namespace: "default", Name: "p", UID: "u"}},
	}
	if err := c.Create(ctx, iip); err != nil {
		t.Fatal(err)
	}
	testMNPSchema(ctx, t, c)
	var gotIIP v1alpha1.InstanceIP
	if err := c.Get(ctx, client.ObjectKeyFromObject(iip), &gotIIP); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(gotIIP.Spec, iip.Spec) {
		t.Errorf("InstanceIP read back = %+v, want %+v", gotIIP.Spec, iip.Spec)
	}
}

// TestEnsureLeavesForeignNAD: a NAD CRD another CNI installed (here with a
// description upstream's lacks) is left exactly as it is.
func TestEnsureLeavesForeignNAD(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a kube-apiserver")
	}
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := testContext(t)
	c := newClient(t, env.Config)
	foreign := crds.NAD()
	foreign.Spec.Versions[0].Schema.OpenAPIV3Schema.Description = "installed by another CNI"
	if err := c.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	gen := foreign.Generation
	if err := crds.Ensure(ctx, c); err != nil {
		t.Fatal(err)
	}
	got := getCRD(ctx, t, c, crds.NADName)
	if got.Generation != gen || got.Spec.Versions[0].Schema.OpenAPIV3Schema.Description != "installed by another CNI" {
		t.Errorf("Ensure rewrote the existing NAD CRD (generation %d -> %d)", gen, got.Generation)
	}
	for _, name := range []string{crds.VirtualNetworkName, crds.InstanceIPName} {
		if !established(getCRD(ctx, t, c, name)) {
			t.Errorf("CRD %s not established", name)
		}
	}
}

// testMNPSchema: a MultiNetworkPolicy with every field (and v1beta1's
// JSON) survives the CRD as written.
func testMNPSchema(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	tcp, end := corev1.ProtocolSCTP, int32(90)
	p80, named := intstr.FromInt32(80), intstr.FromString("http")
	p := &mnp.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "schema-mnp", Annotations: map[string]string{mnp.PolicyForAnnotation: "net1"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress", "Unknown"},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "198.18.0.0/16", Except: []string{"198.18.1.0/24"}}},
					{PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "In", Values: []string{"v"}}}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80, EndPort: &end}, {Port: &named}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}}}}},
		},
	}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var got mnp.MultiNetworkPolicy
	if err := c.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Spec, p.Spec) {
		t.Errorf("MultiNetworkPolicy read back = %+v, want %+v", got.Spec, p.Spec)
	}
}
