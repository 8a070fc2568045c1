// Package nad turns Kubernetes NetworkAttachmentDefinition (NAD) objects
// (group k8s.cni.cncf.io, version v1) carrying Contrail's opencontrail.org/*
// annotations into the api.Network that xvrd serves, and holds the naming
// and gateway conventions of Tungsten Fabric (TF) that go with them.
//
// It is pure: no I/O beyond the reader given to Parse. Importers: cmd/xvrctl
// (apply -f), kube/controller (FromObject, Served, ContrailNames, VNI), and
// vrouter/agent (Gateway, ContrailNames).
//
// Parse validates everything it returns: a Network from Parse has a
// normalised IPv4 CIDR or a complete Ref. It does not fill the fields xvrd
// sets (VNName, Project, VRF, Gateway, DNS); ContrailNames and Gateway
// compute them.
package nad

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"regexp"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/xvr-project/xvr/vrouter/api"
)

// The annotations Contrail reads on a NAD.
const (
	AnnotationCIDR             = "opencontrail.org/cidr"
	AnnotationFabricForwarding = "opencontrail.org/ip_fabric_forwarding"
	AnnotationFabricSNAT       = "opencontrail.org/ip_fabric_snat"
	AnnotationNetwork          = "opencontrail.org/network"
	// AnnotationHostAccess ("true"/"false", xvr's own) lets the node's
	// kernel reach the VN's pods through the host interface, as it reaches
	// the cluster default network's; without it a secondary VN is not the
	// host's.
	AnnotationHostAccess = "xvr.io/host-access"
)

// The NAD's type and the CNI types xvr accepts in its spec.config.
const (
	APIVersion = "k8s.cni.cncf.io/v1"
	Kind       = "NetworkAttachmentDefinition"

	CNITypeXVR      = "xvr"
	CNITypeContrail = "contrail-k8s-cni"

	DefaultNamespace = "default"
	DefaultCluster   = "k8s"
)

// MaxPrefixLen is the longest VN prefix: a /29 holds the gateway, the DNS
// address and four pod addresses (a /30 would hold no pod at all).
const MaxPrefixLen = 29

// MinPrefixLen is the shortest VN prefix: a /8 is already 16 M addresses,
// anything shorter (0.0.0.0/0 above all) is a mistake, not a pod subnet.
const MinPrefixLen = 8

// Parse reads one or more YAML documents separated by "---" lines, each a
// NetworkAttachmentDefinition, and returns their networks in order. Empty
// documents are skipped. An error names the 1-based document number, the
// object and the field at fault; nothing is returned with an error.
func Parse(r io.Reader) ([]api.Network, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var nets []api.Network
	for doc := 1; ; doc++ {
		data, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nets, nil
		}
		if err != nil {
			return nil, fmt.Errorf("nad: document %d: %w", doc, err)
		}
		n, ok, err := parseDocument(data)
		if err != nil {
			return nil, fmt.Errorf("nad: document %d%s: %w", doc, n.describe(), err)
		}
		if ok {
			nets = append(nets, n.Network)
		}
	}
}

// parsed is a network being parsed, for error messages.
type parsed struct{ api.Network }

func (p parsed) describe() string {
	if p.Name == "" {
		return ""
	}
	return " (" + p.Namespace + "/" + p.Name + ")"
}

// parseDocument decodes one YAML document; ok is false for an empty one.
func parseDocument(data []byte) (p parsed, ok bool, err error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return p, false, fmt.Errorf("invalid YAML: %w", err)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
		return p, false, nil
	}
	var obj nadv1.NetworkAttachmentDefinition
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return p, false, fmt.Errorf("not a %s: %w", Kind, err)
	}
	p, err = fromObject(&obj)
	return p, true, err
}

// fromObject is FromObject for a document, which must also say what it is.
func fromObject(obj *nadv1.NetworkAttachmentDefinition) (parsed, error) {
	if obj.APIVersion != APIVersion || obj.Kind != Kind {
		p := parsed{api.Network{Namespace: obj.Namespace, Name: obj.Name}}
		if p.Namespace == "" {
			p.Namespace = DefaultNamespace
		}
		return p, fmt.Errorf("apiVersion/kind: %q/%q, want %q/%q", obj.APIVersion, obj.Kind, APIVersion, Kind)
	}
	return fromSpec(obj)
}

