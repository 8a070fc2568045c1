package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/xvr-project/xvr/cni"
	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/hostif"
)

// defaultCIDR is the cluster default network of CNI test nodes.
const defaultCIDR = "198.18.100.0/24"

var (
	cniBuildOnce sync.Once
	cniBinDir    string
	cniBuildErr  error
)

// cniPath builds cmd/xvr-cni once and installs it, the way a node does, as
// "xvr" and "contrail-k8s-cni" in a CNI bin directory it returns.
func cniPath(t testing.TB) string {
	t.Helper()
	cniBuildOnce.Do(func() {
		dir := filepath.Join(binDir, "cni")
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "xvr"), "../cmd/xvr-cni").CombinedOutput()
		if err != nil {
			cniBuildErr = fmt.Errorf("building xvr-cni: %w\n%s", err, out)
			return
		}
		cniBuildErr = os.Link(filepath.Join(dir, "xvr"), filepath.Join(dir, "contrail-k8s-cni"))
		cniBinDir = dir
	})
	if cniBuildErr != nil {
		t.Fatal(cniBuildErr)
	}
	return cniBinDir
}

// cniNode is an xvrd in a node namespace with a CNI conf dir whose conflist
// runs the real plugin binary with hostNetns = the node namespace.
type cniNode struct {
	*node
	c    *api.Client
	cfg  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	args []string // xvrd's command line
}

// newCNINode starts xvrd (with the default network defaultCIDR and extra
// flags) and writes <dir>/net.d/10-xvr.conflist.
func newCNINode(t testing.TB, extra ...string) *cniNode {
	t.Helper()
	nettest.RequireRoot(t)
	dir := t.TempDir()
	n := &node{ns: nettest.NewNS(t, "xvn"), dir: dir, socket: filepath.Join(dir, "xvrd.sock")}
	if tt, ok := t.(*testing.T); ok {
		n.t = tt
	}
	return startCNINode(t, n, append([]string{"-mac", vrouterMAC, "-default-cidr", defaultCIDR}, extra...)...)
}

// startCNINode starts xvrd in n's namespace with its socket and store in
// n's dir plus flags, waits for its API and writes the node's conflist.
func startCNINode(t testing.TB, n *node, flags ...string) *cniNode {
	t.Helper()
	args := append([]string{bin("xvrd"), "-socket", n.socket, "-db", filepath.Join(n.dir, "xvrd.db"),
		"-reconcile", "500ms"}, flags...)
	n.proc = n.ns.Start(t, args...)
	cn := &cniNode{node: n, c: api.NewClient(n.socket), args: args}
	t.Cleanup(cn.c.Close)
	cn.waitAPI(t)
	cn.cfg = cn.newCNIConfig(t)
	cn.list = cn.writeConf(t, "xvr")
	return cn
}

func (cn *cniNode) waitAPI(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cn.c.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("xvrd did not serve within 15s:\n%s", cn.proc.Output())
}

