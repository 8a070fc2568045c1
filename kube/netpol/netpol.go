// Package netpol computes what each node enforces: from the cluster's
// NetworkPolicies, MultiNetworkPolicies, pods, namespaces and pod
// addresses (InstanceIPs), one v1alpha1.InterfacePolicy per interface of
// every pod on the node, with the upstream semantics resolved into
// addresses and port numbers (policy.Set), and the Problems of the
// objects that cannot be fully enforced.
//
// It is pure: Compute reads its Inputs and returns new values, so the
// controller (kube/controller) can call it on every change and write only
// what differs, and tests need no API server. The output is sorted, so
// equal inputs give equal outputs whatever order the lists came in.
//
// Semantics (docs/policy.md): a NetworkPolicy applies to the pods its
// podSelector selects in its namespace, on the cluster default network
// only; a MultiNetworkPolicy to their interfaces on the NADs its
// k8s.v1.cni.cncf.io/policy-for annotation names. policyTypes defaults to
// Ingress, plus Egress when egress rules are present. A pod selected in a
// direction is isolated in it and allowed what the union of the rules of
// every selecting policy allows. Pod peers resolve to the /32 of their
// address on the same network as the interface; pods being deleted or
// finished are no peers. Named ports resolve against the selected pod's
// container ports (ingress) or each peer pod's (egress: one rule per
// distinct number); they never match ipBlock peers.
package netpol

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/xvr-project/xvr/kube/mnp"
	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/policy"
)

// NetworksAnnotation is the pod annotation selecting its secondary networks.
const NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"

// Kinds of the policy objects, as Problem.Kind and in Rule.Policy.
const (
	KindNetworkPolicy      = "NetworkPolicy"
	KindMultiNetworkPolicy = mnp.Kind
)

// Reasons of Problems.
const (
	// ReasonIPv6 : an ipBlock is IPv6; xvr is IPv4 only, the peer is ignored.
	ReasonIPv6 = "IPv6NotSupported"
	// ReasonNetworkNotFound: policy-for names a NAD that does not exist.
	ReasonNetworkNotFound = "NetworkNotFound"
	// ReasonNotXVRNetwork: policy-for names a NAD of another CNI.
	ReasonNotXVRNetwork = "NotXVRNetwork"
	// ReasonNoNetwork: a MultiNetworkPolicy without policy-for applies to nothing.
	ReasonNoNetwork = "NoPolicyFor"
	// ReasonUnknownPolicyType: a policyTypes entry other than Ingress/Egress.
	ReasonUnknownPolicyType = "UnknownPolicyType"
	// ReasonInvalidPort: a port, endPort or protocol xvr cannot use; the
	// port entry is ignored (it matches nothing).
	ReasonInvalidPort = "InvalidPort"
	// ReasonInvalidIPBlock: a CIDR or except that does not parse or an
	// except outside its CIDR; the peer is ignored (matches nothing).
	ReasonInvalidIPBlock = "InvalidIPBlock"
	// ReasonInvalidSelector: a label selector that does not convert; it
	// selects nothing.
	ReasonInvalidSelector = "InvalidSelector"
)

// Inputs are the cluster objects Compute reads. Nothing is modified.
type Inputs struct {
	NetworkPolicies      []networkingv1.NetworkPolicy
	MultiNetworkPolicies []mnp.MultiNetworkPolicy
	Pods                 []corev1.Pod
	Namespaces           []corev1.Namespace
	InstanceIPs          []v1alpha1.InstanceIP
	// DefaultNetwork is the cluster default network's attachment key,
	// "default/cluster-wide-default".
	DefaultNetwork string
	// NADs are the cluster's NADs by key ("namespace/name"), true for
	// those xvr serves (what a policy-for may name).
	NADs map[string]bool
}

// Problem is something of a policy object that xvr does not enforce.
type Problem struct {
	Kind      string // KindNetworkPolicy or KindMultiNetworkPolicy
	Namespace string
	Name      string
	Reason    string
	Message   string
}

