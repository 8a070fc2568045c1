package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// The overlay topology: two node namespaces, each with a fabric veth whose
// peer is a port of a Linux bridge in an underlay namespace (which also has
// underlayIP on the bridge). Pods are attached with the real CNI plugin.
const (
	underlayIP = "198.18.200.254"
	vtepIP     = "198.18.200.3"
	vtepAddr   = "198.18.10.50" // the kernel VTEP's address inside vn-left-1

	left1IP  = "198.18.10.11" // vn-left-1 pod on node 1
	left2IP  = "198.18.10.12" // vn-left-1 pod on node 2
	right2IP = "198.18.20.12" // vn-right-1 pod on node 2

	leftVN  = "default/vn-left-1"
	rightVN = "default/vn-right-1"
)

var (
	nodeIPs      = [2]string{"198.18.200.1", "198.18.200.2"}
	nodeMACs     = [2]string{vrouterMAC, "02:78:76:72:00:02"}
	nodeDefCIDRs = [2]string{"198.18.100.0/24", "198.18.101.0/24"}
)

// overlayNode is an xvrd owning a fabric veth in its node namespace.
type overlayNode struct {
	*cniNode
	ip     string // the node IP on the fabric
	fabric string // the fabric veth inside the node namespace
	port   string // its peer, a port of the underlay bridge
}

// overlayTopo is two overlay nodes on one underlay with pods on vn-left-1
// (left1 on node 0, left2 on node 1) and vn-right-1 (right2 on node 1).
type overlayTopo struct {
	encap    string
	underlay *nettest.NS
	bridge   string
	nodes    [2]*overlayNode
	left1    *cniPod
	left2    *cniPod
	right2   *cniPod
	vni      map[string]uint32    // VN key -> VNI
	labels   [2]map[string]uint32 // per node: VN key -> its MPLS label
	extra    []string             // more xvrd flags
}

// newOverlayTopo builds the topology with xvrd's -encap set to encap and
// adds, on each node, /32 tunnel routes for the other node's vn-left-1 pod.
func newOverlayTopo(t testing.TB, encap string, extra ...string) *overlayTopo {
	t.Helper()
	nettest.RequireRoot(t)
	o := newUnderlay(t, "xul", "xbr")
	o.encap, o.vni, o.extra = encap, map[string]uint32{}, extra
	for i := range o.nodes {
		o.nodes[i] = o.newNode(t, i)
		o.nodes[i].apply(t, twoVNs)
	}
	o.readVNs(t)
	o.left1 = o.nodes[0].addPod(t, "default", "ov-left1", `[{"name":"vn-left-1","ips":["`+left1IP+`/24"]}]`)
	o.left2 = o.nodes[1].addPod(t, "default", "ov-left2", `[{"name":"vn-left-1","ips":["`+left2IP+`/24"]}]`)
	o.right2 = o.nodes[1].addPod(t, "default", "ov-right2", `[{"name":"vn-right-1","ips":["`+right2IP+`/24"]}]`)
	o.tunnelRoute(t, 0, leftVN, left2IP+"/32", 1)
	o.tunnelRoute(t, 1, leftVN, left1IP+"/32", 0)
	return o
}

// newUnderlay makes the underlay: a namespace (name prefix nsPrefix) with a
// bridge (brPrefix) holding underlayIP/24, IPv6 off; fabricLink connects
// nodes to it.
func newUnderlay(t testing.TB, nsPrefix, brPrefix string) *overlayTopo {
	t.Helper()
	o := &overlayTopo{underlay: nettest.NewNS(t, nsPrefix), bridge: nettest.Name(t, brPrefix)}
	o.underlay.Run(t, "ip", "link", "add", o.bridge, "type", "bridge")
	delLinkOnCleanup(t, o.underlay, o.bridge)
	o.underlay.Run(t, "sysctl", "-qw", "net.ipv6.conf."+o.bridge+".disable_ipv6=1")
	o.underlay.Run(t, "ip", "addr", "add", underlayIP+"/24", "dev", o.bridge)
	o.underlay.Run(t, "ip", "link", "set", o.bridge, "up")
	return o
}