// conf is the node's conflist for a plugin installed as typ.
func (cn *cniNode) conf(typ, socket string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"xvr-%s","plugins":[{"type":%q,"socket":%q,`+
		`"defaultNetwork":"default/cluster-wide-default","hostNetns":"/var/run/netns/%s"}]}`,
		typ, typ, socket, cn.ns.Name)
}

// writeConf writes the conflist to the node's conf dir and loads it back
// the way a runtime does.
func (cn *cniNode) writeConf(t testing.TB, typ string) *libcni.NetworkConfigList {
	t.Helper()
	confDir := filepath.Join(cn.dir, "net.d-"+typ)
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-xvr.conflist"), []byte(cn.conf(typ, cn.socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.LoadConfList(confDir, "xvr-"+typ)
	if err != nil {
		t.Fatalf("loading conflist: %v", err)
	}
	return list
}

// cniPod is one sandbox of a pod: a namespace the plugin attached.
type cniPod struct {
	ns        *nettest.NS
	namespace string
	name      string
	rt        *libcni.RuntimeConf
	res       *types100.Result
}

// sandbox makes a pod namespace and its runtime conf (container ID derived
// from the namespace's unique name), without calling the plugin.
func (cn *cniNode) sandbox(t testing.TB, namespace, name string) *cniPod {
	t.Helper()
	ns := nettest.NewNS(t, "xcp")
	return &cniPod{ns: ns, namespace: namespace, name: name, rt: runtimeConf(ns.Name, namespace, name)}
}

func runtimeConf(nsName, namespace, name string) *libcni.RuntimeConf {
	sum := sha256.Sum256([]byte(nsName))
	cid := hex.EncodeToString(sum[:])
	return &libcni.RuntimeConf{ContainerID: cid, NetNS: "/var/run/netns/" + nsName, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", namespace}, {"K8S_POD_NAME", name},
			{"K8S_POD_UID", "uid-" + cid[:8]}, {"K8S_POD_INFRA_CONTAINER_ID", cid}}}
}

// setPod records the pod's networks annotation in xvrd (standalone mode),
// or forgets the pod when annotation is empty.
func (cn *cniNode) setPod(t testing.TB, namespace, name, annotation string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if annotation == "" {
		if err := api.IgnoreNotFound(cn.c.DeletePod(ctx, namespace, name)); err != nil {
			t.Fatal(err)
		}
		return
	}
	p := api.Pod{Namespace: namespace, Name: name, Annotations: map[string]string{api.NetworksAnnotation: annotation}}
	if _, err := cn.c.ApplyPod(ctx, p); err != nil {
		t.Fatalf("applying pod %s/%s: %v", namespace, name, err)
	}
}

// add runs ADD for the sandbox and registers its DEL for cleanup.
func (cn *cniNode) add(t testing.TB, p *cniPod) error {
	t.Helper()
	return cn.addWith(t, cn.cfg, p)
}

// newCNIConfig is a runtime's CNI config of its own: libcni's CNIConfig
// sets itself up on first use and is not safe for concurrent first use, so
// concurrent ADDs each take one, as runtimes running in parallel would.
func (cn *cniNode) newCNIConfig(t testing.TB) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{cniPath(t)}, filepath.Join(cn.dir, "cache"), nil)
}

// addWith is add through cfg.
func (cn *cniNode) addWith(t testing.TB, cfg *libcni.CNIConfig, p *cniPod) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := cfg.AddNetworkList(ctx, cn.list, p.rt)
	if err != nil {
		return err
	}
	t.Cleanup(func() { cn.del(t, p) })
	if p.res, err = types100.GetResult(r); err != nil {
		return fmt.Errorf("converting result: %w", err)
	}
	return nil
}

// addPod is setPod, sandbox and add, failing t on error.
func (cn *cniNode) addPod(t testing.TB, namespace, name, annotation string) *cniPod {
	t.Helper()
	cn.setPod(t, namespace, name, annotation)
	p := cn.sandbox(t, namespace, name)
	if err := cn.add(t, p); err != nil {
		t.Fatalf("ADD %s/%s: %v\nxvrd log:\n%s", namespace, name, err, tail(cn.proc.Output(), 3000))
	}
	return p
}

func (cn *cniNode) del(t testing.TB, p *cniPod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cn.cfg.DelNetworkList(ctx, cn.list, p.rt); err != nil {
		t.Errorf("DEL %s: %v", p.rt.ContainerID, err)
	}
}

// podAddr returns the address (a.b.c.d) of the pod interface ifname in the result.
func (p *cniPod) addr(t testing.TB, ifname string) string {
	t.Helper()
	for _, ip := range p.res.IPs {
		if ip.Interface != nil && p.res.Interfaces[*ip.Interface].Name == ifname {
			return ip.Address.IP.String()
		}
	}
	t.Fatalf("result has no address on %s: %+v", ifname, p.res)
	return ""
}

// ports returns xvrd's ports of the sandbox with container ID cid, or of
// every sandbox when cid is empty (the host port is no sandbox's).
func (cn *cniNode) ports(t testing.TB, cid string) []api.Port {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := cn.c.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []api.Port
	for _, p := range all {
		if p.ContainerID != "" && (cid == "" || p.ContainerID == cid) {
			out = append(out, p)
		}
	}
	return out
}

// hostVeths lists the links named xvr* in the node namespace but xvrd's
// own host interface pair.
func (cn *cniNode) hostVeths(t testing.TB) []string {
	t.Helper()
	var links []struct {
		IfName string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(cn.ns.Run(t, "ip", "-j", "link", "show")), &links); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.IfName, "xvr") && l.IfName != hostif.DefaultName && l.IfName != hostif.DefaultPeer {
			out = append(out, l.IfName)
		}
	}
	return out
}

// assertNoTrace fails t if the sandbox left a port or a host veth.
func (cn *cniNode) assertNoTrace(t testing.TB, cid string) {
	t.Helper()
	if ports := cn.ports(t, cid); len(ports) != 0 {
		t.Fatalf("sandbox %s left ports: %+v", cid[:12], ports)
	}
	for _, ifn := range []string{"eth0", "eth1", "eth2", "eth3"} {
		name := cni.HostIfName(cid, ifn)
		if out, err := cn.ns.Try("ip", "link", "show", name); err == nil {
			t.Fatalf("sandbox %s left host veth %s:\n%s", cid[:12], name, out)
		}
	}
}

// cniCode returns the CNI error code of err, or 0.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// podLinks is `ip -j addr` inside the pod: name, MAC and IPv4 addresses.
type podLink struct {
	IfName   string `json:"ifname"`
	Address  string `json:"address"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

