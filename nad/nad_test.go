package nad

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xvr-project/xvr/vrouter/api"
)

func parseFile(t *testing.T, name string) []api.Network {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nets, err := Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return nets
}

func TestExamples(t *testing.T) {
	tests := map[string]api.Network{
		"vn-left-1.yaml":  {Namespace: "default", Name: "vn-left-1", CIDR: "198.18.10.0/24", CNIType: "contrail-k8s-cni"},
		"vn-right-1.yaml": {Namespace: "default", Name: "vn-right-1", CIDR: "198.18.20.0/24", CNIType: "xvr"},
		"vn-blue.yaml": {Namespace: "blue", Name: "vn-blue", CIDR: "198.18.30.0/24", FabricForwarding: true,
			FabricSNAT: true, CNIType: "contrail-k8s-cni"},
		"vn-ref.yaml": {Namespace: "other", Name: "left-alias", CNIType: "contrail-k8s-cni",
			Ref: &api.NetworkRef{Domain: "default-domain", Project: "k8s-default", Name: "k8s-vn-left-1-pod-network"}},
	}
	for file, want := range tests {
		got := parseFile(t, file)
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s = %+v, want %+v", file, got, want)
		}
	}
}

const header = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"

// doc builds a NAD document with the given metadata lines and spec.config.
func doc(meta, config string) string {
	s := header + "metadata:\n" + meta
	if config != "" {
		s += "spec:\n  config: '" + config + "'\n"
	}
	return s
}

func TestMultiDocument(t *testing.T) {
	in := "---\n# leading comment\n" +
		doc("  name: a\n  annotations:\n    opencontrail.org/cidr: 198.18.10.7/24\n", "") +
		"---\n---   # empty document\n" +
		doc("  name: b\n  namespace: ns1\n  annotations:\n    opencontrail.org/cidr: 198.18.20.0/23\n",
			`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"xvr"}]}`) +
		"...\n"
	nets, err := Parse(strings.NewReader(strings.ReplaceAll(in, "...\n", "")))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Network{
		{Namespace: "default", Name: "a", CIDR: "198.18.10.0/24"},
		{Namespace: "ns1", Name: "b", CIDR: "198.18.20.0/23", CNIType: "xvr"},
	}
	if !reflect.DeepEqual(nets, want) {
		t.Errorf("got %+v\nwant %+v", nets, want)
	}
	if nets, err := Parse(strings.NewReader("# nothing\n---\n")); err != nil || len(nets) != 0 {
		t.Errorf("empty input = %+v, %v", nets, err)
	}
}

func TestJSONInput(t *testing.T) {
	in := `{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
	"metadata":{"name":"j","annotations":{"opencontrail.org/cidr":"198.18.40.0/24"}}}`
	nets, err := Parse(strings.NewReader(in))
	if err != nil || len(nets) != 1 || nets[0].CIDR != "198.18.40.0/24" {
		t.Errorf("json = %+v, %v", nets, err)
	}
}

