package topo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ovsTools are the programs an OVS topology needs.
var ovsTools = []string{"ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovsdb-tool", "ovs-ofctl", "ovs-appctl"}

// ovsSchema is where Debian's openvswitch-common puts the database schema.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// OVS port types: AF_XDP sockets (netdev-afxdp) or, where the build lacks
// them, the netdev datapath's AF_PACKET sockets (netdev-linux).
const (
	OVSPortAFXDP  = "afxdp"
	OVSPortSystem = "system"
)

// OVSAFPacket is the report name of the fallback datapath: the OVS
// userspace datapath with AF_PACKET ports, which is not OVS AF_XDP.
const OVSAFPacket = "ovs-netdev-afpacket"

// Addresses of the OVS topology (198.18.52.0/24): the pods are routed by
// OpenFlow rules, with the bridge as their gateway.
var (
	ovsSubnet    = netip.MustParsePrefix("198.18.52.0/24")
	ovsGW        = netip.MustParseAddr("198.18.52.254")
	ovsRouterMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x36, 0x01}
)

// OVSMissing returns the reason OVS cannot run here ("" when it can).
func OVSMissing() string {
	for _, t := range ovsTools {
		if _, err := exec.LookPath(t); err != nil {
			return "openvswitch-switch not installed (" + t + " not found)"
		}
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		return "openvswitch-switch not installed (" + ovsSchema + " not found)"
	}
	return ""
}

// OVS is an ovsdb-server and an ovs-vswitchd that Build started for one
// topology, with a private database, run directory, sockets and logs under
// Dir. Every command it runs names those sockets explicitly (and OVS_RUNDIR
// etc. point there), so it never reaches a system OVS instance.
type OVS struct {
	// Dir holds conf.db, the sockets and the logs; Close removes it.
	Dir string
	// Bridge is the bridge's name (unique, like every link Build makes).
	Bridge string
	// PortType is the type of the pods' host veth ports (OVSPortAFXDP, or
	// OVSPortSystem where this build lacks AF_XDP).
	PortType string
	db       *daemon
	vswitchd *daemon
	env      []string
}

// ovsRoute is one OpenFlow route of the bridge: frames to IP leave on
// OFPort with destination MAC.
type ovsRoute struct {
	IP     netip.Addr
	MAC    net.HardwareAddr
	OFPort int
}

// buildOVS: one node namespace whose ovs-vswitchd (userspace datapath)
// routes between the pods' host veths, added as AF_XDP ports.
func (t *Topology) buildOVS(o Options) error {
	if why := OVSMissing(); why != "" {
		return fmt.Errorf("%w: %s", ErrSkipped, why)
	}
	node, err := newNS("xbn", &t.u)
	if err != nil {
		return err
	}
	if t.A, err = t.addPod(node, netip.PrefixFrom(ovsSubnet.Addr().Next(), 24), macA, ovsGW); err != nil {
		return err
	}
	if t.B, err = t.addPod(node, netip.PrefixFrom(ovsSubnet.Addr().Next().Next(), 24), macB, ovsGW); err != nil {
		return err
	}
	if t.OVS, err = startOVS(node, o, &t.u); err != nil {
		return err
	}
	portType, err := t.OVS.choosePortType(o.OVSPortType)
	if err != nil {
		return err
	}
	if err := t.OVS.addBridge(&t.u, portType, t.A.HostIf, t.B.HostIf); err != nil {
		return err
	}
	routes := []ovsRoute{{t.A.IP.Addr(), t.A.MAC, 1}, {t.B.IP.Addr(), t.B.MAC, 2}}
	if err := t.OVS.addFlows(ovsRouterFlows(ovsRouterMAC, ovsSubnet, routes)); err != nil {
		return err
	}
	t.DstMAC = ovsRouterMAC
	t.Notes = ovsNotes(portType, o.ForwarderCPU)
	if portType != OVSPortAFXDP {
		// AF_PACKET ports put no XDP program on A's host veth, which live
		// frames need to be received at all.
		t.Label, t.restore = OVSAFPacket, true
	}
	return nil
}

func ovsNotes(portType string, cpu int) string {
	pin := "PMD unpinned"
	if cpu >= 0 {
		pin = fmt.Sprintf("one PMD thread on CPU %d (pmd-cpu-mask %s), OVS's other threads and ovsdb-server on all CPUs", cpu, cpuMask(cpu))
	}
	ports := "both host veths type=afxdp (native XDP, copy mode: veth has no zero-copy)"
	if portType != OVSPortAFXDP {
		ports = "NOT AF_XDP: this OVS build has no afxdp port type, so both host veths are type=system ports (AF_PACKET sockets)"
	}
	return "node netns, Open vSwitch userspace datapath (datapath_type=netdev), " + ports +
		", OpenFlow router: proxy ARP for the /24 with the bridge's MAC, per-pod /32 flows that rewrite both MACs, dec_ttl and output; " + pin
}

// cpuMask is the hexadecimal CPU mask of one CPU, as pmd-cpu-mask takes it.
func cpuMask(cpu int) string { return "0x" + strconv.FormatUint(1<<uint(cpu), 16) }

