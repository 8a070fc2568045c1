// Package v1alpha1 holds xvr's Kubernetes API types (group xvr.io, version
// v1alpha1): VirtualNetwork, the VN a NetworkAttachmentDefinition declares,
// as the controller resolved it (Contrail names, cluster-unique VNI), and
// InstanceIP, one pod interface's address, claimed cluster-wide by the node
// that made the interface (TF's instance-ip). An InstanceIP is also what the
// other nodes route by: it names the node, its fabric IP and its MPLS label
// for the VN.
//
// InstanceIP names are the claim: "<vn-namespace>.<vn-name>.<ip>"
// (InstanceIPName), so the API server's create-if-absent is the cluster's
// duplicate-address check. Nothing here does I/O.
//
// Importers: kube/controller, kube/node, kube/crds, their tests. It imports
// only Kubernetes' apimachinery.
package v1alpha1