// Object is "Kind namespace/name", as Rule.Policy names it.
func (p Problem) Object() string { return objectName(p.Kind, p.Namespace, p.Name) }

func objectName(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// Result is Compute's output. Entries may share slices (the rules and
// peers common to interfaces): treat it as read-only, or copy
// (policy.Set.Clone) before changing an entry.
type Result struct {
	// Nodes holds, per node name, an entry for every interface of every
	// non-hostNetwork, unfinished pod scheduled there, sorted by pod
	// namespace, name and network.
	Nodes map[string][]v1alpha1.InterfacePolicy
	// Problems are sorted by object, reason and message, each once.
	Problems []Problem
}

// Compute computes every node's interface policies.
func Compute(in Inputs) Result {
	c := newComputation(&in)
	c.compilePolicies()
	nodes := map[string][]v1alpha1.InterfacePolicy{}
	for _, p := range c.pods {
		if p.pod.Spec.NodeName == "" || p.pod.Spec.HostNetwork || finished(p.pod) {
			continue
		}
		for _, network := range p.networks {
			nodes[p.pod.Spec.NodeName] = append(nodes[p.pod.Spec.NodeName], v1alpha1.InterfacePolicy{
				Pod:     v1alpha1.PodRef{Namespace: p.pod.Namespace, Name: p.pod.Name, UID: string(p.pod.UID)},
				Network: network,
				Policy:  c.interfacePolicy(p, network),
			})
		}
	}
	for _, list := range nodes {
		sort.Slice(list, func(i, j int) bool { return interfaceLess(&list[i], &list[j]) })
	}
	return Result{Nodes: nodes, Problems: c.problems()}
}

func interfaceLess(a, b *v1alpha1.InterfacePolicy) bool {
	if a.Pod.Namespace != b.Pod.Namespace {
		return a.Pod.Namespace < b.Pod.Namespace
	}
	if a.Pod.Name != b.Pod.Name {
		return a.Pod.Name < b.Pod.Name
	}
	return a.Network < b.Network
}

// finished reports whether the pod's containers are done for good.
func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// podInfo is a pod with what Compute derived from it.
type podInfo struct {
	pod *corev1.Pod
	// networks are its interfaces' attachments: the default network first,
	// then its selected networks, each once.
	networks []string
	// addrs are its IPv4 addresses per attachment.
	addrs map[string][]netip.Addr
	// peer: it can be a policy peer (not being deleted, not finished).
	peer bool
}

type computation struct {
	in         *Inputs
	pods       []*podInfo // sorted by namespace/name
	byNS       map[string][]*podInfo
	nsLabels   map[string]labels.Set
	namespaces []string // sorted
	policies   []*compiledPolicy
	found      map[Problem]bool
	// peerCache memoizes the pods a peer selects, per peer and network;
	// ruleCache a rule's resolved peers (ingress) or rules (egress), which
	// do not depend on the selected pod, per rule and network.
	peerCache   map[peerKey][]*podInfo
	peersCache  map[ruleKey][]policy.Peer
	egressCache map[ruleKey][]policy.Rule
}

type peerKey struct {
	peer    *compiledPeer
	network string
}

type ruleKey struct {
	rule    *compiledRule
	network string
}

func newComputation(in *Inputs) *computation {
	c := &computation{
		in: in, byNS: map[string][]*podInfo{}, nsLabels: map[string]labels.Set{},
		found: map[Problem]bool{}, peerCache: map[peerKey][]*podInfo{},
		peersCache: map[ruleKey][]policy.Peer{}, egressCache: map[ruleKey][]policy.Rule{},
	}
	for i := range in.Namespaces {
		ns := &in.Namespaces[i]
		c.nsLabels[ns.Name] = labels.Set(ns.Labels)
		c.namespaces = append(c.namespaces, ns.Name)
	}
	sort.Strings(c.namespaces)
	type podID struct{ ns, name string }
	index := map[podID]*podInfo{}
	for i := range in.Pods {
		p := &in.Pods[i]
		info := &podInfo{pod: p, addrs: map[string][]netip.Addr{}, peer: p.DeletionTimestamp.IsZero() && !finished(p)}
		info.networks = podNetworks(p, in.DefaultNetwork)
		index[podID{p.Namespace, p.Name}] = info
		c.pods = append(c.pods, info)
	}
	sort.Slice(c.pods, func(i, j int) bool {
		a, b := c.pods[i].pod, c.pods[j].pod
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
	for _, p := range c.pods {
		c.byNS[p.pod.Namespace] = append(c.byNS[p.pod.Namespace], p)
	}
	for i := range in.InstanceIPs {
		s := &in.InstanceIPs[i].Spec
		if s.Pod == nil {
			continue
		}
		p := index[podID{s.Pod.Namespace, s.Pod.Name}]
		if p == nil || s.Pod.UID != "" && p.pod.UID != "" && string(p.pod.UID) != s.Pod.UID {
			continue // another pod of that name
		}
		ip, err := s.ParseIP()
		if err != nil {
			continue
		}
		p.addrs[s.Attachment] = append(p.addrs[s.Attachment], ip)
	}
	for _, p := range c.pods {
		for _, a := range p.addrs {
			slices.SortFunc(a, netip.Addr.Compare)
		}
	}
	return c
}

// podNetworks is the default network and the networks of the pod's
// annotation (either form; namespace defaulting to the pod's), each once.
// An annotation that does not parse selects nothing more: the CNI refuses
// such a pod's secondary interfaces.
func podNetworks(p *corev1.Pod, defaultNetwork string) []string {
	out := []string{defaultNetwork}
	ann := strings.TrimSpace(p.Annotations[NetworksAnnotation])
	if ann == "" {
		return out
	}
	elems, err := nadutils.ParseNetworkAnnotation(ann, p.Namespace)
	if err != nil {
		return out
	}
	for _, e := range elems {
		if e == nil || e.Name == "" {
			continue
		}
		key := e.Namespace + "/" + e.Name
		if !slices.Contains(out, key) {
			out = append(out, key)
		}
	}
	return out
}

func (c *computation) report(kind, ns, name, reason, format string, args ...any) {
	c.found[Problem{Kind: kind, Namespace: ns, Name: name, Reason: reason, Message: fmt.Sprintf(format, args...)}] = true
}

func (c *computation) problems() []Problem {
	out := make([]Problem, 0, len(c.found))
	for p := range c.found {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Object() != b.Object() {
			return a.Object() < b.Object()
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Message < b.Message
	})
	return out
}

// compiledPolicy is one policy object, checked and parsed once.
type compiledPolicy struct {
	kind, namespace, name string
	label                 string // Rule.Policy
	// networks is what it applies to: the default network for a
	// NetworkPolicy, the policy-for NADs xvr serves for a MultiNetworkPolicy.
	networks []string
	selector labels.Selector
	isolates [2]bool // by policy.Direction
	rules    [2][]*compiledRule
}

type compiledRule struct {
	allPeers bool
	peers    []*compiledPeer
	allPorts bool
	ports    []policy.Port // numbered
	named    []namedPort
}

type namedPort struct {
	protocol corev1.Protocol
	name     string
}

// compiledPeer is a NetworkPolicyPeer: an ipBlock, or pods by selectors.
type compiledPeer struct {
	block *policy.Peer
	// nsSel nil: the policy's namespace. podSel nil: every pod.
	nsSel, podSel labels.Selector
	namespace     string
}

// compilePolicies checks and parses every policy, sorted by kind,
// namespace and name, reporting its problems.
func (c *computation) compilePolicies() {
	for i := range c.in.NetworkPolicies {
		p := &c.in.NetworkPolicies[i]
		c.policies = append(c.policies, c.compile(KindNetworkPolicy, &p.ObjectMeta, &p.Spec, []string{c.in.DefaultNetwork}))
	}
	for i := range c.in.MultiNetworkPolicies {
		p := &c.in.MultiNetworkPolicies[i]
		c.policies = append(c.policies, c.compile(KindMultiNetworkPolicy, &p.ObjectMeta, &p.Spec, c.policyFor(p)))
	}
	sort.Slice(c.policies, func(i, j int) bool { return c.policies[i].label < c.policies[j].label })
}

// policyFor is the NADs of p's policy-for that xvr serves; the others are
// reported.
func (c *computation) policyFor(p *mnp.MultiNetworkPolicy) []string {
	var out []string
	keys := p.PolicyFor()
	if len(keys) == 0 {
		c.report(KindMultiNetworkPolicy, p.Namespace, p.Name, ReasonNoNetwork,
			"the %s annotation names no network: the policy applies to nothing", mnp.PolicyForAnnotation)
	}
	for _, key := range keys {
		xvr, ok := c.in.NADs[key]
		switch {
		case !ok:
			c.report(KindMultiNetworkPolicy, p.Namespace, p.Name, ReasonNetworkNotFound,
				"%s names %s: no such NetworkAttachmentDefinition", mnp.PolicyForAnnotation, key)
		case !xvr:
			c.report(KindMultiNetworkPolicy, p.Namespace, p.Name, ReasonNotXVRNetwork,
				"%s names %s, a NetworkAttachmentDefinition xvr does not serve: not enforced on it", mnp.PolicyForAnnotation, key)
		default:
			out = append(out, key)
		}
	}
	return out
}

func (c *computation) compile(kind string, m *metav1.ObjectMeta, s *networkingv1.NetworkPolicySpec, networks []string) *compiledPolicy {
	cp := &compiledPolicy{kind: kind, namespace: m.Namespace, name: m.Name, label: objectName(kind, m.Namespace, m.Name), networks: networks}
	report := func(reason, format string, args ...any) { c.report(kind, m.Namespace, m.Name, reason, format, args...) }
	sel, err := metav1.LabelSelectorAsSelector(&s.PodSelector)
	if err != nil {
		report(ReasonInvalidSelector, "podSelector: %v: the policy selects no pod", err)
		sel = labels.Nothing()
	}
	cp.selector = sel
	if len(s.PolicyTypes) == 0 {
		cp.isolates[policy.Ingress] = true
		cp.isolates[policy.Egress] = len(s.Egress) > 0
	}
	for _, t := range s.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			cp.isolates[policy.Ingress] = true
		case networkingv1.PolicyTypeEgress:
			cp.isolates[policy.Egress] = true
		default:
			report(ReasonUnknownPolicyType, "policyTypes: %q is neither Ingress nor Egress: ignored", t)
		}
	}
	if cp.isolates[policy.Ingress] {
		for i := range s.Ingress {
			r := &s.Ingress[i]
			cp.rules[policy.Ingress] = append(cp.rules[policy.Ingress], c.compileRule(report, fmt.Sprintf("ingress[%d]", i), m.Namespace, r.From, r.Ports))
		}
	}
	if cp.isolates[policy.Egress] {
		for i := range s.Egress {
			r := &s.Egress[i]
			cp.rules[policy.Egress] = append(cp.rules[policy.Egress], c.compileRule(report, fmt.Sprintf("egress[%d]", i), m.Namespace, r.To, r.Ports))
		}
	}
	return cp
}

type reportFunc func(reason, format string, args ...any)

func (c *computation) compileRule(report reportFunc, where, namespace string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) *compiledRule {
	r := &compiledRule{allPeers: len(peers) == 0, allPorts: len(ports) == 0}
	for i := range peers {
		if p := compilePeer(report, fmt.Sprintf("%s peer %d", where, i), namespace, &peers[i]); p != nil {
			r.peers = append(r.peers, p)
		}
	}
	for i := range ports {
		compilePort(report, fmt.Sprintf("%s port %d", where, i), &ports[i], r)
	}
	return r
}

// compilePeer returns nil for a peer that matches nothing xvr can enforce.
func compilePeer(report reportFunc, where, namespace string, p *networkingv1.NetworkPolicyPeer) *compiledPeer {
	if p.IPBlock != nil {
		block, reason, err := ipBlock(p.IPBlock)
		if err != nil {
			report(reason, "%s: ipBlock %s: %v: the peer is ignored", where, p.IPBlock.CIDR, err)
			return nil
		}
		return &compiledPeer{block: block}
	}
	if p.PodSelector == nil && p.NamespaceSelector == nil {
		return nil // an empty peer: the API server refuses it; it matches nothing
	}
	cp := &compiledPeer{namespace: namespace}
	for _, s := range []struct {
		sel *metav1.LabelSelector
		out *labels.Selector
		is  string
	}{{p.PodSelector, &cp.podSel, "podSelector"}, {p.NamespaceSelector, &cp.nsSel, "namespaceSelector"}} {
		if s.sel == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(s.sel)
		if err != nil {
			report(ReasonInvalidSelector, "%s: %s: %v: the peer matches nothing", where, s.is, err)
			return nil
		}
		*s.out = sel
	}
	return cp
}

// ipBlock parses an ipBlock; the reason says what is wrong with a bad one.
func ipBlock(b *networkingv1.IPBlock) (*policy.Peer, string, error) {
	cidr, err := netip.ParsePrefix(strings.TrimSpace(b.CIDR))
	if err != nil {
		return nil, ReasonInvalidIPBlock, err
	}
	if !cidr.Addr().Is4() {
		return nil, ReasonIPv6, fmt.Errorf("xvr enforces IPv4 only")
	}
	cidr = cidr.Masked()
	peer := &policy.Peer{CIDR: cidr.String()}
	for _, s := range b.Except {
		e, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, ReasonInvalidIPBlock, fmt.Errorf("except %q: %w", s, err)
		}
		if !e.Addr().Is4() || e.Bits() < cidr.Bits() || !cidr.Contains(e.Addr()) {
			return nil, ReasonInvalidIPBlock, fmt.Errorf("except %s is not inside %s", s, cidr)
		}
		peer.Except = append(peer.Except, e.Masked().String())
	}
	return peer, "", nil
}