func TestErrors(t *testing.T) {
	good := "  name: ok\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/24\n"
	ann := func(lines string) string { return "  name: vn\n  annotations:\n" + lines }
	tests := []struct {
		name, in, want string
	}{
		{"kind", strings.Replace(doc(good, ""), "NetworkAttachmentDefinition", "ConfigMap", 1), "apiVersion/kind"},
		{"apiVersion", strings.Replace(doc(good, ""), "k8s.cni.cncf.io/v1", "v1", 1), "apiVersion/kind"},
		{"no name", doc("  annotations:\n    opencontrail.org/cidr: 198.18.10.0/24\n", ""), "metadata.name: required"},
		{"bad name", doc("  name: Vn_1\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/24\n", ""), "metadata.name"},
		{"bad namespace", doc("  name: vn\n  namespace: a.b\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/24\n", ""), "metadata.namespace"},
		{"unknown field", doc(good, "") + "status: {}\n", `unknown field "status"`},
		{"duplicate key", doc(good+"  name: again\n", ""), "invalid YAML"},
		{"bad yaml", header + "metadata: [\n", "invalid YAML"},
		{"neither", doc("  name: vn\n", ""), "opencontrail.org/cidr or opencontrail.org/network is required"},
		{"both", doc(ann("    opencontrail.org/cidr: 198.18.10.0/24\n    opencontrail.org/network: '{}'\n"), ""), "not both"},
		{"cidr syntax", doc(ann("    opencontrail.org/cidr: 198.18.10.0\n"), ""), "opencontrail.org/cidr"},
		{"cidr ipv6", doc(ann("    opencontrail.org/cidr: 2001:db8::/64\n"), ""), "not an IPv4 prefix"},
		{"cidr 4in6", doc(ann("    opencontrail.org/cidr: \"::ffff:198.18.10.0/120\"\n"), ""), "not an IPv4 prefix"},
		{"cidr /31", doc(ann("    opencontrail.org/cidr: 198.18.10.0/31\n"), ""), "too small"},
		{"cidr /32", doc(ann("    opencontrail.org/cidr: 198.18.10.0/32\n"), ""), "too small"},
		{"fabric flag", doc(ann("    opencontrail.org/cidr: 198.18.10.0/24\n    opencontrail.org/ip_fabric_forwarding: \"yes\"\n"), ""), "ip_fabric_forwarding"},
		{"snat flag", doc(ann("    opencontrail.org/cidr: 198.18.10.0/24\n    opencontrail.org/ip_fabric_snat: \"True\"\n"), ""), "ip_fabric_snat"},
		{"host access flag", doc(ann("    opencontrail.org/cidr: 198.18.10.0/24\n    xvr.io/host-access: \"on\"\n"), ""), "xvr.io/host-access"},
		{"ref json", doc(ann("    opencontrail.org/network: '{\"domain\":'\n"), ""), "opencontrail.org/network: invalid JSON"},
		{"ref field", doc(ann("    opencontrail.org/network: '{\"domain\":\"d\",\"project\":\"p\",\"name\":\"n\",\"x\":1}'\n"), ""), "unknown field"},
		{"ref missing", doc(ann("    opencontrail.org/network: '{\"domain\":\"d\",\"name\":\"n\"}'\n"), ""), "all required"},
		{"ref trailing", doc(ann("    opencontrail.org/network: '{\"domain\":\"d\",\"project\":\"p\",\"name\":\"n\"} {}'\n"), ""), "unexpected data"},
		{"cni type", doc(good, `{"cniVersion":"0.3.1","type":"bridge"}`), `type "bridge" is not "xvr" or "contrail-k8s-cni"`},
		{"cni no type", doc(good, `{"cniVersion":"0.3.1"}`), `no "type"`},
		{"cni json", doc(good, `{"type":`), "spec.config: invalid CNI JSON"},
		{"separator", doc(good, "") + "--- junk\n", "invalid Yaml document separator"},
		{"not a mapping", "- a\n- b\n", "not a NetworkAttachmentDefinition"},
	}
	for _, tt := range tests {
		nets, err := Parse(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || nets != nil {
			t.Errorf("%s: Parse = %v, %v; want error containing %q", tt.name, nets, err, tt.want)
		}
	}
}

func TestErrorNamesDocument(t *testing.T) {
	in := doc("  name: a\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/24\n", "") + "---\n" +
		doc("  name: b\n  namespace: ns1\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/31\n", "")
	_, err := Parse(strings.NewReader(in))
	want := "nad: document 2 (ns1/b): annotation opencontrail.org/cidr: 198.18.10.0/31 is too small"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want prefix %q", err, want)
	}
}

func TestGateway(t *testing.T) {
	tests := []struct{ prefix, gw, dns string }{
		{"198.18.10.0/24", "198.18.10.254", "198.18.10.253"},
		{"198.18.10.77/24", "198.18.10.254", "198.18.10.253"},
		{"198.18.0.0/16", "198.18.255.254", "198.18.255.253"},
		{"198.18.10.0/29", "198.18.10.6", "198.18.10.5"},
		{"198.18.10.8/29", "198.18.10.14", "198.18.10.13"},
		{"0.0.0.0/0", "255.255.255.254", "255.255.255.253"},
	}
	for _, tt := range tests {
		gw, dns, err := Gateway(netip.MustParsePrefix(tt.prefix))
		if err != nil || gw.String() != tt.gw || dns.String() != tt.dns {
			t.Errorf("Gateway(%s) = %v, %v, %v; want %s, %s", tt.prefix, gw, dns, err, tt.gw, tt.dns)
		}
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("198.18.10.0/31"),
		netip.MustParsePrefix("198.18.10.1/32"), netip.MustParsePrefix("2001:db8::/64")} {
		if _, _, err := Gateway(bad); err == nil {
			t.Errorf("Gateway(%v) succeeded", bad)
		}
	}
}

