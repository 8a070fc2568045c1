package cni

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
)

// MTU bounds accepted in the config; 0 means DefaultMTU.
const (
	DefaultMTU = 1500
	MinMTU     = 576
	MaxMTU     = 9000
)

// Config is the plugin's entry in the node's CNI conflist, e.g.
//
//	{"type":"xvr","socket":"/run/xvr/xvrd.sock","defaultNetwork":"default/cluster-wide-default","mtu":1500}
type Config struct {
	types.PluginConf
	// Socket is xvrd's local API socket (default api.DefaultSocket).
	Socket string `json:"socket,omitempty"`
	// DefaultNetwork is the network every pod gets as eth0, "namespace/name"
	// (default "default/cluster-wide-default").
	DefaultNetwork string `json:"defaultNetwork,omitempty"`
	// HostNetns is the network namespace (a path) where the host ends of the
	// veths are created; default the plugin's own. It lets xvrd run inside a
	// namespace (tests, demo).
	HostNetns string `json:"hostNetns,omitempty"`
	// MTU of both ends of every veth. Unset: xvrd's pod MTU (the fabric's
	// less the encapsulation overhead) when it has a fabric, else 1500.
	MTU int `json:"mtu,omitempty"`
}

// ParseConfig decodes stdin, applies defaults, then validates. Errors are
// *types.Error with code 7 (invalid network config).
func ParseConfig(stdin []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, invalidConfig("decoding config: %v", err)
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	if c.DefaultNetwork == "" {
		c.DefaultNetwork = "default/" + api.DefaultNetworkName
	}

}

func (c *Config) validate() error {
	if !filepath.IsAbs(c.Socket) {
		return invalidConfig("socket %s: not an absolute path", echo(c.Socket))
	}
	if c.HostNetns != "" && !filepath.IsAbs(c.HostNetns) {
		return invalidConfig("hostNetns %s: not an absolute path", echo(c.HostNetns))
	}
	if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU) {
		return invalidConfig("mtu %d: outside %d..%d", c.MTU, MinMTU, MaxMTU)
	}
	ns, name, ok := strings.Cut(c.DefaultNetwork, "/")
	if !ok || !isDNSLabel(ns) || !isDNSSubdomain(name) {
		return invalidConfig("defaultNetwork %s: want namespace/name (DNS-1123)", echo(c.DefaultNetwork))
	}
	return nil
}

func invalidConfig(format string, args ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, clip("invalid xvr config: "+fmt.Sprintf(format, args...), maxMsg), "")
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// isDNSLabel reports whether s is a DNS-1123 label (a Kubernetes namespace).
func isDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// isDNSSubdomain reports whether s is a DNS-1123 subdomain (a NAD's name).
func isDNSSubdomain(s string) bool { return len(s) <= 253 && dnsSubdomain.MatchString(s) }
