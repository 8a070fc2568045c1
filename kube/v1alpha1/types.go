package v1alpha1

import (
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/xvr-project/xvr/policy"
)

// Group and Version of xvr's API.
const (
	Group   = "xvr.io"
	Version = "v1alpha1"
)

// GroupVersion is xvr.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Labels and finalizers xvr puts on objects.
const (
	// LabelNode is an InstanceIP's node name, for per-node lists.
	LabelNode = "xvr.io/node"
	// LabelPodUID is an InstanceIP's pod UID.
	LabelPodUID = "xvr.io/pod-uid"
	// LabelNetwork is the VN key of an InstanceIP, "<namespace>.<name>".
	LabelNetwork = "xvr.io/network"
	// Finalizer is put on each NAD xvr serves, so that deleting a NAD still
	// used by pods waits until they are gone.
	Finalizer = "xvr.io/network-in-use"
)

// Condition types of a VirtualNetwork.
const (
	// ConditionReady: the VN is resolved and served to the nodes.
	ConditionReady = "Ready"
	// ConditionDeleting: the NAD is being deleted; False with reason InUse
	// while pod interfaces or other VNs still use it.
	ConditionDeleting = "Deleting"
)

// VirtualNetwork is a VN, made by the controller from the NAD of the same
// namespace and name (or, for the cluster default network, by the
// controller itself). Nodes serve every VirtualNetwork.
type VirtualNetwork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualNetworkSpec   `json:"spec"`
	Status VirtualNetworkStatus `json:"status,omitempty"`
}

// VirtualNetworkSpec is the VN as the NAD's opencontrail.org/* annotations
// declare it, plus what the controller decided.
type VirtualNetworkSpec struct {
	// VNName and Project are the Contrail names: <cluster>-<name>-pod-network
	// in <cluster>-<namespace>.
	VNName  string `json:"vnName"`
	Project string `json:"project"`
	// CIDR is opencontrail.org/cidr (IPv4). Empty when Ref is set.
	CIDR string `json:"cidr,omitempty"`
	// FabricForwarding is opencontrail.org/ip_fabric_forwarding.
	FabricForwarding bool `json:"fabricForwarding,omitempty"`
	// FabricSNAT is opencontrail.org/ip_fabric_snat.
	FabricSNAT bool `json:"fabricSNAT,omitempty"`
	// HostAccess is xvr.io/host-access: nodes reach the VN's pods from
	// their kernel.
	HostAccess bool `json:"hostAccess,omitempty"`
	// Ref is opencontrail.org/network: the NAD names an existing VN.
	Ref *NetworkRef `json:"ref,omitempty"`
	// CNIType is the NAD's spec.config type (xvr or contrail-k8s-cni).
	CNIType string `json:"cniType,omitempty"`
	// VNI is the VN's VXLAN identifier, unique in the cluster, chosen by the
	// controller and never changed. 0 for a reference (it uses its target's).
	VNI uint32 `json:"vni,omitempty"`
}

// NetworkRef names an existing VN by its Contrail fully qualified name.
type NetworkRef struct {
	Domain  string `json:"domain"`
	Project string `json:"project"`
	Name    string `json:"name"`
}

// VirtualNetworkStatus is what the controller observed.
type VirtualNetworkStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Interfaces counts the pod interfaces (InstanceIPs) on this VN.
	Interfaces int `json:"interfaces,omitempty"`
	// Conditions: Ready, Deleting.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VirtualNetworkList is a list of VirtualNetworks.
type VirtualNetworkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualNetwork `json:"items"`
}

// InstanceIP is one pod interface's address in a VN, claimed cluster-wide
// by the node that made the interface. It is cluster-scoped and named
// InstanceIPName(spec.network, spec.ip).
type InstanceIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec InstanceIPSpec `json:"spec"`
}

// InstanceIPSpec says whose address it is and how other nodes reach it.
type InstanceIPSpec struct {
	// Network is the VN whose address space holds IP, "namespace/name"
	// (for a pod that selected a reference, the referenced VN).
	Network string `json:"network"`
	// Attachment is the network the pod selected, "namespace/name" (the NAD).
	Attachment string `json:"attachment"`
	// IP is the interface's IPv4 address; MAC its MAC.
	IP  string `json:"ip"`
	MAC string `json:"mac,omitempty"`
	// Node is the node's name; NodeIP its fabric address; Label its MPLS
	// label for the VN (what MPLSoUDP towards it carries).
	Node   string `json:"node"`
	NodeIP string `json:"nodeIP,omitempty"`
	Label  uint32 `json:"label,omitempty"`
	// Port is the node's port ID (<containerID>/<ifname>).
	Port string `json:"port"`
	// Pod owns the interface; nil for a hand-made port.
	Pod *PodRef `json:"pod,omitempty"`
}

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// InstanceIPList is a list of InstanceIPs.
type InstanceIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []InstanceIP `json:"items"`
}

// InstanceIPName is the object name that claims ip in the VN network
// ("namespace/name"): "<namespace>.<name>.<ip>". Two claims of one address
// have one name, so the API server refuses the second.
func InstanceIPName(network string, ip netip.Addr) string {
	return strings.Replace(network, "/", ".", 1) + "." + ip.String()
}

// NetworkLabel is the value of LabelNetwork for a VN key ("namespace/name").
func NetworkLabel(network string) string { return strings.Replace(network, "/", ".", 1) }

// Key is the VN's "namespace/name".
func (v *VirtualNetwork) Key() string { return v.Namespace + "/" + v.Name }

// ParseIP returns the InstanceIP's address.
func (s *InstanceIPSpec) ParseIP() (netip.Addr, error) {
	ip, err := netip.ParseAddr(s.IP)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("instance ip %q is not an IPv4 address", s.IP)
	}
	return ip, nil
}

// NodePolicy is the network policy of one node's pods, computed by the
// controller from NetworkPolicies, MultiNetworkPolicies, pods and
// namespaces, and read by that node's xvrd only. Cluster-scoped, named
// after the node.
type NodePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NodePolicySpec `json:"spec"`
}

// NodePolicySpec lists an entry for every interface of every pod on the
// node, selected by a policy or not (an unselected one has an empty Set):
// an interface without an entry has not been computed yet, and the node
// keeps it isolated until it has one.
type NodePolicySpec struct {
	Interfaces []InterfacePolicy `json:"interfaces,omitempty"`
}

// InterfacePolicy is the policy of a pod's interface on one network.
type InterfacePolicy struct {
	Pod PodRef `json:"pod"`
	// Network is the attachment ("namespace/name" of the NAD, or of the
	// cluster default network), as InstanceIPSpec.Attachment has it.
	Network string `json:"network"`
	// Policy is what the policies selecting the interface allow, with
	// peers resolved to addresses and named ports to numbers.
	Policy policy.Set `json:"policy"`
}

// NodePolicyList is a list of NodePolicies.
type NodePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodePolicy `json:"items"`
}

// SchemeBuilder registers the types; AddToScheme adds them to a scheme.
var (
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &VirtualNetwork{}, &VirtualNetworkList{}, &InstanceIP{}, &InstanceIPList{},
		&NodePolicy{}, &NodePolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
