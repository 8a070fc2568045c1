package kubetest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// CoreDNSConfig is what CoreDNSArgs writes into a Corefile for a CoreDNS
// that serves the cluster's names from the API server.
type CoreDNSConfig struct {
	// Listen is the address DNS is served on (UDP and TCP), "IP:port".
	// Default 127.0.0.1:53.
	Listen string
	// Kubeconfig is the kubeconfig the kubernetes plugin uses; it must
	// reach the API server from where CoreDNS runs. Required.
	Kubeconfig string
	// HealthAddr and ReadyAddr are where the health (/health) and ready
	// (/ready: 200 once the kubernetes plugin has synced) plugins serve.
	// Default 127.0.0.1:8080 and 127.0.0.1:8181.
	HealthAddr, ReadyAddr string
	// Upstreams, if any, get every name outside the cluster (forward).
	// Without them such a query gets SERVFAIL: the tests have no upstream.
	Upstreams []string
	// Log logs every query (the log plugin).
	Log bool
}

// CoreDNSArgs validates c, writes its Corefile to dir/Corefile and returns
// the argv that runs the CoreDNS of scripts/kube-bins.sh with it: the
// kubernetes plugin answers for ClusterDomain and the reverse zones (pods
// insecure, short TTLs, so a test sees a change within seconds), with
// errors, health, ready, cache and loadbalance. The caller runs it (in a
// namespace with nettest's NS.Start, or beside the test with StartHost)
// and kills it at cleanup.
func CoreDNSArgs(dir string, c CoreDNSConfig) ([]string, error) {
	if c.Kubeconfig == "" {
		return nil, fmt.Errorf("kubetest: CoreDNS config: Kubeconfig is required")
	}
	host, port, err := net.SplitHostPort(orDefault(c.Listen, "127.0.0.1:53"))
	if err != nil {
		return nil, fmt.Errorf("kubetest: CoreDNS listen address: %w", err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("kubetest: CoreDNS listen address %q: want an IP", host)
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".:%s {\n", port)
	fmt.Fprintf(&b, "\tbind %s\n", host)
	b.WriteString("\terrors\n")
	if c.Log {
		b.WriteString("\tlog\n")
	}
	fmt.Fprintf(&b, "\thealth %s\n", orDefault(c.HealthAddr, "127.0.0.1:8080"))
	fmt.Fprintf(&b, "\tready %s\n", orDefault(c.ReadyAddr, "127.0.0.1:8181"))
	fmt.Fprintf(&b, "\tkubernetes %s in-addr.arpa ip6.arpa {\n", ClusterDomain)
	fmt.Fprintf(&b, "\t\tkubeconfig %s\n", c.Kubeconfig)
	b.WriteString("\t\tpods insecure\n")
	b.WriteString("\t\tfallthrough in-addr.arpa ip6.arpa\n")
	b.WriteString("\t\tttl 5\n")
	b.WriteString("\t}\n")
	if len(c.Upstreams) > 0 {
		fmt.Fprintf(&b, "\tforward . %s\n", strings.Join(c.Upstreams, " "))
	}
	b.WriteString("\tcache 5\n")
	b.WriteString("\tloadbalance\n")
	b.WriteString("}\n")
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	bin := binPath("coredns")
	if err := needBinary(bin); err != nil {
		return nil, err
	}
	return []string{bin, "-conf", path}, nil
}
