// Package node is xvrd's Kubernetes side on a compute node. With it, the
// cluster is the source of truth instead of `xvrctl apply`:
//
//   - it serves every VirtualNetwork (made by xvr-kube-manager from the
//     NADs) to the local agent as a network;
//   - it is the agent's cluster address book (agent.Addresses): a port's
//     address is claimed by creating its InstanceIP, named by the address,
//     so the API server refuses a second claim; releases that cannot reach
//     the API server are retried, and claims of this node with no local port
//     are swept, so a DEL while the API server is down loses nothing;
//   - it learns the other nodes' pod addresses from their InstanceIPs and
//     programs them as tunnel (or fabric) routes, removing them when the
//     InstanceIP or its Node goes;
//   - it wraps the agent's api.Backend so that the CNI reads a pod's
//     annotations live from the API server and the pod's network-status
//     annotation is written before the ADD returns.
//
// Reads come from an informer cache; writes and the CNI's pod reads go to the
// API server directly. The sync is level-triggered: any change in the cache
// schedules one pass that compares the whole desired state with the agent's.
//
// Importers: cmd/xvrd and tests. It imports kube/v1alpha1, vrouter/agent
// (the Addresses seam) and vrouter/api.
package node