// compilePort adds a port entry to r, or reports why it is dropped.
func compilePort(report reportFunc, where string, p *networkingv1.NetworkPolicyPort, r *compiledRule) {
	proto := corev1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	if _, err := policy.ProtoNumber(string(proto)); err != nil || proto == "" {
		report(ReasonInvalidPort, "%s: protocol %q: want TCP, UDP or SCTP: the port is ignored", where, proto)
		return
	}
	if p.Port == nil {
		if p.EndPort != nil {
			report(ReasonInvalidPort, "%s: endPort without port: the port is ignored", where)
			return
		}
		r.ports = append(r.ports, policy.Port{Protocol: string(proto)})
		return
	}
	if p.Port.Type == intstr.String {
		name := p.Port.StrVal
		if errs := validation.IsValidPortName(name); len(errs) > 0 {
			report(ReasonInvalidPort, "%s: port %q: %s: the port is ignored", where, name, strings.Join(errs, "; "))
			return
		}
		if p.EndPort != nil {
			report(ReasonInvalidPort, "%s: endPort with the named port %q: the port is ignored", where, name)
			return
		}
		r.named = append(r.named, namedPort{protocol: proto, name: name})
		return
	}
	n := p.Port.IntVal
	if n < 1 || n > 65535 {
		report(ReasonInvalidPort, "%s: port %d is not in 1-65535: the port is ignored", where, n)
		return
	}
	port := policy.Port{Protocol: string(proto), Port: uint16(n)}
	if p.EndPort != nil {
		e := *p.EndPort
		if e < n || e > 65535 {
			report(ReasonInvalidPort, "%s: endPort %d is not in %d-65535: the port is ignored", where, e, n)
			return
		}
		if e > n {
			port.EndPort = uint16(e)
		}
	}
	r.ports = append(r.ports, port)
}

