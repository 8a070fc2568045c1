package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// Flood bounds: a 1 s warm-up (it touches the UMEM frames, so the RSS
// bound sees growth, not first use), then 5 s of hostile frames paced at
// 20k/s (at most 100k), while good traffic is probed every 10 ms.
const (
	floodRate     = 20000
	floodFor      = 5 * time.Second
	floodMax      = floodRate * 5
	floodRSSBound = 8 << 10 // KiB
	floodProbe    = 10 * time.Millisecond
)

// vifCounters reads the rx packets and drops of the vif named name, or of
// vif id when name is empty.
func (n *node) vifCounters(t *testing.T, name string, id uint32) (rx, drops uint64) {
	t.Helper()
	var vifs []api.Vif
	n.ctlJSON(t, &vifs, "vif")
	for _, v := range vifs {
		if name != "" && v.Name == name || name == "" && v.ID == id {
			return v.RXPackets, v.Drops
		}
	}
	t.Fatalf("no vif %q/%d in %+v", name, id, vifs)
	return 0, 0
}

// dropSum is the sum of every drop reason (the kernel's counts for xvr's
// sockets included) and the kernel's part of it.
func (n *node) dropSum(t *testing.T) (all, kernel uint64) {
	t.Helper()
	var ds []api.DropStat
	n.ctlJSON(t, &ds, "dropstats", "--all")
	for _, d := range ds {
		all += d.Count
		if strings.HasPrefix(d.Reason, "xsk_") {
			kernel += d.Count
		}
	}
	return all, kernel
}

// sysCounter reads /sys/class/net/dev/statistics/name inside ns.
func sysCounter(t *testing.T, ns *nettest.NS, dev, name string) uint64 {
	t.Helper()
	s := strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/"+dev+"/statistics/"+name))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s %s: %q: %v", dev, name, s, err)
	}
	return v
}

// floodSnapshot is what the flood tests compare before and after.
type floodSnapshot struct {
	rx, drops        uint64 // the flooded vif's
	dropAll, dropXSK uint64
	senderTx         uint64 // the sender's kernel transmit counter
	proc             procSample
}

// checkFlowing fails t unless the prober got answers in every second of
// [from, to) and to at least half of the probes sent in it.
func checkFlowing(t *testing.T, pr *prober, from, to time.Time) {
	t.Helper()
	for w := from; w.Add(time.Second).Before(to.Add(time.Millisecond)); w = w.Add(time.Second) {
		if n := pr.repliesBetween(w, w.Add(time.Second)); n == 0 {
			t.Errorf("good traffic %s: no answer in second %v of the flood", pr.name, w.Sub(from).Round(time.Second))
		}
	}
	got := pr.repliesBetween(from, to)
	want := int(to.Sub(from) / floodProbe)
	t.Logf("good traffic %s during the flood: %d answers to about %d probes", pr.name, got, want)
	if got < want/2 {
		t.Errorf("good traffic %s: %d answers to about %d probes during the flood, want at least half", pr.name, got, want)
	}
}

// checkRSS fails t when xvrd grew by more than floodRSSBound or gained fds.
func checkRSS(t *testing.T, before, after procSample) {
	t.Helper()
	t.Logf("xvrd: VmRSS %d -> %d KiB (%+d), threads %d -> %d, fds %d -> %d", before.rssKB, after.rssKB,
		after.rssKB-before.rssKB, before.threads, after.threads, before.fds, after.fds)
	if after.rssKB-before.rssKB > floodRSSBound {
		t.Errorf("xvrd VmRSS grew by %d KiB during the flood, over %d KiB", after.rssKB-before.rssKB, floodRSSBound)
	}
	if after.fds > before.fds+2 {
		t.Errorf("xvrd fds went from %d to %d during the flood", before.fds, after.fds)
	}
}

