package crds

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/crds.yaml from the Go definitions")

var manifestPath = filepath.Join("..", "..", "deploy", "kubernetes", "crds.yaml")

// TestManifest is the golden test: deploy/kubernetes/crds.yaml is exactly
// Manifest's output, and decodes back to the Go definitions.
func TestManifest(t *testing.T) {
	want, err := Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(manifestPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatalf("%v (go test ./kube/crds -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the Go definitions; run go test ./kube/crds -update", manifestPath)
	}
	decoded := decodeManifest(t, got)
	all := All()
	if len(decoded) != len(all) {
		t.Fatalf("%s holds %d CRDs, want %d", manifestPath, len(decoded), len(all))
	}
	for i, c := range all {
		if decoded[i].Name != c.Name || !equality.Semantic.DeepEqual(decoded[i].Spec, c.Spec) {
			t.Errorf("document %d: %s does not decode to the Go definition of %s", i+1, decoded[i].Name, c.Name)
		}
	}
}

func decodeManifest(t *testing.T, data []byte) []apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []apiextensionsv1.CustomResourceDefinition
	for {
		var c apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&c); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("decoding %s: %v", manifestPath, err)
		}
		if c.Name != "" {
			out = append(out, c)
		}
	}
}

// TestNADIsUpstream pins the NAD CRD to upstream's shape.
func TestNADIsUpstream(t *testing.T) {
	c := NAD()
	v := c.Spec.Versions
	if c.Name != NADName || c.Spec.Group != "k8s.cni.cncf.io" || c.Spec.Scope != apiextensionsv1.NamespaceScoped ||
		c.Spec.Names.Kind != "NetworkAttachmentDefinition" || c.Spec.Names.Plural != "network-attachment-definitions" ||
		c.Spec.Names.Singular != "network-attachment-definition" || len(c.Spec.Names.ShortNames) != 1 ||
		c.Spec.Names.ShortNames[0] != "net-attach-def" || len(v) != 1 || v[0].Name != "v1" || !v[0].Served || !v[0].Storage {
		t.Fatalf("NAD CRD = %+v", c.Spec)
	}
	config := v[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["config"]
	if config.Type != "string" {
		t.Errorf("spec.config schema = %+v, want a string", config)
	}
}

// TestMNPIsUpstream pins the MultiNetworkPolicy CRD to upstream's names.
func TestMNPIsUpstream(t *testing.T) {
	c := MultiNetworkPolicy()
	v := c.Spec.Versions
	if c.Name != "multi-networkpolicies.k8s.cni.cncf.io" || c.Spec.Group != "k8s.cni.cncf.io" || c.Spec.Scope != apiextensionsv1.NamespaceScoped ||
		c.Spec.Names.Kind != "MultiNetworkPolicy" || c.Spec.Names.Plural != "multi-networkpolicies" ||
		c.Spec.Names.Singular != "multi-networkpolicy" || len(c.Spec.Names.ShortNames) != 1 ||
		c.Spec.Names.ShortNames[0] != "multi-policy" || len(v) != 1 || v[0].Name != "v1beta1" || !v[0].Served || !v[0].Storage {
		t.Fatalf("MultiNetworkPolicy CRD = %+v", c.Spec)
	}
	if spec := v[0].Schema.OpenAPIV3Schema.Properties["spec"]; spec.XPreserveUnknownFields == nil || !*spec.XPreserveUnknownFields {
		t.Errorf("spec schema = %+v, want preserved", spec)
	}
	if !Upstream(MNPName) || !Upstream(NADName) || Upstream(NodePolicyName) {
		t.Error("Upstream misclassifies a CRD")
	}
}
