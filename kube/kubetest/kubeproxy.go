package kubetest

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// The kube-proxy modes KubeProxyConfig.Mode takes.
const (
	ProxyModeIPTables = "iptables"
	ProxyModeNFTables = "nftables"
)

// KubeProxyConfig is what KubeProxyArgs writes into a
// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) for a
// kube-proxy that runs inside a node's network namespace.
type KubeProxyConfig struct {
	// Mode is ProxyModeIPTables (default) or ProxyModeNFTables.
	Mode string
	// NodeName is the Node kube-proxy serves (hostnameOverride). Required.
	NodeName string
	// NodeIP is the node's primary address (bindAddress). Required. The
	// Node should also list it in status.addresses (as InternalIP, as
	// kubelet would): kube-proxy reads the Node's addresses at start and
	// waits about 30s for them when there are none.
	NodeIP string
	// ClusterCIDR is the pods' range (clusterCIDR): traffic from outside
	// it to a ClusterIP is masqueraded. Required.
	ClusterCIDR string
	// Kubeconfig is the kubeconfig kube-proxy uses; it must reach the API
	// server from inside the namespace (Env.Kubeconfig does when the test
	// forwards 127.0.0.1:SecurePort into it, nettest's NS.ForwardTCP).
	// Required.
	Kubeconfig string
	// HealthzAddr and MetricsAddr are where kube-proxy serves /healthz and
	// /metrics, inside the namespace. Default 127.0.0.1:10256 and
	// 127.0.0.1:10249.
	HealthzAddr, MetricsAddr string
}

// kubeProxyConfiguration is the part of KubeProxyConfiguration that
// KubeProxyArgs sets (kube-proxy defaults the rest).
type kubeProxyConfiguration struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Mode               string `json:"mode"`
	HostnameOverride   string `json:"hostnameOverride"`
	BindAddress        string `json:"bindAddress"`
	ClusterCIDR        string `json:"clusterCIDR"`
	DetectLocalMode    string `json:"detectLocalMode"`
	HealthzBindAddress string `json:"healthzBindAddress"`
	MetricsBindAddress string `json:"metricsBindAddress"`
	// OOMScoreAdj 0: kube-proxy's default -999 needs CAP_SYS_RESOURCE,
	// which root does not have on every test machine.
	OOMScoreAdj      int32 `json:"oomScoreAdj"`
	ClientConnection struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"clientConnection"`
	// Conntrack all zero: leave the kernel's conntrack settings alone.
	// nf_conntrack_max is global (not writable from a network namespace)
	// and the timeouts would change the whole test machine's.
	Conntrack struct {
		MaxPerCore            int32  `json:"maxPerCore"`
		Min                   int32  `json:"min"`
		TCPEstablishedTimeout string `json:"tcpEstablishedTimeout"`
		TCPCloseWaitTimeout   string `json:"tcpCloseWaitTimeout"`
	} `json:"conntrack"`
	IPTables syncPeriods `json:"iptables"`
	NFTables syncPeriods `json:"nftables"`
}

// syncPeriods: kube-proxy applies a change within minSyncPeriod and
// resyncs everything every syncPeriod.
type syncPeriods struct {
	SyncPeriod    string `json:"syncPeriod"`
	MinSyncPeriod string `json:"minSyncPeriod"`
}

// KubeProxyArgs validates c, writes its KubeProxyConfiguration to
// dir/kube-proxy.yaml and returns the argv that runs the real kube-proxy
// with it. The caller runs the argv inside the node's namespace (nettest's
// NS.Start) and kills it at cleanup.
func KubeProxyArgs(dir string, c KubeProxyConfig) ([]string, error) {
	if c.Mode == "" {
		c.Mode = ProxyModeIPTables
	}
	if c.Mode != ProxyModeIPTables && c.Mode != ProxyModeNFTables {
		return nil, fmt.Errorf("kubetest: kube-proxy mode %q: want %s or %s", c.Mode, ProxyModeIPTables, ProxyModeNFTables)
	}
	for _, f := range []struct{ name, v string }{
		{"NodeName", c.NodeName}, {"NodeIP", c.NodeIP}, {"ClusterCIDR", c.ClusterCIDR}, {"Kubeconfig", c.Kubeconfig},
	} {
		if f.v == "" {
			return nil, fmt.Errorf("kubetest: kube-proxy config: %s is required", f.name)
		}
	}
	cfg := kubeProxyConfiguration{
		APIVersion:         "kubeproxy.config.k8s.io/v1alpha1",
		Kind:               "KubeProxyConfiguration",
		Mode:               c.Mode,
		HostnameOverride:   c.NodeName,
		BindAddress:        c.NodeIP,
		ClusterCIDR:        c.ClusterCIDR,
		DetectLocalMode:    "ClusterCIDR",
		HealthzBindAddress: orDefault(c.HealthzAddr, "127.0.0.1:10256"),
		MetricsBindAddress: orDefault(c.MetricsAddr, "127.0.0.1:10249"),
	}
	cfg.ClientConnection.Kubeconfig = c.Kubeconfig
	cfg.Conntrack.TCPEstablishedTimeout = "0s"
	cfg.Conntrack.TCPCloseWaitTimeout = "0s"
	cfg.IPTables = syncPeriods{SyncPeriod: "10s", MinSyncPeriod: "1s"}
	cfg.NFTables = cfg.IPTables
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubetest: encoding the kube-proxy config: %w", err)
	}
	path := filepath.Join(dir, "kube-proxy.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	bin := binPath("kube-proxy")
	if err := needBinary(bin); err != nil {
		return nil, err
	}
	return []string{bin, "--config=" + path, "--v=2"}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
