// Package controller is xvr-kube-manager's logic: controller-runtime
// reconcilers that turn the cluster's NetworkAttachmentDefinitions into
// VirtualNetworks, own the cluster default network, collect InstanceIPs
// nobody owns any more and compute each node's network policy. It is TF's
// kube-manager, with the failures it logs and forgets made visible
// (Events, conditions) and retried.
//
//   - NAD → VirtualNetwork (same namespace and name): a NAD whose
//     spec.config type is xvr or contrail-k8s-cni gets the finalizer
//     xvr.io/network-in-use and a VirtualNetwork with its Contrail names,
//     CIDR, fabric flags or reference, and a VNI unique in the cluster,
//     chosen once (the hash nad.VNI, probed past VNIs others hold) and never
//     changed. NADs of other plugins are not touched. An invalid NAD gets a
//     Warning Event and its VN is left as it was. A CIDR or reference change
//     is refused while pod interfaces use the VN (Ready=False, CIDRInUse).
//   - Deletion: a NAD whose VN pod interfaces (InstanceIPs) or other VNs
//     (references) still use keeps its finalizer; the reason is a Warning
//     Event NetworkInUse on the NAD and the VN's condition Deleting=False
//     InUse, retried on every InstanceIP change and periodically. Once
//     unused, the VN is deleted and the finalizer removed.
//   - The cluster default network default/cluster-wide-default is the
//     controller's own: created with Options.DefaultCIDR, recreated when
//     deleted, never deleted.
//   - Garbage collection: an InstanceIP whose pod is gone (or is another
//     pod of the same name, by UID), or whose node is gone, is deleted — the
//     backstop for CNI DELs that could not reach the API server. Pods and
//     Nodes are watched as metadata only.
//   - Network policy: NetworkPolicies (default network) and
//     MultiNetworkPolicies (the NADs of their policy-for), with pods,
//     namespaces, InstanceIPs and NADs, become one NodePolicy per Node
//     (kube/netpol computes them; one coalesced request recomputes every
//     node, and only NodePolicies that differ are written; a gone node's
//     is deleted). What a policy cannot enforce gets a Warning Event
//     PolicyNotEnforced and Enforced=False in its xvr.io/policy-status
//     annotation (a JSON list of conditions), True once fixed.
//
// Every reconciler runs only on the elected leader. Importers:
// cmd/xvr-kube-manager and tests. It reads and writes only the API server.
package controller
