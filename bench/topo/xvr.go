package topo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
)

// VrouterMAC is the MAC xvrd answers ARP for its gateways with.
const VrouterMAC = "02:78:76:72:00:01"

const (
	xvrNetwork = "default/vn-xbench"
	xvrGW      = "198.18.55.254"
	xvrNAD     = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: vn-xbench
  namespace: default
  annotations:
    opencontrail.org/cidr: "198.18.55.0/24"
spec:
  config: '{ "cniVersion": "1.0.0", "type": "xvr" }'
`
)

// Xvrd is an xvrd that Build started in the node namespace.
type Xvrd struct {
	*daemon
	dir    string
	bin    string
	socket string
}

// buildXVR: xvrd in a node namespace forwards between two ports of one VN,
// added with xvrctl.
func (t *Topology) buildXVR(o Options) error {
	t.Notes = "node netns, xvrd (1 poller, AF_XDP copy mode on both host veths), ports of one VN via xvrctl"
	if err := checkBins(o.BinDir); err != nil {
		return err
	}
	node, err := newNS("xbn", &t.u)
	if err != nil {
		return err
	}
	if t.Forwarder, err = startXvrd(node, o, &t.u, "-mac", VrouterMAC); err != nil {
		return err
	}
	t.Forwarders = []*Xvrd{t.Forwarder}
	if err := t.Forwarder.apply(xvrNAD); err != nil {
		return err
	}
	if t.A, err = t.xvrPod(t.Forwarder, node, "198.18.55.1/24", macA, xvrNetwork, xvrGW); err != nil {
		return err
	}
	if t.B, err = t.xvrPod(t.Forwarder, node, "198.18.55.2/24", macB, xvrNetwork, xvrGW); err != nil {
		return err
	}
	t.DstMAC, _ = net.ParseMAC(VrouterMAC)
	if err := t.idlePods(node, o.ExtraPods); err != nil {
		return err
	}
	if o.PolicyOnB {
		t.Notes += "; B's interface under an allow-all ingress policy (every frame through the flow table)"
		return t.Forwarder.allowAllTo(t.B)
	}
	return nil
}

// maxExtraPods bounds Options.ExtraPods: their addresses are
// 198.18.55.3 to .250 (.254 is the gateway).
const maxExtraPods = 248

// idlePods adds n pods (198.18.55.3 on) whose ports sit on the poller
// beside A's and B's and receive nothing.
func (t *Topology) idlePods(node *NS, n int) error {
	if n < 0 || n > maxExtraPods {
		return fmt.Errorf("%d extra pods: want 0..%d", n, maxExtraPods)
	}
	if n > 0 {
		t.Notes += fmt.Sprintf("; %d idle pods more on the poller", n)
	}
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("198.18.55.%d/24", 3+i)
		mac := net.HardwareAddr{0x02, 0, 0xc6, 0x12, 0x37, byte(3 + i)}
		if _, err := t.xvrPod(t.Forwarder, node, ip, mac, xvrNetwork, xvrGW); err != nil {
			return fmt.Errorf("idle pod %d: %w", i, err)
		}
	}
	return nil
}

// benchPod is the pod the policy of allowAllTo selects.
var benchPod = api.PodRef{Namespace: "default", Name: "xvr-bench-b"}

// allowAllTo makes p's port that of benchPod and gives it an ingress
// policy that allows everything: traffic is unchanged, but every frame
// to it is looked up (and its first one set up) in the flow table.
func (x *Xvrd) allowAllTo(p Endpoint) error {
	cl := api.NewClient(x.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port, err := cl.GetPort(ctx, p.NS.Name+"/eth0")
	if err != nil {
		return fmt.Errorf("policy on %s: %w", p.NS.Name, err)
	}
	port.Pod = &benchPod
	if _, err := cl.ApplyPort(ctx, port); err != nil {
		return fmt.Errorf("policy on %s: naming its pod: %w", p.NS.Name, err)
	}
	all := policy.Set{Ingress: true, IngressRules: []policy.Rule{{Policy: "xvr-bench allow-all", AllPeers: true, AllPorts: true}}}
	err = cl.SetPolicies(ctx, api.Policies{Interfaces: []api.InterfacePolicy{{Pod: benchPod, Network: xvrNetwork, Policy: all}}})
	if err != nil {
		return fmt.Errorf("policy on %s: %w", p.NS.Name, err)
	}
	return nil
}

// apply writes nad into x's directory and applies it with xvrctl.
func (x *Xvrd) apply(nad string) error {
	f := filepath.Join(x.dir, "nad.yaml")
	if err := os.WriteFile(f, []byte(nad), 0o600); err != nil {
		return fmt.Errorf("write nad: %w", err)
	}
	_, err := x.Ctl("apply", "-f", f)
	return err
}

// xvrPod adds a pod to node with a static address and MAC and makes its
// host veth a port of network on x.
func (t *Topology) xvrPod(x *Xvrd, node *NS, ip string, mac net.HardwareAddr, network, gw string) (Endpoint, error) {
	pfx := netip.MustParsePrefix(ip)
	p, err := t.addPod(node, pfx, mac, netip.MustParseAddr(gw))
	if err != nil {
		return p, err
	}
	_, err = x.Ctl("port", "add", "--id", p.NS.Name+"/eth0", "--network", network,
		"--host-if", p.HostIf, "--ip", pfx.Addr().String(), "--mac", mac.String())
	return p, err
}

// startXvrd runs xvrd in ns with extra flags and waits for its API; u gets
// its stop and the removal of its directory. When o.ForwarderCPU >= 0 its
// pollers are pinned there (-poller-cpus) and, as OVS's daemons beside
// their PMD thread, its control plane runs on the other CPUs.
func startXvrd(ns *NS, o Options, u *undo, extra ...string) (*Xvrd, error) {
	dir, err := os.MkdirTemp("", "xvr-bench-")
	if err != nil {
		return nil, fmt.Errorf("xvrd dir: %w", err)
	}
	u.push(func() error { return os.RemoveAll(dir) })
	x := &Xvrd{dir: dir, bin: o.BinDir, socket: filepath.Join(dir, "xvrd.sock")}
	argv := append([]string{"ip"}, ns.ExecArgs(filepath.Join(o.BinDir, "xvrd"), "-socket", x.socket,
		"-db", filepath.Join(dir, "xvrd.db"), "-reconcile", "500ms")...)
	argv = append(append(argv, extra...), o.XvrdArgs...)
	if o.ForwarderCPU >= 0 {
		argv = onAllCPUs(append(argv, "-poller-cpus", strconv.Itoa(o.ForwarderCPU))...)
	}
	if x.daemon, err = startDaemon("xvrd", argv, nil, filepath.Join(dir, "xvrd.log"), o.Log); err != nil {
		return nil, err
	}
	u.push(x.stop)
	return x, x.waitReady()
}

func (x *Xvrd) waitReady() error {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if _, err := x.Ctl("status"); err == nil {
			return nil
		}
		if x.exited() {
			return fmt.Errorf("xvrd exited:\n%s", x.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("xvrd did not serve within 15s:\n%s", x.LogTail())
}

// Ctl runs xvrctl against this xvrd.
func (x *Xvrd) Ctl(args ...string) (string, error) {
	argv := append([]string{"--socket", x.socket}, args...)
	out, err := exec.Command(filepath.Join(x.bin, "xvrctl"), argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("xvrctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