func TestContrailNames(t *testing.T) {
	vn, project := ContrailNames("k8s", "default", "vn-left-1")
	if vn != "k8s-vn-left-1-pod-network" || project != "k8s-default" {
		t.Errorf("ContrailNames = %q, %q", vn, project)
	}
}

// FuzzParse checks that Parse never panics and returns networks xor an
// error, and that every network it returns is valid.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"vn-left-1.yaml", "vn-right-1.yaml", "vn-blue.yaml", "vn-ref.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("---\n---\n")
	f.Add(doc("  name: a\n  annotations:\n    opencontrail.org/cidr: 198.18.10.0/31\n", `{"type":"x"}`))
	f.Fuzz(func(t *testing.T, in string) {
		nets, err := Parse(strings.NewReader(in))
		if err != nil {
			if nets != nil {
				t.Fatalf("networks %+v with error %v", nets, err)
			}
			return
		}
		for _, n := range nets {
			checkValid(t, n)
		}
	})
}

func checkValid(t *testing.T, n api.Network) {
	t.Helper()
	if n.Name == "" || n.Namespace == "" || (n.CIDR == "") == (n.Ref == nil) {
		t.Fatalf("invalid network %+v", n)
	}
	if n.CIDR != "" {
		p, err := netip.ParsePrefix(n.CIDR)
		if err != nil || p != p.Masked() || p.Bits() > MaxPrefixLen {
			t.Fatalf("invalid cidr in %+v", n)
		}
	}
}

func TestFromObject(t *testing.T) {
	obj := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "vn-a", Annotations: map[string]string{
			AnnotationCIDR: "198.18.40.9/24", AnnotationFabricSNAT: "true", AnnotationHostAccess: "true"}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","type":"xvr"}`},
	}
	got, err := FromObject(obj) // no TypeMeta, as a typed client returns it
	want := api.Network{Namespace: "other", Name: "vn-a", CIDR: "198.18.40.0/24", FabricSNAT: true, HostAccess: true, CNIType: "xvr"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("FromObject = %+v, %v; want %+v", got, err, want)
	}
	obj.Annotations[AnnotationFabricSNAT] = "yes"
	if got, err := FromObject(obj); err == nil || !strings.Contains(err.Error(), AnnotationFabricSNAT) || got != (api.Network{}) {
		t.Errorf("FromObject(bad annotation) = %+v, %v; want an error naming %s and no network", got, err, AnnotationFabricSNAT)
	}
}

func TestServed(t *testing.T) {
	tests := map[string]bool{
		`{"type":"xvr"}`:                              true,
		`{"type":"contrail-k8s-cni"}`:                 true,
		`{"name":"n","plugins":[{"type":"xvr"}]}`:     true,
		`{"type":"bridge"}`:                           false,
		`{"name":"n","plugins":[{"type":"macvlan"}]}`: false,
		``:                 false,
		`{"type":`:         false,
		`{"cniVersion":1}`: false,
	}
	for config, want := range tests {
		if got := Served(config); got != want {
			t.Errorf("Served(%q) = %v, want %v", config, got, want)
		}
	}
	if typ, err := ConfigType(`{"plugins":[{"type":"bridge"}]}`); typ != "bridge" || err != nil {
		t.Errorf("ConfigType(conflist) = %q, %v", typ, err)
	}
}

// TestVNI pins the hash: vrouter/agent computes the same VNI for a VN
// without a controller, so changing it would split a cluster.
func TestVNI(t *testing.T) {
	if got := VNI("k8s-default", "k8s-vn-left-1-pod-network"); got != 6456772 {
		t.Errorf("VNI(k8s-default, k8s-vn-left-1-pod-network) = %d, want 6456772", got)
	}
	for _, n := range []string{"", "a", "k8s-cluster-wide-default-pod-network"} {
		if v := VNI("p", n); v == 0 || v > MaxVNI {
			t.Errorf("VNI(p, %q) = %d, outside 1..%d", n, v, MaxVNI)
		}
	}
}
