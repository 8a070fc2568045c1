package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/kube/kubetest"
)

// realNodeDefaultCIDR is the cluster default network of deploy/kubernetes
// (controller.yaml's -default-cidr): kube-proxy's clusterCIDR.
const realNodeDefaultCIDR = "198.19.0.0/16"

// realNodeDNS is CoreDNS as a node's cluster runs it: a Deployment
// (xvr.local/coredns, scripts/images.sh) with its Corefile in a ConfigMap,
// its ServiceAccount and RBAC, behind the kube-dns Service at kubeDNSIP
// (kubelet's clusterDNS). It runs on the node's network (hostNetwork) and
// reaches the API server in-cluster, as xvr-node does, at the node's
// 127.0.0.1 (%[1]d: the API server's port). rn-app is a Service in front of
// the test-app pods (app=rn-test-app).
const realNodeDNS = `apiVersion: v1
kind: ServiceAccount
metadata: {name: xvr-rn-coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: xvr-rn-coredns}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: xvr-rn-coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: xvr-rn-coredns}
subjects: [{kind: ServiceAccount, name: xvr-rn-coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: xvr-rn-coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health 127.0.0.1:18080
        ready 0.0.0.0:18181
        kubernetes %[2]s in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: xvr-rn-coredns, namespace: kube-system}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: xvr-rn-coredns
      hostNetwork: true
      dnsPolicy: Default
      terminationGracePeriodSeconds: 0
      containers:
        - name: coredns
          image: xvr.local/coredns:%[3]s
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          env:
            - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
            - {name: KUBERNETES_SERVICE_PORT, value: "%[1]d"}
          readinessProbe:
            httpGet: {path: /ready, port: 18181}
            periodSeconds: 1
          volumeMounts: [{name: corefile, mountPath: /etc/coredns}]
      volumes: [{name: corefile, configMap: {name: xvr-rn-coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  clusterIP: %[4]s
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, protocol: UDP, port: 53, targetPort: 53}
    - {name: dns-tcp, protocol: TCP, port: 53, targetPort: 53}
---
apiVersion: v1
kind: Service
metadata: {name: rn-app, namespace: default}
spec:
  selector: {app: rn-test-app}
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
`

// dns runs kube-proxy (iptables) in the node's namespace and CoreDNS
// (realNodeDNS), then has app GET http://rn-app/ by name (its resolv.conf:
// kubelet's clusterDNS and search path) and checks a test-app pod answers.
func (rn *realNode) dns(t testing.TB, app string, backends ...string) {
	t.Helper()
	start := time.Now()
	args, err := kubetest.KubeProxyArgs(t.TempDir(), kubetest.KubeProxyConfig{NodeName: rn.name, NodeIP: rn.ip,
		ClusterCIDR: realNodeDefaultCIDR, Kubeconfig: rn.env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	proxy := rn.ns.Start(t, args...)
	manifest := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(realNodeDNS, rn.env.SecurePort, kubetest.ClusterDomain, imageTag, kubeDNSIP)), 0o644); err != nil {
		t.Fatal(err)
	}
	rn.mustKubectl(t, "apply", "-f", manifest)
	t.Cleanup(func() { _, _ = rn.kubectl(t, "delete", "-f", manifest, "--wait=false") })
	if _, err := rn.kubectl(t, "-n", "kube-system", "rollout", "status", "deployment/xvr-rn-coredns", "--timeout=60s"); err != nil {
		out, _ := rn.kubectl(t, "-n", "kube-system", "describe", "pods", "-l", "k8s-app=kube-dns")
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "kube-proxy programs kube-dns and rn-app", 60*time.Second, func() (bool, error) {
		out, _ := rn.ns.Try("iptables-save", "-t", "nat")
		return strings.Contains(out, kubeDNSIP) && strings.Contains(out, "default/rn-app"),
			fmt.Errorf("not yet; kube-proxy log:\n%s", tail(proxy.Output(), 1500))
	})
	var got string
	waitFor(t, app+" GET http://rn-app/ by name", 30*time.Second, func() (bool, error) {
		out, err := rn.kubectl(t, "exec", app, "--", "/test-app", "get", "http://rn-app/")
		got = strings.TrimSpace(out)
		return err == nil, err
	})
	if !slices.Contains(backends, got) {
		t.Errorf("http://rn-app/ from %s answered %q, want one of %v", app, got, backends)
	}
	t.Logf("kube-proxy and CoreDNS up, %s -> rn-app by name (%s answered) after %v", app, got, time.Since(start).Round(time.Millisecond))
}