// interfacePolicy is the union of the policies selecting pod p's
// interface on network.
func (c *computation) interfacePolicy(p *podInfo, network string) policy.Set {
	var set policy.Set
	for _, cp := range c.policies {
		if cp.namespace != p.pod.Namespace || !slices.Contains(cp.networks, network) || !cp.selector.Matches(labels.Set(p.pod.Labels)) {
			continue
		}
		if cp.isolates[policy.Ingress] {
			set.Ingress = true
			for _, r := range cp.rules[policy.Ingress] {
				set.IngressRules = append(set.IngressRules, c.ingressRules(cp, r, p, network)...)
			}
		}
		if cp.isolates[policy.Egress] {
			set.Egress = true
			for _, r := range cp.rules[policy.Egress] {
				set.EgressRules = append(set.EgressRules, c.egressRules(cp, r, network)...)
			}
		}
	}
	return set
}

// ingressRules translates an ingress rule of a policy selecting p: named
// ports resolve against p's own container ports.
func (c *computation) ingressRules(cp *compiledPolicy, r *compiledRule, p *podInfo, network string) []policy.Rule {
	out := policy.Rule{Policy: cp.label, AllPorts: r.allPorts, Ports: slices.Clone(r.ports)}
	for _, n := range r.named {
		if num, ok := containerPort(p.pod, n); ok {
			out.Ports = append(out.Ports, policy.Port{Protocol: string(n.protocol), Port: num})
		}
	}
	if !out.AllPorts && len(out.Ports) == 0 {
		return nil
	}
	out.Ports = sortPorts(out.Ports)
	if r.allPeers {
		out.AllPeers = true
		return []policy.Rule{out}
	}
	out.Peers = c.rulePeers(r, network)
	if len(out.Peers) == 0 {
		return nil
	}
	return []policy.Rule{out}
}