// FromObject returns the network a NAD read from the API server declares,
// validated as Parse validates it (an empty namespace is "default"). Its
// TypeMeta is not checked: typed clients leave it empty. Nothing is returned
// with an error.
func FromObject(obj *nadv1.NetworkAttachmentDefinition) (api.Network, error) {
	p, err := fromSpec(obj)
	if err != nil {
		return api.Network{}, err
	}
	return p.Network, nil
}

// fromSpec reads the names, spec.config and the annotations of obj.
func fromSpec(obj *nadv1.NetworkAttachmentDefinition) (parsed, error) {
	var p parsed
	p.Namespace, p.Name = obj.Namespace, obj.Name
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
	if err := checkNames(p.Namespace, p.Name); err != nil {
		return p, err
	}
	t, err := cniType(obj.Spec.Config)
	if err != nil {
		return p, err
	}
	p.CNIType = t
	return p, p.annotations(obj.Annotations)
}

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// checkNames applies Kubernetes' rules: a namespace is a DNS-1123 label, a
// NAD's name a DNS-1123 subdomain.
func checkNames(namespace, name string) error {
	if name == "" {
		return errors.New("metadata.name: required")
	}
	if len(name) > 253 || !dns1123Subdomain.MatchString(name) {
		return fmt.Errorf("metadata.name: %q is not a DNS-1123 subdomain", name)
	}
	if len(namespace) > 63 || !dns1123Label.MatchString(namespace) {
		return fmt.Errorf("metadata.namespace: %q is not a DNS-1123 label", namespace)
	}
	return nil
}

// cniConfig is the part of spec.config that matters here. A conflist has
// its type in plugins[0].
type cniConfig struct {
	Type    string `json:"type"`
	Plugins []struct {
		Type string `json:"type"`
	} `json:"plugins"`
}

// ConfigType returns the plugin type a NAD's spec.config names: its
// "type", or for a conflist its first plugin's; "" for an empty config or
// one without a type. The error is for a config that is not JSON.
func ConfigType(config string) (string, error) {
	if len(bytes.TrimSpace([]byte(config))) == 0 {
		return "", nil
	}
	var c cniConfig
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		return "", fmt.Errorf("spec.config: invalid CNI JSON: %w", err)
	}
	if c.Type == "" && len(c.Plugins) > 0 {
		return c.Plugins[0].Type, nil
	}
	return c.Type, nil
}

// Served reports whether xvr serves a NAD with this spec.config in a
// cluster: its type is xvr or contrail-k8s-cni. NADs of other plugins, and
// those without a config, belong to someone else.
func Served(config string) bool {
	t, err := ConfigType(config)
	return err == nil && (t == CNITypeXVR || t == CNITypeContrail)
}

// cniType returns spec.config's plugin type, "" for an empty config.
func cniType(config string) (string, error) {
	if len(bytes.TrimSpace([]byte(config))) == 0 {
		return "", nil
	}
	t, err := ConfigType(config)
	if err != nil {
		return "", err
	}
	switch t {
	case CNITypeXVR, CNITypeContrail:
		return t, nil
	case "":
		return "", errors.New(`spec.config: no "type"`)
	default:
		return "", fmt.Errorf("spec.config: type %q is not %q or %q", t, CNITypeXVR, CNITypeContrail)
	}
}

// annotations reads the opencontrail.org/* annotations into p.
func (p *parsed) annotations(a map[string]string) error {
	var err error
	if p.FabricForwarding, err = boolAnnotation(a, AnnotationFabricForwarding); err != nil {
		return err
	}
	if p.FabricSNAT, err = boolAnnotation(a, AnnotationFabricSNAT); err != nil {
		return err
	}
	if p.HostAccess, err = boolAnnotation(a, AnnotationHostAccess); err != nil {
		return err
	}
	cidr, hasCIDR := a[AnnotationCIDR]
	ref, hasRef := a[AnnotationNetwork]
	switch {
	case hasCIDR && hasRef:
		return fmt.Errorf("annotations %s and %s: give one, not both", AnnotationCIDR, AnnotationNetwork)
	case hasCIDR:
		p.CIDR, err = parseCIDR(cidr)
	case hasRef:
		p.Ref, err = parseRef(ref)
	default:
		err = fmt.Errorf("annotations: %s or %s is required", AnnotationCIDR, AnnotationNetwork)
	}
	return err
}