// fabricLink connects a new namespace to the underlay bridge: a veth whose
// end dev (named with prefix) gets ip/24 in ns. Transmit checksum offload is
// off on both ends, as on the pod veths: a real NIC hands the kernel complete
// checksums, a veth hands partial ones that an XDP path cannot see through.
func (o *overlayTopo) fabricLink(t testing.TB, ns *nettest.NS, prefix, ip string) (dev, port string) {
	t.Helper()
	dev, port = nettest.Name(t, prefix), nettest.Name(t, "xup")
	o.underlay.Run(t, "ip", "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns.Name)
	delLinkOnCleanup(t, o.underlay, port)
	o.underlay.Run(t, "sysctl", "-qw", "net.ipv6.conf."+port+".disable_ipv6=1")
	o.underlay.Run(t, "ethtool", "-K", port, "tx", "off")
	o.underlay.Run(t, "ip", "link", "set", port, "master", o.bridge, "up")
	ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
	for _, k := range []string{"all", "default", dev} {
		ns.Run(t, "sysctl", "-qw", "net.ipv4.conf."+k+".rp_filter=0")
	}
	ns.Run(t, "ethtool", "-K", dev, "tx", "off")
	ns.Run(t, "ip", "addr", "add", ip+"/24", "dev", dev)
	ns.Run(t, "ip", "link", "set", dev, "up")
	return dev, port
}

// newNode makes node i's namespace and fabric link, then starts xvrd on it
// the way newCNINode does, with the fabric flags.
func (o *overlayTopo) newNode(t testing.TB, i int) *overlayNode {
	t.Helper()
	dir := t.TempDir()
	n := &node{ns: nettest.NewNS(t, "xon"), dir: dir, socket: filepath.Join(dir, "xvrd.sock")}
	if tt, ok := t.(*testing.T); ok {
		n.t = tt
	}
	on := &overlayNode{ip: nodeIPs[i]}
	on.fabric, on.port = o.fabricLink(t, n.ns, "xfb", on.ip)
	on.cniNode = startCNINode(t, n, append([]string{"-mac", nodeMACs[i], "-default-cidr", nodeDefCIDRs[i],
		"-fabric-if", on.fabric, "-node-ip", on.ip, "-encap", o.encap}, o.extra...)...)
	return on
}

// readVNs records each node's label and checks that a VN's VNI is the same
// on both nodes and that labels and VNIs are set.
func (o *overlayTopo) readVNs(t testing.TB) {
	t.Helper()
	for i, n := range o.nodes {
		o.labels[i] = map[string]uint32{}
		for _, vn := range []string{leftVN, rightVN} {
			var nw api.Network
			n.ctlJSON(t, &nw, "network", "get", vn)
			if nw.VNI == 0 || nw.VNI >= 1<<24 || nw.Label == 0 || nw.Label >= 1<<20 {
				t.Fatalf("node %d: network %s has vni %d label %d, want both set and in range", i, vn, nw.VNI, nw.Label)
			}
			if v, ok := o.vni[vn]; ok && v != nw.VNI {
				t.Fatalf("network %s has vni %d on node 0 and %d on node %d", vn, v, nw.VNI, i)
			}
			o.vni[vn], o.labels[i][vn] = nw.VNI, nw.Label
		}
	}
	if o.vni[leftVN] == o.vni[rightVN] || o.labels[0][leftVN] == o.labels[0][rightVN] {
		t.Fatalf("vn-left-1 and vn-right-1 share a vni or label: vni %v labels %v", o.vni, o.labels)
	}
}

// tunnelRoute adds, on node from, a route in vn for prefix through a tunnel
// to node to, with to's label and the VN's VNI.
func (o *overlayTopo) tunnelRoute(t testing.TB, from int, vn, prefix string, to int) {
	t.Helper()
	o.nodes[from].mustCtl(t, "route", "add", "--network", vn, "--prefix", prefix, "--tunnel", nodeIPs[to],
		"--label", strconv.FormatUint(uint64(o.labels[to][vn]), 10), "--vni", strconv.FormatUint(uint64(o.vni[vn]), 10))
}

// diag is what the nodes' introspection shows, for failure messages.
func (o *overlayTopo) diag(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i, n := range o.nodes {
		for _, cmd := range [][]string{{"nh"}, {"rt", "--vn", leftVN}, {"dropstats"}} {
			out, err := n.ctl(cmd...)
			fmt.Fprintf(&b, "--- node %d: xvrctl %s (err %v)\n%s", i, strings.Join(cmd, " "), err, out)
		}
		out, _ := n.ns.Try("ip", "neigh", "show", "dev", n.fabric)
		fmt.Fprintf(&b, "--- node %d: ip neigh on %s\n%s--- node %d: xvrd log tail\n%s\n", i, n.fabric, out, i,
			tail(n.proc.Output(), 1500))
	}
	return b.String()
}

// ping pings dst from the pod's namespace and returns the output and error.
func (p *cniPod) ping(dst string, count int) (string, error) {
	return p.ns.Try("ping", "-c", strconv.Itoa(count), "-W", "1", "-i", "0.2", dst)
}

// capture runs tcpdump for UDP on dev in ns (at most count packets, at most
// 10 s), calls gen once tcpdump listens, and returns the decoded packets.
func capture(t *testing.T, ns *nettest.NS, dev string, count int, gen func()) []gopacket.Packet {
	t.Helper()
	return captureFilter(t, ns, dev, count, "udp", gen)
}

// captureFilter is capture with another tcpdump filter.
func captureFilter(t *testing.T, ns *nettest.NS, dev string, count int, filter string, gen func()) []gopacket.Packet {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cap.pcap")
	p := ns.Start(t, "timeout", "10", "tcpdump", "-i", dev, "-w", file, "-U", "-Z", "root", "-n",
		"-c", strconv.Itoa(count), filter)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump on %s did not start:\n%s", dev, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	gen()
	_ = p.Wait(15 * time.Second) // exit 124 when fewer than count came: the checks decide
	return readPcap(t, file)
}

func readPcap(t *testing.T, file string) []gopacket.Packet {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	var pkts []gopacket.Packet
	for range 10000 {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkts = append(pkts, gopacket.NewPacket(data, r.LinkType(), gopacket.Default))
	}
	return pkts
}

// delLinkOnCleanup deletes dev in ns at cleanup by its exact name; a link
// already gone with its peer's namespace is fine.
func delLinkOnCleanup(t testing.TB, ns *nettest.NS, dev string) {
	t.Cleanup(func() {
		if out, err := ns.Try("ip", "link", "del", dev); err != nil && !strings.Contains(out, "Cannot find device") {
			t.Errorf("deleting link %s in %s: %v: %s", dev, ns.Name, err, out)
		}
	})
}
