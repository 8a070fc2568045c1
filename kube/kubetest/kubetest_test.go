package kubetest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) { Main(m, nil) }

// TestControlPlane creates and reads back an object through the admin
// config and through the kubeconfig file binaries get.
func TestControlPlane(t *testing.T) {
	e := Require(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest-smoke"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs2, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs2.CoreV1().Namespaces().Get(ctx, "kubetest-smoke", metav1.GetOptions{})
	if err != nil || got.UID != "" && got.Name != "kubetest-smoke" {
		t.Fatalf("reading through the kubeconfig: %+v %v", got, err)
	}
}