// rulePeers is c.peers of a rule, memoized.
func (c *computation) rulePeers(r *compiledRule, network string) []policy.Peer {
	key := ruleKey{r, network}
	if ps, ok := c.peersCache[key]; ok {
		return ps
	}
	ps := c.peers(r.peers, network)
	c.peersCache[key] = ps
	return ps
}

// egressRules translates an egress rule: numbered ports with every peer,
// then one rule per distinct number a named port resolves to on the peer
// pods (ipBlocks never match a named port; with no peers listed, every pod
// having the port is one).
func (c *computation) egressRules(cp *compiledPolicy, r *compiledRule, network string) []policy.Rule {
	key := ruleKey{r, network}
	if rules, ok := c.egressCache[key]; ok {
		return rules
	}
	rules := c.resolveEgress(cp, r, network)
	c.egressCache[key] = rules
	return rules
}

func (c *computation) resolveEgress(cp *compiledPolicy, r *compiledRule, network string) []policy.Rule {
	var out []policy.Rule
	if r.allPorts || len(r.ports) > 0 {
		base := policy.Rule{Policy: cp.label, AllPorts: r.allPorts, Ports: sortPorts(slices.Clone(r.ports)), AllPeers: r.allPeers}
		if !r.allPeers {
			base.Peers = c.rulePeers(r, network)
		}
		if base.AllPeers || len(base.Peers) > 0 {
			out = append(out, base)
		}
	}
	if len(r.named) == 0 {
		return out
	}
	var pods []*podInfo
	if r.allPeers {
		pods = c.allPods(network)
	} else {
		pods = c.peerPods(r.peers, network)
	}
	byPort := map[policy.Port][]policy.Peer{}
	for _, n := range r.named {
		for _, p := range pods {
			num, ok := containerPort(p.pod, n)
			if !ok {
				continue
			}
			port := policy.Port{Protocol: string(n.protocol), Port: num}
			byPort[port] = append(byPort[port], hostPeers(p.addrs[network])...)
		}
	}
	ports := make([]policy.Port, 0, len(byPort))
	for port := range byPort {
		ports = append(ports, port)
	}
	for _, port := range sortPorts(ports) {
		out = append(out, policy.Rule{Policy: cp.label, Peers: sortPeers(byPort[port]), Ports: []policy.Port{port}})
	}
	return out
}

