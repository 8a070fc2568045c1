// Package crds holds the CustomResourceDefinitions xvr needs in a cluster,
// as Go values, and Ensure, which installs them at start: the upstream
// NetworkAttachmentDefinition CRD (network-attachment-definitions.k8s.cni.cncf.io,
// exactly as the Network Plumbing Working Group's client library ships it)
// and MultiNetworkPolicy CRD (multi-networkpolicies.k8s.cni.cncf.io, the
// multi-networkpolicy project's v1beta1 with the spec kept as written), and
// xvr's own, virtualnetworks.xvr.io, instanceips.xvr.io and
// nodepolicies.xvr.io, whose OpenAPI schemas follow kube/v1alpha1's JSON.
//
// deploy/kubernetes/crds.yaml is Manifest's output, kept equal by a golden
// test (go test ./kube/crds -update rewrites it).
//
// Importers: cmd/xvr-kube-manager (Ensure before the controller starts),
// the Kubernetes test harness and tests. It does I/O only in Ensure.
package crds

import (
	"bytes"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

// Names of the CRDs.
const (
	NADName            = "network-attachment-definitions.k8s.cni.cncf.io"
	MNPName            = "multi-networkpolicies." + mnp.Group
	VirtualNetworkName = "virtualnetworks." + v1alpha1.Group
	InstanceIPName     = "instanceips." + v1alpha1.Group
	NodePolicyName     = "nodepolicies." + v1alpha1.Group
)

// All returns the CRDs, the upstream ones first. Each call returns new
// values.
func All() []*apiextensionsv1.CustomResourceDefinition {
	return []*apiextensionsv1.CustomResourceDefinition{NAD(), MultiNetworkPolicy(), VirtualNetwork(), InstanceIP(), NodePolicy()}
}

// Upstream reports whether name is a CRD of another project (the NAD's,
// the MultiNetworkPolicy's), which Ensure creates when absent but never
// updates: another CNI or a policy implementation may own it.
func Upstream(name string) bool { return name == NADName || name == MNPName }

// NAD is the NetworkAttachmentDefinition CRD as upstream ships it
// (network-attachment-definition-client, artifacts/networks-crd.yaml): v1,
// Namespaced, short name net-attach-def, spec.config a string.
func NAD() *apiextensionsv1.CustomResourceDefinition {
	return crd(NADName, apiextensionsv1.CustomResourceDefinitionSpec{
		Group: "k8s.cni.cncf.io",
		Scope: apiextensionsv1.NamespaceScoped,
		Names: apiextensionsv1.CustomResourceDefinitionNames{
			Plural:     "network-attachment-definitions",
			Singular:   "network-attachment-definition",
			Kind:       nad.Kind,
			ShortNames: []string{"net-attach-def"},
		},
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name: "v1", Served: true, Storage: true,
			Schema: schema(object(props{
				"spec": object(props{"config": str()}),
			})),
		}},
	})
}

// MultiNetworkPolicy is the MultiNetworkPolicy CRD of the Network
// Plumbing Working Group (k8snetworkplumbingwg/multi-networkpolicy):
// k8s.cni.cncf.io/v1beta1, Namespaced, short name multi-policy; the spec
// is kept as written (x-kubernetes-preserve-unknown-fields), as kube/mnp
// reads it with NetworkPolicySpec's shape.
func MultiNetworkPolicy() *apiextensionsv1.CustomResourceDefinition {
	spec := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}
	return xvrCRD(MNPName, apiextensionsv1.CustomResourceDefinitionSpec{
		Group: mnp.Group,
		Scope: apiextensionsv1.NamespaceScoped,
		Names: apiextensionsv1.CustomResourceDefinitionNames{
			Plural:     "multi-networkpolicies",
			Singular:   "multi-networkpolicy",
			Kind:       mnp.Kind,
			ListKind:   mnp.Kind + "List",
			ShortNames: []string{"multi-policy"},
		},
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name: mnp.Version, Served: true, Storage: true,
			Schema: schema(object(props{"spec": spec})),
		}},
	})
}

