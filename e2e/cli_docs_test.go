package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xvr-project/xvr/internal/nettest"
	"github.com/xvr-project/xvr/vrouter/api"
)

// cliExample is one "# xvrctl …" line of a fenced block in docs/cli.md and
// the output lines the doc shows for it.
type cliExample struct {
	line    int
	cmd     string // without the prompt and a trailing "# comment"
	comment string
	out     []string
}

// cliExamples reads every xvrctl example of docs/cli.md, in order.
func cliExamples(t *testing.T) []cliExample {
	t.Helper()
	b, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	var exs []cliExample
	fenced := false
	for i, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "```"):
			fenced = !fenced
		case !fenced:
		case strings.HasPrefix(l, "# xvrctl "):
			cmd, comment, _ := strings.Cut(strings.TrimPrefix(l, "# "), " # ")
			exs = append(exs, cliExample{line: i + 1, cmd: strings.TrimSpace(cmd), comment: strings.TrimSpace(comment)})
		case len(exs) > 0 && l != "":
			exs[len(exs)-1].out = append(exs[len(exs)-1].out, l)
		}
	}
	if len(exs) < 25 {
		t.Fatalf("found %d xvrctl examples in docs/cli.md, want the whole page's", len(exs))
	}
	return exs
}

// TestCLIDocExamples runs every xvrctl example of docs/cli.md, in the page's
// order, against a real xvrd, with the examples/ files and the bad.yaml the
// page shows. A few examples need state the page shows but does not make
// (a port the network delete refuses over, a pod's ports); the test makes it
// just before them through the API. Each example must succeed or fail as
// the page shows; a documented error must be the very message; a one-line
// answer must be the very line; a table must have the documented header
// and rows of that many columns; JSON must have the documented keys; the
// status list the documented fields.
func TestCLIDocExamples(t *testing.T) {
	n := docNode(t)
	dir := t.TempDir()
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(examples, filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(badNADs), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, veth := range []string{"xvr3f2a9c1", "xvr77b0e11"} { // the page's host ends
		n.ns.Run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", nettest.Name(t, "xdp"))
		delLinkOnCleanup(t, n.ns, veth)
		n.ns.Run(t, "ip", "link", "set", veth, "up")
	}
	c := api.NewClient(n.socket)
	defer c.Close()
	port := func(id, network, hostIf, ip, mac string, pod *api.PodRef, index int) func(t *testing.T) {
		return func(t *testing.T) {
			p := api.Port{ID: id, Network: network, HostIfName: hostIf, IP: ip, MAC: mac, Pod: pod, Index: index}
			if pod != nil {
				p.ContainerID, p.IfName = "doc1", strings.Split(id, "/")[1]
			}
			if _, err := c.ApplyPort(context.Background(), p); err != nil {
				t.Fatalf("port %s: %v", id, err)
			}
		}
	}
	pod := &api.PodRef{Namespace: "default", Name: "multi-net-pod"}
	before := map[string]func(t *testing.T){
		"xvrctl network delete default/vn-left-1": port("3f2a9c/eth1", leftVN, "xvr3f2a9c1", "198.18.10.3", "02:00:00:00:10:03", nil, 0),
		"xvrctl port list":                        port("77b0e1/eth1", leftVN, "xvr77b0e11", "198.18.10.4", "02:00:00:00:10:04", nil, 0),
		"xvrctl route add --network default/vn-left-1 --prefix 198.18.40.0/24 --port 3f2a9c/eth1": port("3f2a9c/eth1",
			leftVN, "xvr3f2a9c1", "198.18.10.3", "02:00:00:00:10:03", nil, 0),
		"xvrctl pod status default/multi-net-pod": func(t *testing.T) {
			port("doc1/eth1", leftVN, "xvrdoc1e1", "", "", pod, 1)(t)
			port("doc1/eth2", rightVN, "xvrdoc1e2", "", "", pod, 2)(t)
		},
	}
	exs := cliExamples(t)
	defer func() { t.Logf("ran the %d xvrctl examples of docs/cli.md", len(exs)) }()
	for _, ex := range exs {
		if f := before[ex.cmd]; f != nil {
			f(t)
		}
		out, failed := runDocExample(t, n, dir, ex)
		if err := checkDocExample(ex, out, failed); err != "" {
			t.Errorf("docs/cli.md:%d: %s: %s\ngot:\n%s", ex.line, ex.cmd, err, out)
		}
	}
}

// docNode is an xvrd with a fabric NIC (on an underlay bridge), so that the
// page's tunnel routes and its fabric vif exist.
func docNode(t *testing.T) *node {
	nettest.RequireRoot(t)
	o := newUnderlay(t, "xdu", "xdb")
	o.encap, o.vni = "MPLSoUDP,VXLAN", map[string]uint32{}
	return o.newNode(t, 0).node
}

// badNADs is a bad.yaml that gives the error docs/cli.md shows.
const badNADs = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: vn-ok, namespace: default, annotations: {opencontrail.org/cidr: 198.18.60.0/24}}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: vn-x, namespace: default, annotations: {opencontrail.org/cidr: 198.18.10.0/31}}
`

// runDocExample runs ex's command in dir with xvrd's socket in $XVR_SOCKET
// (a socket nothing serves for "xvrd not running", shown as the page's
// path) and returns what it printed and whether it failed.
func runDocExample(t *testing.T, n *node, dir string, ex cliExample) (string, bool) {
	t.Helper()
	args := strings.Fields(ex.cmd)[1:]
	socket := n.socket
	if ex.comment == "xvrd not running" {
		socket = filepath.Join(dir, "nothing.sock")
	}
	cmd := exec.Command(bin("xvrctl"), args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "XVR_SOCKET="+socket)
	out, err := cmd.CombinedOutput()
	return strings.ReplaceAll(string(out), socket, api.DefaultSocket), err != nil
}

var tableHeader = regexp.MustCompile(`^[A-Z][A-Z-]*( +[A-Z][A-Z-]*)*$`)

// checkDocExample compares what ex printed with the page; "" if it agrees.
func checkDocExample(ex cliExample, out string, failed bool) string {
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	wantErr := len(ex.out) > 0 && strings.HasPrefix(ex.out[0], "xvrctl: ")
	switch {
	case wantErr != failed:
		return "the page shows it failing: " + yesNo(wantErr)
	case wantErr || len(ex.out) == 1 && !tableHeader.MatchString(ex.out[0]):
		if strings.Join(got, "\n") != strings.Join(ex.out, "\n") {
			return "want\n" + strings.Join(ex.out, "\n")
		}
	case len(ex.out) > 0 && tableHeader.MatchString(ex.out[0]):
		want := strings.Fields(ex.out[0])
		if strings.Join(strings.Fields(got[0]), " ") != strings.Join(want, " ") {
			return "header, want " + ex.out[0]
		}
		for _, row := range got[1:] {
			if !alignedRow(got[0], row) {
				return "row " + row + " has no cell under each header"
			}
		}
	case len(ex.out) > 0 && ex.out[0] == "{":
		var w, g map[string]any
		if err := json.Unmarshal([]byte(strings.Join(ex.out, "\n")), &w); err != nil {
			return "the page's JSON: " + err.Error()
		}
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			return "not JSON: " + err.Error()
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				return "no key " + k
			}
		}
	default: // "key: value" lines (status)
		for _, l := range ex.out {
			key, _, _ := strings.Cut(l, " ")
			if !strings.Contains("\n"+out, "\n"+key+" ") {
				return "no " + key + " line"
			}
		}
	}
	return ""
}

// alignedRow reports whether row has a cell starting under each column of
// header (tables are left-aligned; a cell may hold spaces).
func alignedRow(header, row string) bool {
	for i := 1; i < len(header); i++ {
		if header[i-1] == ' ' && header[i] != ' ' && (i >= len(row) || row[i-1] != ' ' || row[i] == ' ') {
			return false
		}
	}
	return true
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
