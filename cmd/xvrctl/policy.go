package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
)

// policedIf is one policed pod interface as `xvrctl policy` shows it.
type policedIf struct {
	Interface string `json:"interface"` // "<ns>/<pod> <ifname>"
	Port      string `json:"port"`
	Vif       uint32 `json:"vif"`
	Network   string `json:"network"`
	// Pending: enforcing and no entry yet, so isolated with no rules.
	Pending bool       `json:"pending,omitempty"`
	Policy  policy.Set `json:"policy"`
}

func (c *cli) policy(args []string) error {
	return show(c, "policy", args, policedIfs, policyTable)
}

// policedIfs joins the node's policy with its ports, matching them as xvrd
// does: pod namespace, name and network, the UID when both have one.
func policedIfs(cl *api.Client, ctx context.Context) ([]policedIf, error) {
	pol, err := cl.Policies(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := cl.ListPorts(ctx)
	if err != nil {
		return nil, err
	}
	out := []policedIf{}
	for _, p := range ports {
		if p.Pod == nil {
			continue
		}
		e, ok := entryOf(pol.Interfaces, p)
		if !ok && !pol.Enforce {
			continue
		}
		pi := policedIf{Interface: p.Pod.Namespace + "/" + p.Pod.Name + " " + or(p.IfName, "?"), Port: p.ID, Vif: p.Vif,
			Network: p.Network, Pending: !ok, Policy: e.Policy}
		if !ok {
			pi.Policy = policy.Set{Ingress: true, Egress: true}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Interface < out[j].Interface })
	return out, nil
}

// entryOf is the entry of port p: an exact UID first, else one where
// either side has no UID.
func entryOf(entries []api.InterfacePolicy, p api.Port) (api.InterfacePolicy, bool) {
	var match *api.InterfacePolicy
	for i, e := range entries {
		if e.Pod.Namespace != p.Pod.Namespace || e.Pod.Name != p.Pod.Name || e.Network != p.Network {
			continue
		}
		switch {
		case e.Pod.UID != "" && e.Pod.UID == p.Pod.UID:
			return e, true
		case (e.Pod.UID == "" || p.Pod.UID == "") && match == nil:
			match = &entries[i]
		}
	}
	if match == nil {
		return api.InterfacePolicy{}, false
	}
	return *match, true
}

// policyTable shows one row per rule (one for an interface with none).
func policyTable(t *table, ifs []policedIf) {
	t.row("INTERFACE", "VIF", "NETWORK", "ISOLATION", "DIRECTION", "POLICY", "PEERS", "PORTS")
	for _, pi := range ifs {
		n := 0
		for _, d := range []policy.Direction{policy.Ingress, policy.Egress} {
			for _, r := range pi.Policy.Rules(d) {
				t.row(pi.Interface, pi.Vif, pi.Network, isolation(pi), d, r.Policy, peersCell(r), portsCell(r))
				n++
			}
		}
		if n == 0 {
			name := "-"
			if pi.Pending {
				name = "pending"
			}
			t.row(pi.Interface, pi.Vif, pi.Network, isolation(pi), "-", name, "-", "-")
		}
	}
}

func isolation(pi policedIf) string {
	var dirs []string
	if pi.Policy.Ingress {
		dirs = append(dirs, "ingress")
	}
	if pi.Policy.Egress {
		dirs = append(dirs, "egress")
	}
	return or(strings.Join(dirs, "+"), "none")
}

func peersCell(r policy.Rule) string {
	if r.AllPeers {
		return "all"
	}
	l := make([]string, len(r.Peers))
	for i, p := range r.Peers {
		l[i] = p.CIDR
		if len(p.Except) > 0 {
			l[i] += " except " + strings.Join(p.Except, " ")
		}
	}
	return strings.Join(l, ",")
}

func portsCell(r policy.Rule) string {
	if r.AllPorts {
		return "all"
	}
	l := make([]string, len(r.Ports))
	for i, p := range r.Ports {
		switch {
		case p.Port == 0:
			l[i] = p.Protocol
		case p.EndPort > p.Port:
			l[i] = fmt.Sprintf("%s/%d-%d", p.Protocol, p.Port, p.EndPort)
		default:
			l[i] = fmt.Sprintf("%s/%d", p.Protocol, p.Port)
		}
	}
	return strings.Join(l, ",")
}
