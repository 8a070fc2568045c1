package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/vrouter/api"
	"github.com/xvr-project/xvr/vrouter/api/apitest"
)

// xvrctl runs the CLI against sock with stdin and returns its exit code,
// stdout and stderr.
func xvrctl(t *testing.T, sock, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWith(strings.NewReader(stdin), append([]string{"--socket", sock}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// ok runs the CLI and fails the test unless it exits 0 with an empty stderr.
func ok(t *testing.T, sock string, args ...string) string {
	t.Helper()
	code, out, errs := xvrctl(t, sock, "", args...)
	if code != 0 || errs != "" {
		t.Fatalf("xvrctl %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func serve(t *testing.T) (*apitest.Backend, string) {
	b := apitest.NewBackend()
	return b, apitest.Serve(t, b)
}

func example(name string) string { return filepath.Join("..", "..", "examples", name) }

func TestApplyExamples(t *testing.T) {
	_, sock := serve(t)
	want := []struct{ file, out string }{ // in order: VRFs are handed out in apply order
		{"vn-left-1.yaml", "network default/vn-left-1 (k8s-vn-left-1-pod-network in k8s-default) configured\n"},
		{"vn-right-1.yaml", "network default/vn-right-1 (k8s-vn-right-1-pod-network in k8s-default) configured\n"},
		{"vn-blue.yaml", "network blue/vn-blue (k8s-vn-blue-pod-network in k8s-blue) configured\n"},
		{"vn-ref.yaml", "network other/left-alias (k8s-left-alias-pod-network in k8s-other) configured\n"},
	}
	for _, w := range want {
		for range 2 { // idempotent
			if got := ok(t, sock, "apply", "-f", example(w.file)); got != w.out {
				t.Errorf("apply %s = %q, want %q", w.file, got, w.out)
			}
		}
	}
	out := ok(t, sock, "network", "list")
	golden(t, out, `
NAMESPACE  NAME        VN                          PROJECT      CIDR                GATEWAY        VRF  FLAGS
blue       vn-blue     k8s-vn-blue-pod-network     k8s-blue     198.18.30.0/24      198.18.30.254  3    fabric,snat
default    vn-left-1   k8s-vn-left-1-pod-network   k8s-default  198.18.10.0/24      198.18.10.254  1    -
default    vn-right-1  k8s-vn-right-1-pod-network  k8s-default  198.18.20.0/24      198.18.20.254  2    -
other      left-alias  k8s-left-alias-pod-network  k8s-other    ref:default-domain  198.18.10.254  1    -`)
	var nets []api.Network
	if err := json.Unmarshal([]byte(ok(t, sock, "-o", "json", "network", "list")), &nets); err != nil || len(nets) != 4 {
		t.Errorf("network list -o json = %+v, %v", nets, err)
	}
}

func TestApplyStdinAndDelete(t *testing.T) {
	_, sock := serve(t)
	left, err := os.ReadFile(example("vn-left-1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	right, err := os.ReadFile(example("vn-right-1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	multi := string(left) + "---\n" + string(right)
	code, out, errs := xvrctl(t, sock, multi, "apply", "-f", "-")
	if code != 0 || strings.Count(out, "configured") != 2 || errs != "" {
		t.Fatalf("apply -f - = %d %q %q", code, out, errs)
	}
	code, out, errs = xvrctl(t, sock, multi, "delete", "-f", "-")
	if code != 0 || out != "network default/vn-left-1 deleted\nnetwork default/vn-right-1 deleted\n" || errs != "" {
		t.Errorf("delete -f - = %d %q %q", code, out, errs)
	}
	code, _, errs = xvrctl(t, sock, "", "network", "delete", "default/vn-left-1")
	if code != 1 || errs != "xvrctl: network default/vn-left-1 not found\n" {
		t.Errorf("delete missing = %d %q", code, errs)
	}
	if out := ok(t, sock, "network", "delete", "vn-left-1", "--ignore-not-found"); out != "network default/vn-left-1 not found\n" {
		t.Errorf("delete --ignore-not-found = %q", out)
	}
}

func TestPortsRoutesAndIntrospection(t *testing.T) {
	b, sock := serve(t)
	b.SetDrops([]api.DropStat{{Reason: "no_route", Count: 3}, {Reason: "ttl_exceeded", Count: 0}})
	ok(t, sock, "apply", "-f", example("vn-left-1.yaml"))
	out := ok(t, sock, "port", "add", "--id", "3f2a9c/eth1", "--network", "default/vn-left-1",
		"--host-if", "xvr3f2a9c1", "--ip", "198.18.10.3", "--mac", "02:00:00:00:10:03")
	if out != "port 3f2a9c/eth1 configured (vif 1, up)\n" {
		t.Errorf("port add = %q", out)
	}
	out = ok(t, sock, "route", "add", "--network", "default/vn-left-1", "--prefix", "198.18.40.0/24", "--port", "3f2a9c/eth1")
	if out != "route 198.18.40.0/24 in default/vn-left-1 configured (port 3f2a9c/eth1)\n" {
		t.Errorf("route add = %q", out)
	}
	ok(t, sock, "route", "add", "--network", "vn-left-1", "--prefix", "198.18.41.0/24", "--discard")
	golden(t, ok(t, sock, "port", "list"), `
ID           NETWORK            HOST-IF     IP           MAC                VIF  STATE
3f2a9c/eth1  default/vn-left-1  xvr3f2a9c1  198.18.10.3  02:00:00:00:10:03  1    up`)
	golden(t, ok(t, sock, "route", "list"), `
NETWORK            PREFIX          NEXT-HOP          SOURCE
default/vn-left-1  198.18.40.0/24  port 3f2a9c/eth1  static
default/vn-left-1  198.18.41.0/24  discard           static`)
	golden(t, ok(t, sock, "vif"), `
VIF  NAME        TYPE     NETWORK            VN                         VRF  MAC                IP           STATE  RX-PKTS  RX-BYTES  TX-PKTS  TX-BYTES  DROPS  SHORTCUT-PKTS
0    eth0        fabric   -                  -                          0    02:00:00:00:00:01  -            up     0        0         0        0         0      0
1    xvr3f2a9c1  virtual  default/vn-left-1  k8s-vn-left-1-pod-network  1    02:00:00:00:10:03  198.18.10.3  up     10       1000      20       2000      1      30`)
	golden(t, ok(t, sock, "rt", "--vn", "default/vn-left-1"), `
PREFIX            NH  TYPE     VIF  STATIC
198.18.10.254/32  1   receive  -    -
198.18.10.3/32    11  encap    1    -
198.18.40.0/24    11  encap    1    yes
198.18.41.0/24    0   discard  -    yes`)
	golden(t, ok(t, sock, "nh"), `
ID  TYPE     VRF  VIF  SRC-MAC            DST-MAC            TUNNEL  REFS
0   discard  0    -    -                  -                  -       1
1   receive  0    -    -                  -                  -       1
11  encap    1    1    02:00:00:00:00:01  02:00:00:00:10:03  -       1`)
	golden(t, ok(t, sock, "dropstats"), `
REASON    COUNT
no_route  3`)
	golden(t, ok(t, sock, "dropstats", "--all", "-o", "json"), `
[
  {
    "reason": "no_route",
    "count": 3
  },
  {
    "reason": "ttl_exceeded",
    "count": 0
  }
]`)
	golden(t, ok(t, sock, "status"), `
socket:   `+sock+`
version:  test
uptime:   1s
pollers:  1
mac:      02:00:00:00:00:01`)
	var vifs []api.Vif
	if err := json.Unmarshal([]byte(ok(t, sock, "vif", "-o", "json")), &vifs); err != nil || len(vifs) != 2 || vifs[1].TXBytes != 2000 {
		t.Errorf("vif -o json = %+v, %v", vifs, err)
	}
	if out := ok(t, sock, "route", "del", "--network", "default/vn-left-1", "--prefix", "198.18.40.0/24"); out != "route 198.18.40.0/24 in default/vn-left-1 deleted\n" {
		t.Errorf("route del = %q", out)
	}
	if out := ok(t, sock, "port", "del", "3f2a9c/eth1"); out != "port 3f2a9c/eth1 deleted\n" {
		t.Errorf("port del = %q", out)
	}
	if out := ok(t, sock, "port", "del", "3f2a9c/eth1", "--ignore-not-found"); out != "port 3f2a9c/eth1 not found\n" {
		t.Errorf("port del --ignore-not-found = %q", out)
	}
}

// golden compares output with want (whose leading newline is dropped) line
// by line, ignoring trailing spaces.
func golden(t *testing.T, got, want string) {
	t.Helper()
	want = strings.TrimPrefix(want, "\n") + "\n"
	trim := func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " ")
		}
		return strings.Join(lines, "\n")
	}
	if trim(got) != trim(want) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestErrors(t *testing.T) {
	b, sock := serve(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"apply", "-f", bad}, "nad: document 1 (default/x): annotations: opencontrail.org/cidr or opencontrail.org/network is required"},
		{[]string{"apply", "-f", "/nonexistent.yaml"}, "no such file"},
		{[]string{"apply"}, "-f FILE is required"},
		{[]string{"network", "get", "default/nosuch"}, "xvrctl: network default/nosuch not found\n"},
		{[]string{"network", "get", "a/b/c"}, `network "a/b/c": want NAMESPACE/NAME`},
		{[]string{"port", "add", "--id", "x"}, "are all required"},
		{[]string{"port", "add", "--id", "a/eth1", "--network", "default/none", "--host-if", "v", "--ip", "198.18.10.3", "--mac", "02:00:00:00:00:01"}, `network "default/none" not found`},
		{[]string{"route", "add", "--network", "a/b", "--prefix", "198.18.40.0/24"}, "--port ID, --tunnel NODE or --discard is required"},
		{[]string{"route", "add", "--network", "a/b", "--prefix", "198.18.40.0/24", "--port", "p", "--discard"}, "exclude each other"},
		{[]string{"rt", "--vn", "default/nosuch"}, "not found"},
		{[]string{"rt"}, `network "": want NAMESPACE/NAME`},
		{[]string{"vif", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"vif", "extra"}, "want 0 argument(s), got 1"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, out, errs := xvrctl(t, sock, "", tt.args...)
		if code != 1 || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("xvrctl %s = %d\nstdout %q\nstderr %q\nwant 1 and %q", strings.Join(tt.args, " "), code, out, errs, tt.wantErr)
		}
	}
	b.SetFail(func(string) error { return errors.New("disk on fire\nsecond line") })
	code, _, errs := xvrctl(t, sock, "", "network", "get", "a/b")
	if code != 1 || errs != "xvrctl: disk on fire second line\n" {
		t.Errorf("500 = %d %q", code, errs)
	}
	code, _, errs = xvrctl(t, filepath.Join(t.TempDir(), "none.sock"), "", "status")
	if code != 1 || !strings.Contains(errs, "cannot reach xvrd at") || strings.Count(errs, "\n") != 1 {
		t.Errorf("no server = %d %q", code, errs)
	}
}

func TestHelpAndSocketEnv(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runWith(strings.NewReader(""), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "xvrctl rt --vn") {
		t.Errorf("help = %d %q", code, errb.String())
	}
	if code := runWith(strings.NewReader(""), []string{"vif", "-h"}, &out, &errb); code != 0 {
		t.Errorf("vif -h = %d", code)
	}
	if code := runWith(strings.NewReader(""), nil, &out, &errb); code != 1 {
		t.Errorf("no args = %d, want 1", code)
	}
	_, sock := serve(t)
	t.Setenv("XVR_SOCKET", sock)
	out.Reset()
	if code := runWith(strings.NewReader(""), []string{"status", "-o", "json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"version": "test"`) {
		t.Errorf("status via $XVR_SOCKET = %d %q %q", code, out.String(), errb.String())
	}
}

func TestPodApplyAndStatus(t *testing.T) {
	b, sock := serve(t)
	if got := ok(t, sock, "pod", "apply", "-f", example("pod-multi.yaml")); got != "pod default/multi-net-pod configured\n" {
		t.Fatalf("pod apply = %q", got)
	}
	var p api.Pod
	if err := json.Unmarshal([]byte(ok(t, sock, "-o", "json", "pod", "get", "default/multi-net-pod")), &p); err != nil ||
		p.Annotations[api.NetworksAnnotation] != `[{"name":"vn-left-1"},{"name":"vn-right-1"}]` || p.UID == "" {
		t.Fatalf("pod get = %+v %v", p, err)
	}
	ok(t, sock, "apply", "-f", example("vn-left-1.yaml"))
	ctx := context.Background()
	if _, err := b.ApplyPort(ctx, api.Port{ID: "c1/eth1", Network: "default/vn-left-1", HostIfName: "xvr1", IP: "198.18.10.1",
		MAC: "02:00:00:00:00:01", Pod: &api.PodRef{Namespace: "default", Name: "multi-net-pod"}, IfName: "eth1", Index: 1}); err != nil {
		t.Fatal(err)
	}
	golden(t, ok(t, sock, "pod", "status", "default/multi-net-pod"), `
INTERFACE  NETWORK            IPS          MAC                DEFAULT
eth1       default/vn-left-1  198.18.10.1  02:00:00:00:00:01  false`)
	code, _, errs := xvrctl(t, sock, "kind: Service\nmetadata:\n  name: x\n", "pod", "apply", "-f", "-")
	if code != 1 || !strings.Contains(errs, "want kind Pod") {
		t.Fatalf("non-pod manifest: %d %q", code, errs)
	}
	ok(t, sock, "pod", "delete", "default/multi-net-pod")
	if code, _, _ := xvrctl(t, sock, "", "pod", "get", "default/multi-net-pod"); code != 1 {
		t.Fatal("deleted pod still there")
	}
}

func TestPolicyAndFlowVerdicts(t *testing.T) {
	b, sock := serve(t)
	ok(t, sock, "apply", "-f", example("vn-left-1.yaml"))
	ctx := context.Background()
	c := api.NewClient(sock)
	defer c.Close()
	for _, p := range []api.Port{
		{ID: "ca/eth1", Network: "default/vn-left-1", HostIfName: "xvrca1", IP: "198.18.10.3", MAC: "02:00:00:00:10:03",
			Pod: &api.PodRef{Namespace: "x", Name: "a", UID: "ua"}, IfName: "eth1"},
		{ID: "cb/eth1", Network: "default/vn-left-1", HostIfName: "xvrcb1", IP: "198.18.10.4", MAC: "02:00:00:00:10:04",
			Pod: &api.PodRef{Namespace: "x", Name: "b"}, IfName: "eth1"},
		{ID: "hand", Network: "default/vn-left-1", HostIfName: "xvrh", IP: "198.18.10.5", MAC: "02:00:00:00:10:05"},
	} {
		if _, err := c.ApplyPort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, ok(t, sock, "policy"), `
INTERFACE  VIF  NETWORK  ISOLATION  DIRECTION  POLICY  PEERS  PORTS`)
	pol := api.Policies{Enforce: true, Interfaces: []api.InterfacePolicy{{Pod: api.PodRef{Namespace: "x", Name: "a"},
		Network: "default/vn-left-1", Policy: policy.Set{Ingress: true, Egress: true,
			IngressRules: []policy.Rule{{Policy: "NetworkPolicy x/web", Peers: []policy.Peer{{CIDR: "198.18.10.4/32"},
				{CIDR: "198.18.0.0/16", Except: []string{"198.18.1.0/24"}}}, Ports: []policy.Port{{Protocol: "TCP", Port: 80, EndPort: 81}, {Protocol: "UDP"}}}},
			EgressRules: []policy.Rule{{Policy: "NetworkPolicy x/dns", AllPeers: true, AllPorts: true}}}}}}
	if err := c.SetPolicies(ctx, pol); err != nil {
		t.Fatal(err)
	}
	golden(t, ok(t, sock, "policy"), `
INTERFACE  VIF  NETWORK            ISOLATION       DIRECTION  POLICY               PEERS                                              PORTS
x/a eth1   1    default/vn-left-1  ingress+egress  ingress    NetworkPolicy x/web  198.18.10.4/32,198.18.0.0/16 except 198.18.1.0/24  TCP/80-81,UDP
x/a eth1   1    default/vn-left-1  ingress+egress  egress     NetworkPolicy x/dns  all                                                all
x/b eth1   2    default/vn-left-1  ingress+egress  -          pending              -                                                  -`)
	var ifs []policedIf
	if err := json.Unmarshal([]byte(ok(t, sock, "policy", "-o", "json")), &ifs); err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 2 || ifs[0].Port != "ca/eth1" || len(ifs[0].Policy.IngressRules) != 1 || !ifs[1].Pending {
		t.Fatalf("policy -o json = %+v", ifs)
	}
	pol.Enforce = false // x/b is no longer policed
	if err := c.SetPolicies(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, sock, "policy"); strings.Contains(out, "x/b") || !strings.Contains(out, "x/a eth1") {
		t.Fatalf("not enforcing, policy lists:\n%s", out)
	}

	b.SetFlows([]api.Flow{
		{Index: 7, RevIndex: 9, VRF: 1, Proto: 6, Src: "198.18.10.4:40000", Dst: "198.18.10.3:80", Action: "forward",
			Packets: 3, Bytes: 180, AgeSecs: 2, Verdict: "allow", Policy: "NetworkPolicy x/web"},
		{Index: 8, RevIndex: 10, VRF: 1, Proto: 17, Src: "198.18.10.4:5353", Dst: "198.18.10.3:81", Action: "drop",
			Packets: 1, Bytes: 60, Verdict: "deny", Policy: "default deny (ingress of x/a eth1)"},
	})
	golden(t, ok(t, sock, "flow"), `
INDEX  REV  VRF  PROTO  SOURCE             DESTINATION     ACTION   NAT  PKTS  BYTES  AGE  VERDICT  POLICY
7      9    1    6      198.18.10.4:40000  198.18.10.3:80  forward  -    3     180    2s   allow    NetworkPolicy x/web
8      10   1    17     198.18.10.4:5353   198.18.10.3:81  drop     -    1     60     0s   deny     default deny (ingress of x/a eth1)`)
	if out := ok(t, sock, "flow", "-o", "json"); !strings.Contains(out, `"verdict": "deny"`) || !strings.Contains(out, `"policy": "NetworkPolicy x/web"`) {
		t.Fatalf("flow -o json lacks the verdicts:\n%s", out)
	}
}