// peers resolves a rule's peers on network: ipBlocks and the /32s of the
// selected pods, sorted, each once.
func (c *computation) peers(peers []*compiledPeer, network string) []policy.Peer {
	var out []policy.Peer
	for _, p := range peers {
		if p.block != nil {
			out = append(out, policy.Peer{CIDR: p.block.CIDR, Except: slices.Clone(p.block.Except)})
			continue
		}
		for _, pod := range c.selected(p, network) {
			out = append(out, hostPeers(pod.addrs[network])...)
		}
	}
	return sortPeers(out)
}

// peerPods is the pods the rule's pod peers select on network, each once.
func (c *computation) peerPods(peers []*compiledPeer, network string) []*podInfo {
	var out []*podInfo
	for _, p := range peers {
		if p.block == nil {
			for _, pod := range c.selected(p, network) {
				if !slices.Contains(out, pod) {
					out = append(out, pod)
				}
			}
		}
	}
	return out
}

// allPods is every peer pod with an address on network.
func (c *computation) allPods(network string) []*podInfo {
	var out []*podInfo
	for _, p := range c.pods {
		if p.peer && len(p.addrs[network]) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// selected is the peer pods with an address on network that a pod peer
// selects.
func (c *computation) selected(p *compiledPeer, network string) []*podInfo {
	key := peerKey{p, network}
	if pods, ok := c.peerCache[key]; ok {
		return pods
	}
	var namespaces []string
	if p.nsSel == nil {
		namespaces = []string{p.namespace}
	} else {
		for _, ns := range c.namespaces {
			if p.nsSel.Matches(c.nsLabels[ns]) {
				namespaces = append(namespaces, ns)
			}
		}
	}
	var out []*podInfo
	for _, ns := range namespaces {
		for _, pod := range c.byNS[ns] {
			if pod.peer && len(pod.addrs[network]) > 0 && (p.podSel == nil || p.podSel.Matches(labels.Set(pod.pod.Labels))) {
				out = append(out, pod)
			}
		}
	}
	c.peerCache[key] = out
	return out
}

// containerPort resolves a named port against a pod's containers (and
// init containers: sidecars), name and protocol matching.
func containerPort(p *corev1.Pod, n namedPort) (uint16, bool) {
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, ctr := range list {
			for _, cp := range ctr.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				if cp.Name == n.name && proto == n.protocol && cp.ContainerPort > 0 && cp.ContainerPort <= 65535 {
					return uint16(cp.ContainerPort), true
				}
			}
		}
	}
	return 0, false
}