// VirtualNetwork is virtualnetworks.xvr.io: Namespaced, short name xvn,
// with a status subresource and the VN name, CIDR, VNI and Ready columns.
func VirtualNetwork() *apiextensionsv1.CustomResourceDefinition {
	return xvrCRD(VirtualNetworkName, apiextensionsv1.CustomResourceDefinitionSpec{
		Group: v1alpha1.Group,
		Scope: apiextensionsv1.NamespaceScoped,
		Names: names("VirtualNetwork", "virtualnetworks", "virtualnetwork", "xvn"),
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name: v1alpha1.Version, Served: true, Storage: true,
			Schema: schema(object(props{
				"spec":   vnSpec(),
				"status": vnStatus(),
			}, "spec")),
			Subresources: &apiextensionsv1.CustomResourceSubresources{
				Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
			},
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("VN Name", "string", ".spec.vnName", 0),
				column("Project", "string", ".spec.project", 1),
				column("CIDR", "string", ".spec.cidr", 0),
				column("VNI", "integer", ".spec.vni", 0),
				column("Interfaces", "integer", ".status.interfaces", 1),
				column("Ready", "string", `.status.conditions[?(@.type=="Ready")].status`, 0),
				column("Age", "date", ".metadata.creationTimestamp", 0),
			},
		}},
	})
}

// InstanceIP is instanceips.xvr.io: Cluster-scoped, short name xip, with
// the IP, node and pod columns.
func InstanceIP() *apiextensionsv1.CustomResourceDefinition {
	return xvrCRD(InstanceIPName, apiextensionsv1.CustomResourceDefinitionSpec{
		Group: v1alpha1.Group,
		Scope: apiextensionsv1.ClusterScoped,
		Names: names("InstanceIP", "instanceips", "instanceip", "xip"),
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name: v1alpha1.Version, Served: true, Storage: true,
			Schema: schema(object(props{"spec": iipSpec()}, "spec")),
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("IP", "string", ".spec.ip", 0),
				column("Node", "string", ".spec.node", 0),
				column("Pod Namespace", "string", ".spec.pod.namespace", 0),
				column("Pod", "string", ".spec.pod.name", 0),
				column("Network", "string", ".spec.network", 1),
				column("MAC", "string", ".spec.mac", 1),
				column("Age", "date", ".metadata.creationTimestamp", 0),
			},
		}},
	})
}

// NodePolicy is nodepolicies.xvr.io: Cluster-scoped, short name xnp, one
// per node, written by the controller. Its spec (policy.Set per pod
// interface) is kept as is (x-kubernetes-preserve-unknown-fields): the
// controller is its only writer and the node validates it by compiling it.
func NodePolicy() *apiextensionsv1.CustomResourceDefinition {
	spec := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}
	return xvrCRD(NodePolicyName, apiextensionsv1.CustomResourceDefinitionSpec{
		Group: v1alpha1.Group,
		Scope: apiextensionsv1.ClusterScoped,
		Names: names("NodePolicy", "nodepolicies", "nodepolicy", "xnp"),
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
			Name: v1alpha1.Version, Served: true, Storage: true,
			Schema: schema(object(props{"spec": spec}, "spec")),
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				column("Age", "date", ".metadata.creationTimestamp", 0),
			},
		}},
	})
}

// vnSpec is the schema of v1alpha1.VirtualNetworkSpec.
func vnSpec() apiextensionsv1.JSONSchemaProps {
	return object(props{
		"vnName":           str(),
		"project":          str(),
		"cidr":             str(),
		"fabricForwarding": boolean(),
		"fabricSNAT":       boolean(),
		"hostAccess":       boolean(),
		"ref":              object(props{"domain": str(), "project": str(), "name": str()}, "domain", "project", "name"),
		"cniType":          str(),
		"vni":              integer(nad.MaxVNI),
	}, "vnName", "project")
}

// vnStatus is the schema of v1alpha1.VirtualNetworkStatus.
func vnStatus() apiextensionsv1.JSONSchemaProps {
	conditions := apiextensionsv1.JSONSchemaProps{
		Type:         "array",
		Items:        &apiextensionsv1.JSONSchemaPropsOrArray{Schema: ptr(condition())},
		XListType:    ptr("map"),
		XListMapKeys: []string{"type"},
	}
	return object(props{
		"observedGeneration": int64Prop(),
		"interfaces":         integer(0),
		"conditions":         conditions,
	})
}

