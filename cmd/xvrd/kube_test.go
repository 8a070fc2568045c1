package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestConfig: standalone without either flag; -in-cluster and
// -kubeconfig exclude each other; -in-cluster outside a pod says what it
// misses; -kubeconfig reads the file.
func TestRestConfig(t *testing.T) {
	if rc, err := restConfig(options{}); rc != nil || err != nil {
		t.Errorf("no flags: %v, %v; want standalone", rc, err)
	}
	if _, err := restConfig(options{inCluster: true, kubecfg: "/x"}); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Errorf("both flags: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := restConfig(options{inCluster: true}); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("-in-cluster without the pod's environment: %v", err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://198.18.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, err := restConfig(options{kubecfg: kc}); err != nil || rc.Host != "https://198.18.0.1:6443" {
		t.Errorf("-kubeconfig: %+v, %v", rc, err)
	}
}