func hostPeers(addrs []netip.Addr) []policy.Peer {
	out := make([]policy.Peer, len(addrs))
	for i, a := range addrs {
		out[i] = policy.Peer{CIDR: netip.PrefixFrom(a, 32).String()}
	}
	return out
}

// sortPeers sorts by prefix (address, then length, then excepts) and
// removes duplicates.
func sortPeers(ps []policy.Peer) []policy.Peer {
	type keyed struct {
		prefix netip.Prefix
		except string
		peer   policy.Peer
	}
	ks := make([]keyed, len(ps))
	for i, p := range ps {
		pf, _ := netip.ParsePrefix(p.CIDR) // the CIDRs are ours: valid
		ks[i] = keyed{prefix: pf, except: strings.Join(p.Except, ","), peer: p}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		if c := a.prefix.Bits() - b.prefix.Bits(); c != 0 {
			return c
		}
		return strings.Compare(a.except, b.except)
	})
	ks = slices.CompactFunc(ks, func(a, b keyed) bool { return a.prefix == b.prefix && a.except == b.except })
	out := ps[:0]
	for _, k := range ks {
		out = append(out, k.peer)
	}
	return out
}

// sortPorts sorts by protocol, port and end port, without duplicates.
func sortPorts(ps []policy.Port) []policy.Port {
	slices.SortFunc(ps, func(a, b policy.Port) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		if c := int(a.Port) - int(b.Port); c != 0 {
			return c
		}
		return int(a.EndPort) - int(b.EndPort)
	})
	return slices.Compact(ps)
}