// ovsRouterFlows returns the OpenFlow rules (ovs-ofctl add-flows syntax) of
// a router on one subnet: ARP requests for any address of subnet are
// answered with mac (proxy ARP, as xvrd and the Linux-routing topology's
// host veths do); IPv4 frames to mac for a route's address get mac as
// source, the route's MAC as destination, TTL decremented (with the header
// checksum; TTL 1 is not forwarded) and leave on its port; anything else
// is dropped.
func ovsRouterFlows(mac net.HardwareAddr, subnet netip.Prefix, routes []ovsRoute) string {
	hex := "0x" + strings.ReplaceAll(mac.String(), ":", "")
	var b strings.Builder
	fmt.Fprintf(&b, "table=0,priority=100,arp,arp_op=1,arp_tpa=%s,actions="+
		"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:%s,load:0x2->NXM_OF_ARP_OP[],"+
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:%s->NXM_NX_ARP_SHA[],"+
		"move:NXM_OF_ARP_TPA[]->NXM_NX_REG0[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"+
		"move:NXM_NX_REG0[]->NXM_OF_ARP_SPA[],IN_PORT\n", subnet.Masked(), mac, hex)
	for _, r := range routes {
		fmt.Fprintf(&b, "table=0,priority=100,ip,dl_dst=%s,nw_dst=%s,actions=mod_dl_src:%s,mod_dl_dst:%s,dec_ttl,output:%d\n",
			mac, r.IP, mac, r.MAC, r.OFPort)
	}
	b.WriteString("table=0,priority=0,actions=drop\n")
	return b.String()
}

// startOVS creates a database in a new directory and starts ovsdb-server
// and ovs-vswitchd on it (ovs-vswitchd in node; its PMD thread on
// o.ForwarderCPU when that is >= 0). u gets their stop (by pid) and the
// removal of the directory.
func startOVS(node *NS, o Options, u *undo) (*OVS, error) {
	dir, err := os.MkdirTemp("", "xvr-bench-ovs-")
	if err != nil {
		return nil, fmt.Errorf("ovs dir: %w", err)
	}
	u.push(func() error { return os.RemoveAll(dir) })
	v := &OVS{Dir: dir, env: ovsEnv(dir)}
	if _, err := v.run("ovsdb-tool", "create", v.path("conf.db"), ovsSchema); err != nil {
		return nil, err
	}
	if err := v.startDB(o, u); err != nil {
		return nil, err
	}
	if o.ForwarderCPU >= 0 {
		if _, err := v.Vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask="+cpuMask(o.ForwarderCPU)); err != nil {
			return nil, err
		}
	}
	return v, v.startVswitchd(node, o, u)
}

// ovsEnv points every OVS default path at dir.
func ovsEnv(dir string) []string {
	env := os.Environ()
	for _, k := range []string{"OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"} {
		env = append(env, k+"="+dir)
	}
	return env
}

func (v *OVS) path(name string) string { return filepath.Join(v.Dir, name) }

func (v *OVS) dbRemote() string { return "unix:" + v.path("db.sock") }

// onAllCPUs runs argv under taskset on every CPU, undoing the pinning a
// child inherits from xvr-bench (the generator's CPU). OVS pins its PMD
// thread itself (pmd-cpu-mask); its other threads and ovsdb-server are
// control plane and, as in an OVS deployment, kept off the PMD's core only
// by the scheduler.
func onAllCPUs(argv ...string) []string {
	return append([]string{"taskset", "-c", "0-" + strconv.Itoa(runtime.NumCPU()-1)}, argv...)
}

func (v *OVS) startDB(o Options, u *undo) error {
	var err error
	v.db, err = startDaemon("ovsdb-server", onAllCPUs("ovsdb-server", v.path("conf.db"),
		"--remote=punix:"+v.path("db.sock"), "--unixctl="+v.path("ovsdb-server.ctl"), "--no-chdir",
		"-vconsole:info"), v.env, v.path("ovsdb-server.log"), o.Log)
	if err != nil {
		return err
	}
	u.push(v.db.stop)
	return v.waitFor(v.db, func() error {
		_, err := v.Vsctl("--no-wait", "init")
		return err
	})
}

func (v *OVS) startVswitchd(node *NS, o Options, u *undo) error {
	argv := append([]string{"ip"}, node.ExecArgs("ovs-vswitchd", v.dbRemote(),
		"--unixctl="+v.path("ovs-vswitchd.ctl"), "--no-chdir", "-vconsole:info")...)
	var err error
	v.vswitchd, err = startDaemon("ovs-vswitchd", onAllCPUs(argv...), v.env, v.path("ovs-vswitchd.log"), o.Log)
	if err != nil {
		return err
	}
	u.push(v.vswitchd.stop)
	// ovs-vswitchd lists the port types it supports once it has connected.
	return v.waitFor(v.vswitchd, func() error {
		out, err := v.Vsctl("get", "Open_vSwitch", ".", "iface_types")
		if err == nil && strings.TrimSpace(out) == "[]" {
			err = errors.New("ovs-vswitchd has not listed its port types yet")
		}
		return err
	})
}

