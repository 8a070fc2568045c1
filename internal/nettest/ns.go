package nettest

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// NS is a named network namespace created with `ip netns add`.
type NS struct {
	Name string
}

// NewNS creates a namespace named Name(t, prefix) with its loopback up, and
// deletes it by that name in t.Cleanup.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	n := &NS{Name: Name(t, prefix)}
	if out, err := ipCmd("netns", "add", n.Name); err != nil {
		t.Fatalf("nettest: ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := ipCmd("netns", "del", n.Name); err != nil {
			t.Errorf("nettest: ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Try runs args inside n (`ip netns exec NAME args...`) and returns the
// combined output.
func (n *NS) Try(args ...string) (string, error) {
	out, err := exec.Command("ip", n.execArgs(args)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w", n.Name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Run is Try that fails t, showing the output, when the command fails.
func (n *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		t.Fatalf("nettest: %v\n%s", err, out)
	}
	return out
}

// AddVeth creates the veth pair a <-> b inside n, with IPv6 disabled on both
// ends and both up, and deletes it by the name a in t.Cleanup. Pass names
// from Name.
func (n *NS) AddVeth(t testing.TB, a, b string) {
	t.Helper()
	n.Run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	n.delLinkOnCleanup(t, a)
	for _, dev := range []string{a, b} {
		n.disableIPv6(t, dev)
		n.Run(t, "ip", "link", "set", dev, "up")
	}
}

// MAC returns the hardware address of the link dev inside n.
func (n *NS) MAC(t testing.TB, dev string) string {
	t.Helper()
	return strings.TrimSpace(n.Run(t, "cat", "/sys/class/net/"+dev+"/address"))
}

func (n *NS) disableIPv6(t testing.TB, dev string) {
	t.Helper()
	n.Run(t, "sysctl", "-qw", "net.ipv6.conf."+dev+".disable_ipv6=1")
}

// delLinkOnCleanup deletes dev in n at cleanup; a link that is already gone
// (its peer's namespace was deleted first) is not an error.
func (n *NS) delLinkOnCleanup(t testing.TB, dev string) {
	t.Cleanup(func() {
		out, err := n.Try("ip", "link", "del", dev)
		if err != nil && !strings.Contains(out, "Cannot find device") {
			t.Errorf("nettest: deleting link %s: %v: %s", dev, err, out)
		}
	})
}

func (n *NS) execArgs(args []string) []string {
	return append([]string{"netns", "exec", n.Name}, args...)
}

func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}
