package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/xvr-project/xvr/vrouter/api"
)

// table collects rows of aligned columns.
type table struct {
	tw *tabwriter.Writer
}

// row writes one row; empty cells are shown as "-".
func (t *table) row(cells ...any) {
	strs := make([]string, len(cells))
	for i, c := range cells {
		s := fmt.Sprint(c)
		if s == "" {
			s = "-"
		}
		strs[i] = s
	}
	fmt.Fprintln(t.tw, strings.Join(strs, "\t"))
}

// print writes v as indented JSON with -o json, else the table fill makes.
func (c *cli) print(v any, fill func(*table)) error {
	if c.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	t := &table{tw: tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)}
	fill(t)
	return t.tw.Flush()
}

func networkTable(t *table, nets []api.Network) {
	t.row("NAMESPACE", "NAME", "VN", "PROJECT", "CIDR", "GATEWAY", "VRF", "FLAGS")
	for _, n := range nets {
		t.row(n.Namespace, n.Name, n.VNName, n.Project, networkCIDR(n), n.Gateway, n.VRF, networkFlags(n))
	}
}

// networkCIDR is the CIDR, or "ref:<domain>" for a reference to a VN whose
// CIDR xvrd does not know (its name and project are in their own columns).
func networkCIDR(n api.Network) string {
	if n.Ref != nil && n.CIDR == "" {
		return "ref:" + n.Ref.Domain
	}
	return n.CIDR
}

func networkFlags(n api.Network) string {
	var f []string
	if n.FabricForwarding {
		f = append(f, "fabric")
	}
	if n.FabricSNAT {
		f = append(f, "snat")
	}
	return strings.Join(f, ",")
}

func portTable(t *table, ports []api.Port) {
	t.row("ID", "NETWORK", "HOST-IF", "IP", "MAC", "VIF", "STATE")
	for _, p := range ports {
		t.row(p.ID, p.Network, p.HostIfName, p.IP, p.MAC, p.Vif, p.State)
	}
}

func routeTable(t *table, routes []api.Route) {
	t.row("NETWORK", "PREFIX", "NEXT-HOP", "SOURCE")
	for _, r := range routes {
		src := r.Source
		if src == "" {
			src = "static"
		}
		t.row(r.Network, r.Prefix, nextHopString(r.NextHop), src)
	}
}

func nextHopString(nh api.RouteNextHop) string {
	switch nh.Type {
	case api.NextHopPort:
		return "port " + nh.Port
	case api.NextHopTunnel:
		return fmt.Sprintf("tunnel %s label %d vni %d", nh.Node, nh.Label, nh.VNI)
	case api.NextHopFabric:
		return "fabric " + nh.Node
	}
	return nh.Type
}

func vifTable(t *table, vifs []api.Vif) {
	t.row("VIF", "NAME", "TYPE", "NETWORK", "VN", "VRF", "MAC", "IP", "STATE", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "DROPS", "SHORTCUT-PKTS")
	for _, v := range vifs {
		t.row(v.ID, v.Name, v.Type, v.Network, v.VN, v.VRF, v.MAC, v.IP, v.State,
			v.RXPackets, v.RXBytes, v.TXPackets, v.TXBytes, v.Drops, v.ShortcutPackets)
	}
}

func rtTable(t *table, rt []api.RouteEntry) {
	t.row("PREFIX", "NH", "TYPE", "VIF", "STATIC")
	for _, e := range rt {
		t.row(e.Prefix, e.NextHop, e.Type, vifCell(e.Vif, e.Type), yes(e.Static))
	}
}

// vifCell shows a vif only for next hops that have one.
func vifCell(vif uint32, typ string) string {
	if vif == 0 && typ != api.NextHopEncap {
		return ""
	}
	return fmt.Sprint(vif)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func nhTable(t *table, nhs []api.NextHop) {
	t.row("ID", "TYPE", "VRF", "VIF", "SRC-MAC", "DST-MAC", "TUNNEL", "REFS")
	for _, n := range nhs {
		t.row(n.ID, n.Type, n.VRF, vifCell(n.Vif, n.Type), n.SrcMAC, n.DstMAC, tunnelCell(n), n.Refs)
	}
}

// tunnelCell is "MPLSoUDP 198.18.200.2 label 1002" for tunnel next hops.
func tunnelCell(n api.NextHop) string {
	switch {
	case n.Type == api.NextHopFabric:
		return "native " + n.Node
	case n.Type != api.NextHopTunnel:
		return ""
	case n.Encap == "VXLAN":
		return fmt.Sprintf("VXLAN %s vni %d", n.Node, n.VNI)
	}
	return fmt.Sprintf("%s %s label %d", n.Encap, n.Node, n.Label)
}

func dropTable(t *table, drops []api.DropStat) {
	t.row("REASON", "COUNT")
	for _, d := range drops {
		t.row(d.Reason, d.Count)
	}
}

func statusTable(t *table, st api.Status, socket string) {
	t.row("socket:", socket)
	t.row("version:", st.Version)
	t.row("uptime:", st.Uptime)
	t.row("pollers:", st.Pollers)
	t.row("mac:", st.MAC)
}

func flowTable(t *table, flows []api.Flow) {
	t.row("INDEX", "REV", "VRF", "PROTO", "SOURCE", "DESTINATION", "ACTION", "NAT", "PKTS", "BYTES", "AGE", "VERDICT", "POLICY")
	for _, f := range flows {
		t.row(f.Index, f.RevIndex, f.VRF, f.Proto, f.Src, f.Dst, f.Action, f.NAT, f.Packets, f.Bytes, fmt.Sprintf("%ds", f.AgeSecs),
			or(f.Verdict, "-"), or(f.Policy, "-"))
	}
}