// waitFor retries ready until it succeeds, d exits, or 20 s pass.
func (v *OVS) waitFor(d *daemon, ready func() error) error {
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = ready(); err == nil {
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s exited:\n%s", d.name, d.LogTail())
		}
	}
	return fmt.Errorf("%s not ready within 20s: %w\n%s", d.name, err, d.LogTail())
}

// choosePortType returns want if set, else afxdp when this ovs-vswitchd
// supports it and system (AF_PACKET) otherwise.
func (v *OVS) choosePortType(want string) (string, error) {
	if want != "" {
		return want, nil
	}
	out, err := v.Vsctl("get", "Open_vSwitch", ".", "iface_types")
	if err != nil {
		return "", err
	}
	if hasIfaceType(out, OVSPortAFXDP) {
		return OVSPortAFXDP, nil
	}
	return OVSPortSystem, nil
}

// hasIfaceType reports whether an iface_types column ("[afxdp, geneve]")
// lists typ.
func hasIfaceType(col, typ string) bool {
	col = strings.Trim(strings.TrimSpace(col), "[]")
	for _, f := range strings.Split(col, ",") {
		if strings.Trim(strings.TrimSpace(f), `"`) == typ {
			return true
		}
	}
	return false
}

// addBridge makes a netdev (userspace) bridge with no flows (fail_mode
// secure) and adds devs as ports 1, 2, ... of type portType; u gets the
// bridge's deletion.
func (v *OVS) addBridge(u *undo, portType string, devs ...string) error {
	br, err := Name("xbov")
	if err != nil {
		return err
	}
	if _, err := v.Vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure"); err != nil {
		return err
	}
	v.Bridge = br
	u.push(v.delBridge)
	for i, dev := range devs {
		args := []string{"add-port", br, dev, "--", "set", "interface", dev, "type=" + portType,
			"ofport_request=" + strconv.Itoa(i+1)}
		if portType == OVSPortAFXDP {
			args = append(args, "options:xdp-mode=native", "options:n_rxq=1")
		}
		if _, err := v.Vsctl(args...); err != nil {
			return err
		}
		if err := v.checkPort(dev, i+1); err != nil {
			return err
		}
	}
	v.PortType = portType
	return nil
}

// checkPort fails unless dev got ofport want and no error.
func (v *OVS) checkPort(dev string, want int) error {
	out, err := v.Vsctl("get", "interface", dev, "ofport", "error")
	if err != nil {
		return err
	}
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != strconv.Itoa(want) || f[1] != "[]" {
		return fmt.Errorf("ovs port %s: ofport and error %q (want %d, []):\n%s", dev, strings.TrimSpace(out), want, v.vswitchd.LogTail())
	}
	return nil
}

// delBridge deletes the bridge (ovs-vswitchd then closes the ports and
// removes its XDP programs), waiting for ovs-vswitchd while it runs.
func (v *OVS) delBridge() error {
	args := []string{"--if-exists", "del-br", v.Bridge}
	if v.vswitchd == nil || v.vswitchd.exited() {
		args = append([]string{"--no-wait"}, args...)
	}
	_, err := v.Vsctl(args...)
	return err
}

// addFlows installs flows (ovs-ofctl add-flows syntax) on the bridge.
func (v *OVS) addFlows(flows string) error {
	f := v.path("flows.txt")
	if err := os.WriteFile(f, []byte(flows), 0o600); err != nil {
		return fmt.Errorf("write ovs flows: %w", err)
	}
	_, err := v.Ofctl("add-flows", f)
	return err
}

// Vsctl runs ovs-vsctl against this instance's database (waiting at most
// 20 s for ovs-vswitchd).
func (v *OVS) Vsctl(args ...string) (string, error) {
	return v.run("ovs-vsctl", append([]string{"--db=" + v.dbRemote(), "--timeout=20"}, args...)...)
}

// Ofctl runs ovs-ofctl on this instance's bridge: args[0] is the command,
// the bridge's management socket is inserted after it.
func (v *OVS) Ofctl(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("ovs-ofctl: no command")
	}
	argv := append([]string{args[0], "unix:" + v.path(v.Bridge+".mgmt")}, args[1:]...)
	return v.run("ovs-ofctl", argv...)
}

// Appctl runs ovs-appctl against this instance's ovs-vswitchd.
func (v *OVS) Appctl(args ...string) (string, error) {
	return v.run("ovs-appctl", append([]string{"--target=" + v.path("ovs-vswitchd.ctl"), "--timeout=20"}, args...)...)
}

// Pids are the pids of ovsdb-server and ovs-vswitchd, those started.
func (v *OVS) Pids() []int {
	var pids []int
	for _, d := range []*daemon{v.db, v.vswitchd} {
		if d != nil {
			pids = append(pids, d.Pid())
		}
	}
	return pids
}

func (v *OVS) run(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Env = v.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
