package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/dataplane"
)

// policies is the node's network policy as set, compiled once per change.
type policies struct {
	spec api.Policies
	wire []byte              // spec as JSON: SetPolicies with the same bytes is a no-op
	byIf map[string][]entry  // by ifKey(namespace, name, network)
	old  map[string]*entryCC // by the entry's JSON: reused when an entry is unchanged
}

// entry is one InterfacePolicy, compiled.
type entry struct {
	uid string
	c   *policy.Compiled
}

// entryCC remembers a compiled entry across SetPolicies calls.
type entryCC struct{ c *policy.Compiled }

// pending is the policy of an interface with no entry while enforcing:
// isolated both ways, no rules (fail closed until the controller speaks).
var pending = mustCompile(&policy.Set{Ingress: true, Egress: true})

func mustCompile(s *policy.Set) *policy.Compiled {
	c, err := policy.Compile(s)
	if err != nil {
		panic(fmt.Sprintf("compiling a constant policy: %v", err))
	}
	return c
}

func ifKey(namespace, name, network string) string { return namespace + "/" + name + "|" + network }

// SetPolicies replaces the node's network policy: every entry is compiled
// (the first that does not is a 400 naming it), stored, and published to
// the forwarder. The same policy again changes nothing.
func (a *Agent) SetPolicies(_ context.Context, in api.Policies) error {
	wire, err := json.Marshal(in)
	if err != nil {
		return api.BadRequest("encoding policies: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pol.wire != nil && bytes.Equal(wire, a.pol.wire) {
		return nil
	}
	next, err := compilePolicies(in, wire, a.pol.old)
	if err != nil {
		return err
	}
	if err := a.cfg.Store.PutPolicies(in); err != nil {
		return fmt.Errorf("storing policies: %w", err)
	}
	a.pol = next
	a.publish()
	return nil
}

// compilePolicies validates and compiles in, reusing old's Compiled of the
// entries that did not change (so their vifs keep their policy pointer).
func compilePolicies(in api.Policies, wire []byte, old map[string]*entryCC) (policies, error) {
	p := policies{spec: cloneIPolicies(in), wire: wire, byIf: map[string][]entry{}, old: map[string]*entryCC{}}
	seen := map[string]bool{}
	for i, e := range in.Interfaces {
		name := fmt.Sprintf("interfaces[%d] (pod %s/%s network %s)", i, e.Pod.Namespace, e.Pod.Name, e.Network)
		if e.Pod.Namespace == "" || e.Pod.Name == "" || e.Network == "" {
			return policies{}, api.BadRequest("%s: pod namespace, pod name and network are required", name)
		}
		k := ifKey(e.Pod.Namespace, e.Pod.Name, e.Network)
		if seen[k+"|"+e.Pod.UID] {
			return policies{}, api.BadRequest("%s: a second entry for the same interface", name)
		}
		seen[k+"|"+e.Pod.UID] = true
		ew, err := json.Marshal(e)
		if err != nil {
			return policies{}, api.BadRequest("%s: %v", name, err)
		}
		cc := old[string(ew)]
		if cc == nil {
			c, err := policy.Compile(&e.Policy)
			if err != nil {
				return policies{}, api.BadRequest("%s: %v", name, err)
			}
			cc = &entryCC{c: c}
		}
		p.old[string(ew)] = cc
		p.byIf[k] = append(p.byIf[k], entry{uid: e.Pod.UID, c: cc.c})
	}
	return p, nil
}

// Policies returns the node's network policy as last set.
func (a *Agent) Policies(context.Context) api.Policies {
	a.mu.Lock()
	defer a.mu.Unlock()
	return cloneIPolicies(a.pol.spec)
}

func cloneIPolicies(in api.Policies) api.Policies {
	out := api.Policies{Enforce: in.Enforce}
	if in.Interfaces != nil {
		out.Interfaces = make([]api.InterfacePolicy, len(in.Interfaces))
		for i, e := range in.Interfaces {
			out.Interfaces[i] = api.InterfacePolicy{Pod: e.Pod, Network: e.Network, Policy: e.Policy.Clone()}
		}
	}
	return out
}

// loadPolicies restores the stored policy; one that no longer compiles
// is logged and the node fails closed (enforcing, every pod pending).
func (a *Agent) loadPolicies() error {
	in, err := a.cfg.Store.Policies()
	if err != nil {
		return fmt.Errorf("loading policies: %w", err)
	}
	wire, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding stored policies: %w", err)
	}
	p, err := compilePolicies(in, wire, nil)
	if err != nil {
		a.cfg.Log.Error("stored policies skipped: every pod isolated until they are set again", "err", err)
		p = policies{spec: api.Policies{Enforce: true}, byIf: map[string][]entry{}}
	}
	a.pol = p
	return nil
}

// portPolicy is the Compiled a port's vif gets: its entry's (matched by pod
// namespace, name and network, and UID when both sides have one, an exact
// UID first), pending when enforcing without one, nil otherwise.
func (a *Agent) portPolicy(p *port) *policy.Compiled {
	ref := p.spec.Pod
	if ref == nil || p.spec.ID == HostPortID {
		return nil
	}
	var match *policy.Compiled
	for _, e := range a.pol.byIf[ifKey(ref.Namespace, ref.Name, p.spec.Network)] {
		switch {
		case e.uid != "" && e.uid == ref.UID:
			return e.c
		case e.uid == "" || ref.UID == "":
			if match == nil {
				match = e.c
			}
		}
	}
	if match == nil && a.pol.spec.Enforce {
		return pending
	}
	return match
}

// vifName is how a vif is named in flow verdicts: "<ns>/<pod> <ifname>",
// the port id for a hand-made port.
func vifName(p *port) string {
	if ref := p.spec.Pod; ref != nil && p.spec.IfName != "" {
		return ref.Namespace + "/" + ref.Name + " " + p.spec.IfName
	}
	return p.spec.ID
}

// publishPolicies sets each pod vif's policy in s and bumps the policy
// generation when any vif's policy differs from the last published.
func (a *Agent) publishPolicies(s *dataplane.Snapshot) {
	now := make(map[uint32]*policy.Compiled, len(a.ports))
	for _, p := range a.ports {
		c := a.portPolicy(p)
		v := &s.Vifs[p.spec.Vif]
		v.Policy, v.Name = c, vifName(p)
		if c != nil {
			now[p.spec.Vif] = c
		}
	}
	changed := len(now) != len(a.lastPol)
	for vif, c := range now {
		if a.lastPol[vif] != c {
			changed = true
			break
		}
	}
	if changed {
		a.polGen++
	}
	a.lastPol = now
	s.PolicyGen = a.polGen
	s.ServiceNets = a.serviceNets
}

// PolicyFlows counts the flows network policy allowed and denied since
// start (new flows, and flows decided again after a policy change).
func (a *Agent) PolicyFlows() (allowed, denied uint64) {
	return a.polStats.Allowed.Load(), a.polStats.Denied.Load()
}
