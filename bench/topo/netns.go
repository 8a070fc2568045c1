package topo

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
)

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = 15

var nameSeq atomic.Uint64

// Name returns a name unique to this process and call, usable for a network
// namespace and a link: prefix, the pid and a counter (base 36).
func Name(prefix string) (string, error) {
	for _, c := range []byte(prefix) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", fmt.Errorf("bad name prefix %q: use [a-z0-9-]", prefix)
		}
	}
	name := prefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.FormatUint(nameSeq.Add(1), 36)
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("name %q longer than %d bytes", name, MaxNameLen)
	}
	return name, nil
}

// NS is a named network namespace created with `ip netns add`.
type NS struct {
	Name string
}

// newNS creates a namespace with a unique name and its loopback up; undo
// gets its deletion.
func newNS(prefix string, u *undo) (*NS, error) {
	name, err := Name(prefix)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	n := &NS{Name: name}
	u.push(n.delete)
	_, err = n.Run("ip", "link", "set", "lo", "up")
	return n, err
}

func (n *NS) delete() error {
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// Run runs args inside n (`ip netns exec NAME args...`) and returns the
// combined output.
func (n *NS) Run(args ...string) (string, error) {
	out, err := exec.Command("ip", n.ExecArgs(args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ExecArgs returns the arguments of `ip` that run args inside n.
func (n *NS) ExecArgs(args ...string) []string {
	return append([]string{"netns", "exec", n.Name}, args...)
}

// runAll runs each command inside n and stops at the first error.
func (n *NS) runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := n.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// MAC returns the hardware address of dev inside n.
func (n *NS) MAC(dev string) (string, error) {
	out, err := n.Run("cat", "/sys/class/net/"+dev+"/address")
	return strings.TrimSpace(out), err
}

// addLink runs `ip link add name ...args` in n and schedules its deletion;
// a link already gone with its namespace is not an error.
func (n *NS) addLink(u *undo, name string, args ...string) error {
	if _, err := n.Run(append([]string{"ip", "link", "add", name}, args...)...); err != nil {
		return err
	}
	u.push(func() error {
		out, err := n.Run("ip", "link", "del", name)
		if err != nil && !strings.Contains(out, "Cannot find device") && !strings.Contains(out, "Cannot open network namespace") {
			return err
		}
		return nil
	})
	return nil
}

// undo is a stack of clean-up steps, run last-in first-out.
type undo struct{ steps []func() error }

func (u *undo) push(f func() error) { u.steps = append(u.steps, f) }

// run runs and forgets every step, returning all their errors joined.
func (u *undo) run() error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i](); err != nil {
			errs = append(errs, err)
		}
	}
	u.steps = nil
	return joinErrs(errs)
}