// condition is the schema of metav1.Condition.
func condition() apiextensionsv1.JSONSchemaProps {
	status := str()
	status.Enum = []apiextensionsv1.JSON{{Raw: []byte(`"True"`)}, {Raw: []byte(`"False"`)}, {Raw: []byte(`"Unknown"`)}}
	transition := str()
	transition.Format = "date-time"
	return object(props{
		"type":               str(),
		"status":             status,
		"observedGeneration": int64Prop(),
		"lastTransitionTime": transition,
		"reason":             str(),
		"message":            str(),
	}, "type", "status", "lastTransitionTime", "reason", "message")
}

// iipSpec is the schema of v1alpha1.InstanceIPSpec.
func iipSpec() apiextensionsv1.JSONSchemaProps {
	return object(props{
		"network":    str(),
		"attachment": str(),
		"ip":         str(),
		"mac":        str(),
		"node":       str(),
		"nodeIP":     str(),
		"label":      integer(1<<20 - 1), // an MPLS label is 20 bits
		"port":       str(),
		"pod":        object(props{"namespace": str(), "name": str(), "uid": str()}, "namespace", "name"),
	}, "network", "ip", "node")
}

type props = map[string]apiextensionsv1.JSONSchemaProps

// xvrCRD is a CRD with the API server's defaults written out so that the
// CRD read back compares equal to its definition.
func xvrCRD(name string, spec apiextensionsv1.CustomResourceDefinitionSpec) *apiextensionsv1.CustomResourceDefinition {
	spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	return crd(name, spec)
}

func crd(name string, spec apiextensionsv1.CustomResourceDefinitionSpec) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
}

func names(kind, plural, singular, short string) apiextensionsv1.CustomResourceDefinitionNames {
	return apiextensionsv1.CustomResourceDefinitionNames{
		Kind: kind, ListKind: kind + "List", Plural: plural, Singular: singular,
		ShortNames: []string{short}, Categories: []string{"xvr"},
	}
}

func schema(root apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceValidation {
	return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &root}
}

func object(p props, required ...string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "object", Properties: p, Required: required}
}

func str() apiextensionsv1.JSONSchemaProps { return apiextensionsv1.JSONSchemaProps{Type: "string"} }
func boolean() apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "boolean"}
}
func int64Prop() apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int64", Minimum: ptr(0.0)}
}

// integer is a non-negative integer, at most max when max is not 0.
func integer(max float64) apiextensionsv1.JSONSchemaProps {
	p := apiextensionsv1.JSONSchemaProps{Type: "integer", Minimum: ptr(0.0)}
	if max > 0 {
		p.Maximum = &max
	}
	return p
}

func column(name, typ, path string, priority int32) apiextensionsv1.CustomResourceColumnDefinition {
	return apiextensionsv1.CustomResourceColumnDefinition{Name: name, Type: typ, JSONPath: path, Priority: priority}
}

func ptr[T any](v T) *T { return &v }

// manifestHeader starts deploy/kubernetes/crds.yaml.
const manifestHeader = "# Generated by `go test ./kube/crds -update` from kube/crds; do not edit.\n" +
	"# The NetworkAttachmentDefinition and MultiNetworkPolicy CRDs are upstream's; xvr-kube-manager\n" +
	"# creates them all at start when they are absent.\n"

// manifestCRD is what the YAML holds of a CRD: no status, no empty metadata.
type manifestCRD struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec apiextensionsv1.CustomResourceDefinitionSpec `json:"spec"`
}

// Manifest returns All as YAML documents, for kubectl apply -f.
func Manifest() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(manifestHeader)
	for _, c := range All() {
		m := manifestCRD{APIVersion: c.APIVersion, Kind: c.Kind, Spec: c.Spec}
		m.Metadata.Name = c.Name
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("crds: %s: %w", c.Name, err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}