func boolAnnotation(a map[string]string, key string) (bool, error) {
	v, ok := a[key]
	switch {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, fmt.Errorf("annotation %s: %q is not \"true\" or \"false\"", key, v)
	}
}

// parseCIDR validates an opencontrail.org/cidr value and returns it
// normalised to its network address ("198.18.10.7/24" -> "198.18.10.0/24").
func parseCIDR(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("annotation %s: %w", AnnotationCIDR, err)
	}
	if !p.Addr().Is4() {
		return "", fmt.Errorf("annotation %s: %q is not an IPv4 prefix", AnnotationCIDR, s)
	}
	if err := CheckPrefix(p); err != nil {
		return "", fmt.Errorf("annotation %s: %w", AnnotationCIDR, err)
	}
	if _, _, err := Gateway(p); err != nil {
		return "", fmt.Errorf("annotation %s: %w", AnnotationCIDR, err)
	}
	return p.Masked().String(), nil
}

// nonUnicast are the IPv4 blocks whose addresses are no pod's: with at
// least MinPrefixLen bits a prefix lies inside one of them or outside all.
var nonUnicast = []struct {
	block netip.Prefix
	what  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, up to the 255.255.255.255 broadcast"},
}

// CheckPrefix reports whether p can be a VN's subnet: IPv4, MinPrefixLen
// to MaxPrefixLen bits, and unicast (not in 0.0.0.0/8, 127.0.0.0/8,
// 224.0.0.0/4 or 240.0.0.0/4). The error names p as given.
func CheckPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return fmt.Errorf("%s is not an IPv4 prefix", p)
	case p.Bits() < MinPrefixLen:
		return fmt.Errorf("%s is shorter than /%d: a VN prefix is /%d to /%d", p, MinPrefixLen, MinPrefixLen, MaxPrefixLen)
	case p.Bits() > MaxPrefixLen:
		return fmt.Errorf("%s is too small: a VN needs /%d or shorter for its gateway and DNS addresses", p, MaxPrefixLen)
	}
	for _, b := range nonUnicast {
		if b.block.Contains(p.Addr()) {
			return fmt.Errorf("%s is in %s (%s): a VN needs unicast addresses", p, b.block, b.what)
		}
	}
	return nil
}

// parseRef decodes an opencontrail.org/network value,
// {"domain":"...","project":"...","name":"..."}, all three required.
func parseRef(s string) (*api.NetworkRef, error) {
	var ref api.NetworkRef
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		return nil, fmt.Errorf("annotation %s: invalid JSON: %w", AnnotationNetwork, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s: unexpected data after the JSON object", AnnotationNetwork)
	}
	if ref.Domain == "" || ref.Project == "" || ref.Name == "" {
		return nil, fmt.Errorf(`annotation %s: "domain", "project" and "name" are all required`, AnnotationNetwork)
	}
	return &ref, nil
}

// ContrailNames returns TF's names for the VN made from the NAD name in
// namespace: "<cluster>-<name>-pod-network" in project "<cluster>-<namespace>".
func ContrailNames(cluster, namespace, name string) (vn, project string) {
	return cluster + "-" + name + "-pod-network", cluster + "-" + namespace
}

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// VNI is a VN's VXLAN identifier derived from its Contrail names, in
// 1..MaxVNI: the FNV-1a hash of "<project>:<vn>". Every node computes the
// same one without coordination; the controller starts its search for a
// cluster-unique VNI there.
func VNI(project, vn string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(project + ":" + vn))
	return h.Sum32()%MaxVNI + 1
}

// Gateway returns TF's gateway for an IPv4 prefix, its last usable address
// (.254 in a /24), and the DNS address, the one before it. The prefix must
// be IPv4 and no longer than /30.
func Gateway(prefix netip.Prefix) (gw, dns netip.Addr, err error) {
	if !prefix.IsValid() || !prefix.Addr().Is4() {
		return gw, dns, fmt.Errorf("%s is not an IPv4 prefix", prefix)
	}
	if prefix.Bits() > MaxPrefixLen {
		return gw, dns, fmt.Errorf("%s is too small: a VN needs /%d or shorter for its gateway and DNS addresses", prefix, MaxPrefixLen)
	}
	a := prefix.Masked().Addr().As4()
	host := ^uint32(0) >> prefix.Bits()
	last := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return addr4(last - 1), addr4(last - 2), nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
