package e2e

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvr-project/xvr/vrouter/api"
)

// vnFab is a VN with both fabric forwarding and fabric SNAT.
const vnFab = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-fab
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.30.0/24"
    opencontrail.org/ip_fabric_forwarding: "true"
    opencontrail.org/ip_fabric_snat: "true"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
`

const (
	fabVN  = "default/vn-fab"
	fab1IP = "198.18.30.11"
	fab2IP = "198.18.30.12"
)

// TestFabric: on the overlay topology, a fabric-forwarded VN's pods talk
// across nodes with no tunnel header on the wire; its pods reach the outside
// host (the underlay) source-NATed to the node IP from TF's port pools; the
// outside cannot open a session to a pod; a full flow table refuses new
// flows and keeps existing ones.
func TestFabric(t *testing.T) {
	o, fab1, fab2 := fabricTopo(t)

	t.Run("forwarding-no-tunnel", func(t *testing.T) {
		warmUp(t, fab1.ns, fab2IP)
		pkts := captureAll(t, o, 6, "icmp", func() {
			if out, err := fab1.ping(fab2IP, 3); err != nil {
				t.Errorf("fabric-forwarded ping: %v\n%s\n%s", err, out, o.diag(t))
			}
		})
		plain := 0
		for _, p := range pkts {
			ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ok && p.Layer(layers.LayerTypeUDP) == nil && ip.SrcIP.String() == fab1IP && ip.DstIP.String() == fab2IP {
				plain++
			}
		}
		if plain == 0 {
			t.Fatalf("no plain IPv4 %s -> %s on the fabric among %d ICMP frames", fab1IP, fab2IP, len(pkts))
		}
		if out, err := fab2.ping(fab1IP, 2); err != nil {
			t.Fatalf("fabric-forwarded ping back: %v\n%s", err, out)
		}
	})

	t.Run("snat-outside", func(t *testing.T) {
		var flows []api.Flow
		pkts := captureAll(t, o, 200, "tcp", func() {
			o.underlay.TCPTransfer(t, fab1.ns, netip.MustParseAddr(underlayIP), 5301, 8<<20)
		})
		seen := 0
		for _, p := range pkts {
			ip, ok1 := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			tcp, ok2 := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if !ok1 || !ok2 || ip.DstIP.String() != underlayIP {
				continue
			}
			if ip.SrcIP.String() != nodeIPs[0] || tcp.SrcPort < 56000 || tcp.SrcPort > 57023 {
				t.Fatalf("outside saw %v:%d, want %s and a port in 56000-57023", ip.SrcIP, tcp.SrcPort, nodeIPs[0])
			}
			seen++
		}
		if seen == 0 {
			t.Fatal("no pod traffic to the outside host on the wire")
		}
		o.nodes[0].ctlJSON(t, &flows, "flow")
		if !hasNAT(flows, fab1IP, nodeIPs[0]) {
			t.Fatalf("xvrctl flow shows no nat-src flow of %s to %s: %+v", fab1IP, nodeIPs[0], flows)
		}
	})

	t.Run("no-unsolicited-inbound", func(t *testing.T) {
		before := o.nodes[0].dropCount(t, "snat_no_flow")
		for _, port := range []int{56001, 56500} {
			if out, err := o.underlay.Try("timeout", "3", "nc", "-w", "1", nodeIPs[0], strconv.Itoa(port)); err == nil {
				t.Fatalf("outside opened a session to %s:%d:\n%s", nodeIPs[0], port, out)
			}
		}
		if after := o.nodes[0].dropCount(t, "snat_no_flow"); after <= before {
			t.Fatalf("snat_no_flow went from %d to %d", before, after)
		}
		// The host's own services on the node IP are untouched (ports outside the pools).
		if out, err := o.underlay.Try("ping", "-c", "2", "-W", "1", nodeIPs[0]); err != nil {
			t.Fatalf("node IP unreachable for host traffic: %v\n%s", err, out)
		}
	})
}

// fabricTopo is the overlay topology plus vn-fab on both nodes, a pod on it
// on each node (default route on vn-fab), fabric routes between them, and
// the underlay as the outside host behind both nodes' default routes.
func fabricTopo(t testing.TB, extra ...string) (*overlayTopo, *cniPod, *cniPod) {
	t.Helper()
	o := newOverlayTopo(t, "MPLSoUDP,VXLAN", extra...)
	for _, n := range o.nodes {
		n.apply(t, vnFab)
	}
	sel := func(ip string) string {
		return `[{"name":"vn-fab","ips":["` + ip + `/24"],"default-route":["198.18.30.254"]}]`
	}
	fab1 := o.nodes[0].addPod(t, "default", "fab-one", sel(fab1IP))
	fab2 := o.nodes[1].addPod(t, "default", "fab-two", sel(fab2IP))
	o.nodes[0].mustCtl(t, "route", "add", "--network", fabVN, "--prefix", fab2IP+"/32", "--fabric", nodeIPs[1])
	o.nodes[1].mustCtl(t, "route", "add", "--network", fabVN, "--prefix", fab1IP+"/32", "--fabric", nodeIPs[0])
	// The outside host is the underlay; it sends with complete checksums.
	o.underlay.Run(t, "ethtool", "-K", o.bridge, "tx", "off")
	for _, n := range o.nodes {
		n.ns.Run(t, "ip", "route", "add", "default", "via", underlayIP)
	}
	return o, fab1, fab2
}

// TestFlowTableFull: with room for two flows, a third new flow is dropped
// and counted while an existing flow keeps working.
func TestFlowTableFull(t *testing.T) {
	o, fab1, _ := fabricTopo(t, "-flows", "2")
	warmUp(t, fab1.ns, underlayIP) // flows 1..: each ping run is one ICMP flow (its identifier)
	long := fab1.ns.Start(t, "ping", "-i", "0.2", "-c", "25", "-W", "1", underlayIP)
	before := o.nodes[0].dropCount(t, "flow_table_full")
	for range 3 { // at most one more fits; the others are refused
		fab1.ns.Try("ping", "-c", "1", "-W", "1", underlayIP)
	}
	if after := o.nodes[0].dropCount(t, "flow_table_full"); after <= before {
		t.Fatalf("flow_table_full went from %d to %d with new flows beyond the table's size\n%s", before, after, o.diag(t))
	}
	if err := long.Wait(15 * time.Second); err != nil {
		t.Logf("long ping: %v", err)
	}
	if got := strings.Count(long.Output(), "bytes from "+underlayIP); got < 20 {
		t.Fatalf("the existing flow got %d of 25 replies while the table was full:\n%s", got, long.Output())
	}
}

// captureAll captures up to count frames matching filter on node 0's bridge port.
func captureAll(t *testing.T, o *overlayTopo, count int, filter string, gen func()) []gopacket.Packet {
	t.Helper()
	return captureFilter(t, o.underlay, o.nodes[0].port, count, filter, gen)
}

func hasNAT(flows []api.Flow, pod, node string) bool {
	for _, f := range flows {
		if f.Action == "nat-src" && strings.HasPrefix(f.Src, pod+":") && strings.HasPrefix(f.NAT, node+":") {
			return true
		}
	}
	return false
}