// TestReliabilityPodFlood floods xvrd from a pod (c, on vn-right-1) with
// hostile frames of every podKinds kind for 5 s while pod a pings pod b over
// UDP (vn-left-1): the good traffic keeps flowing, every frame xvrd received
// from c is dropped and counted on c's vif and in dropstats, and xvrd's RSS
// stays within 8 MiB and its fds constant. What the sending kernel refused
// (frames beyond the MTU) and what never reached xvrd is logged.
func TestReliabilityPodFlood(t *testing.T) {
	tp := setupThreePods(t)
	n := tp.n
	startEcho(t, tp.b.NS.Name)
	pr := startProber(t, "a->b", tp.a.NS.Name, "198.18.10.2", floodProbe, 2*time.Minute)
	pr.waitAnswered(t, 10*time.Second)
	pid := xvrdPID(t, n.socket)
	vr, _ := net.ParseMAC(vrouterMAC)
	to := floodTarget{srcMAC: tp.c.MAC, dstMAC: vr, srcIP: tp.c.IP.Addr(),
		dstIP: netip.MustParseAddr("198.18.20.77"), foreignIP: netip.MustParseAddr("198.18.10.2")}
	if _, err := flood(tp.c.NS.Name, nettest.PodIf, to, podKinds, floodRate, floodRate, time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	snap := func() floodSnapshot {
		var s floodSnapshot
		s.rx, s.drops = n.vifCounters(t, tp.c.HostIf, 0)
		s.dropAll, s.dropXSK = n.dropSum(t)
		s.senderTx = sysCounter(t, tp.c.NS, nettest.PodIf, "tx_packets")
		s.proc = sampleProc(t, pid)
		return s
	}
	before := snap()
	from := time.Now()
	res, err := flood(tp.c.NS.Name, nettest.PodIf, to, podKinds, floodRate, floodMax, floodFor)
	to2 := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let xvrd drain its rings
	after := snap()
	t.Logf("pod flood: %s", res)
	sent, _ := res.total()
	rx, drops := after.rx-before.rx, after.drops-before.drops
	all, xsk := after.dropAll-before.dropAll, after.dropXSK-before.dropXSK
	t.Logf("pod c's eth0 transmitted %d; xvrd received %d on c's vif and dropped %d of them; dropstats +%d (kernel xsk +%d)",
		after.senderTx-before.senderTx, rx, drops, all, xsk)
	if rx+xsk < uint64(sent)*9/10 {
		t.Errorf("xvrd received %d and its sockets' kernel counters dropped %d of %d frames sent", rx, xsk, sent)
	}
	if drops < rx {
		t.Errorf("c's vif received %d frames but counted %d drops: some hostile frames were forwarded or answered", rx, drops)
	}
	if all < rx {
		t.Errorf("dropstats grew by %d, less than the %d hostile frames xvrd received", all, rx)
	}
	checkFlowing(t, pr, from, to2)
	checkRSS(t, before.proc, after.proc)
	mustPing(t, tp.a, "198.18.10.2")
	mustPing(t, tp.c, "198.18.20.254") // the flooding pod itself is still served
}

// TestReliabilityFabricFlood floods node 0's fabric NIC from a host on the
// underlay with the fabricKinds frames, first each kind alone (census: the
// overlay kinds reach xvrd, the kernel: ones the fabric program passes to
// the node's kernel, the bridge: one the underlay bridge drops), then all of
// them for 5 s while a pod on node 0 talks over UDP to a pod on node 1
// through the tunnel: of what xvrd receives on the fabric vif, everything
// but the good tunnel traffic must be dropped and counted. Good traffic keeps
// flowing, xvrd's RSS stays within 8 MiB and its fds constant.
func TestReliabilityFabricFlood(t *testing.T) {
	o := newOverlayTopo(t, "MPLSoUDP,VXLAN")
	n0 := o.nodes[0]
	attacker := nettest.NewNS(t, "xat")
	dev, _ := o.fabricLink(t, attacker, "xaf", "198.18.200.9")
	pid := xvrdPID(t, n0.socket)
	src, _ := net.ParseMAC(attacker.MAC(t, dev))
	dst, _ := net.ParseMAC(n0.ns.MAC(t, n0.fabric))
	to := floodTarget{srcMAC: src, dstMAC: dst, srcIP: netip.MustParseAddr("198.18.200.9"),
		dstIP: netip.MustParseAddr(n0.ip), foreignIP: netip.MustParseAddr(right2IP),
		labels: []uint32{o.labels[0][leftVN], o.labels[0][rightVN]}, vnis: []uint32{o.vni[leftVN], o.vni[rightVN]}}
	census(t, n0, attacker.Name, dev, to)
	startEcho(t, o.left2.ns.Name)
	pr := startProber(t, "left1->left2", o.left1.ns.Name, left2IP, floodProbe, 2*time.Minute)
	pr.waitAnswered(t, 10*time.Second)
	if _, err := flood(attacker.Name, dev, to, fabricKinds, floodRate, floodRate, time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	snap := func() (floodSnapshot, time.Time) {
		var s floodSnapshot
		s.rx, s.drops = n0.vifCounters(t, "", 0)
		s.dropAll, s.dropXSK = n0.dropSum(t)
		s.senderTx = sysCounter(t, attacker, dev, "tx_packets")
		s.proc = sampleProc(t, pid)
		return s, time.Now()
	}
	before, t0 := snap()
	from := time.Now()
	res, err := flood(attacker.Name, dev, to, fabricKinds, floodRate, floodMax, floodFor)
	to2 := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	after, t1 := snap()
	t.Logf("fabric flood: %s", res)
	overlay := 0
	for _, k := range fabricKinds {
		if reachesXvrd(k.name) {
			overlay += res.sent[k.name]
		}
	}
	good := uint64(pr.repliesBetween(t0, t1)) // each answer came in on node 0's fabric
	rx, drops := after.rx-before.rx, after.drops-before.drops
	all, xsk := after.dropAll-before.dropAll, after.dropXSK-before.dropXSK
	bad := rx - min(rx, good)
	t.Logf("overlay-looking frames sent %d; fabric vif received %d (%d good answers, so %d hostile), dropped %d; "+
		"dropstats +%d (kernel xsk +%d); the rest went to the node's kernel", overlay, rx, good, bad, drops, all, xsk)
	if bad+xsk < uint64(overlay)*9/10 {
		t.Errorf("xvrd received %d hostile overlay frames (+%d kernel xsk drops) of %d sent: the fabric program did not steer them",
			bad, xsk, overlay)
	}
	if drops+20 < bad {
		t.Errorf("fabric vif received %d hostile frames but counted %d drops", bad, drops)
	}
	if all+20 < bad {
		t.Errorf("dropstats grew by %d, less than the %d hostile frames xvrd received", all, bad)
	}
	checkFlowing(t, pr, from, to2)
	checkRSS(t, before.proc, after.proc)
	if out, err := o.left1.ping(left2IP, 3); err != nil {
		t.Fatalf("ping across nodes after the flood: %v\n%s", err, out)
	}
	if out, err := o.underlay.Try("ping", "-c", "2", "-W", "1", n0.ip); err != nil {
		t.Fatalf("node IP unreachable for host traffic after the flood: %v\n%s", err, out)
	}
}

// census sends 1000 frames of each fabric kind alone, with no other traffic,
// and logs how many reached xvrd's fabric vif (the rest the fabric program
// passed to the node's kernel, or the kernel dropped on the way): which
// hostile frames xvrd sees at all. Every kind reachesXvrd names must reach
// it (90 %), and no other (10 %).
func census(t *testing.T, n0 *overlayNode, nsName, dev string, to floodTarget) {
	t.Helper()
	const per = 1000
	var b strings.Builder
	for _, k := range fabricKinds {
		rx0, _ := n0.vifCounters(t, "", 0)
		_, x0 := n0.dropSum(t)
		res, err := flood(nsName, dev, to, []frameKind{k}, floodRate, per, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		rx1, _ := n0.vifCounters(t, "", 0)
		_, x1 := n0.dropSum(t)
		got, sent := rx1-rx0+x1-x0, uint64(res.sent[k.name])
		fmt.Fprintf(&b, " %s=%d/%d", k.name, got, sent)
		if reaches := reachesXvrd(k.name); !reaches && got > sent/10 || reaches && got < sent*9/10 {
			t.Errorf("fabric kind %s: %d of %d frames reached xvrd", k.name, got, sent)
		}
	}
	t.Logf("fabric census (reached xvrd/sent):%s", b.String())
}