func (p *cniPod) links(t testing.TB) map[string]podLink {
	t.Helper()
	var ls []podLink
	if err := json.Unmarshal([]byte(p.ns.Run(t, "ip", "-j", "addr", "show")), &ls); err != nil {
		t.Fatal(err)
	}
	out := map[string]podLink{}
	for _, l := range ls {
		out[l.IfName] = l
	}
	return out
}

// apply writes NAD yaml to a file and applies it with xvrctl apply -f.
func (cn *cniNode) apply(t testing.TB, yaml string) {
	t.Helper()
	f := filepath.Join(cn.dir, fmt.Sprintf("nad-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cn.ctl("apply", "-f", f); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// podNamespaces makes and deletes short-lived pod namespaces (churn,
// benchmarks) by exact name; t.Cleanup deletes any a failure left.
type podNamespaces struct {
	mu   sync.Mutex
	live map[string]bool
	all  []string
}

func newPodNamespaces(t testing.TB) *podNamespaces {
	p := &podNamespaces{live: map[string]bool{}}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for name := range p.live {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		}
	})
	return p
}

func (p *podNamespaces) add(t testing.TB) (string, error) {
	name := nettest.Name(t, "xch")
	p.mu.Lock()
	p.live[name] = true
	p.all = append(p.all, name)
	p.mu.Unlock()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	return name, nil
}

func (p *podNamespaces) del(name string) error {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, out)
	}
	p.mu.Lock()
	delete(p.live, name)
	p.mu.Unlock()
	return nil
}

// leftovers returns the namespaces made here that `ip netns list` still shows.
func (p *podNamespaces) leftovers(t testing.TB) []string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			listed[f[0]] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var left []string
	for _, n := range p.all {
		if listed[n] {
			left = append(left, n)
		}
	}
	return left
}

// cycle ADDs then DELs one 3-interface sandbox of pod default/name in a
// fresh namespace and returns how long the ADD took.
func (cn *cniNode) cycle(t testing.TB, cfg *libcni.CNIConfig, nss *podNamespaces, name string) (time.Duration, error) {
	nsName, err := nss.add(t)
	if err != nil {
		return 0, err
	}
	rt := runtimeConf(nsName, "default", name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = cfg.AddNetworkList(ctx, cn.list, rt)
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("ADD %s: %w", nsName, err)
	}
	if err := cfg.DelNetworkList(ctx, cn.list, rt); err != nil {
		return took, fmt.Errorf("DEL %s: %w", nsName, err)
	}
	return took, nss.del(nsName)
}
