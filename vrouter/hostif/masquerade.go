package hostif

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Chain is the nat chain that holds xvr's egress rule; POSTROUTING jumps
// to it.
const Chain = "XVR-POSTROUTING"

// MasqueradePorts is the source port range masqueraded TCP and UDP get: it
// leaves out the fabric SNAT pools (TCP 56000-57023, UDP 57024-58047),
// whose return traffic the fabric XDP program steers to xvr instead of the
// kernel when a VN uses fabric SNAT.
const MasqueradePorts = "1024-55999"

const jumpComment = "xvr: pods to the outside"

// MasqueradeRecheck is how long a masquerade state Configure verified
// stands without a new look: checking it forks iptables up to five times
// (~1 ms of CPU each), and xvrd's reconcile runs every 2 s on CPUs it may
// share with its pollers, which a millisecond stalls by more than a fill
// ring absorbs. A rule removed under xvrd comes back within this long
// (kube-proxy resyncs its iptables every 30 s too); a change of device or
// prefix is applied at once.
const MasqueradeRecheck = 30 * time.Second

// masqMemo is the masquerade state last verified, per network namespace.
var masqMemo struct {
	sync.Mutex
	key string // netns inode and the state: "off", or device and prefix
	at  time.Time
}

// iptablesRun is the seam to iptables (tests count calls through it).
var iptablesRun = iptables

// memoKey names the wanted state ("off", or device and prefix) in the
// calling thread's network namespace.
func memoKey(want string) (string, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", false // no memo: check every time
	}
	return fmt.Sprintf("%d %s", st.Ino, want), true
}

// memoized runs check unless the state key names was verified within
// MasqueradeRecheck, and remembers a check that succeeded.
func memoized(key string, ok bool, check func() error) error {
	masqMemo.Lock()
	defer masqMemo.Unlock()
	now := time.Now()
	if ok && masqMemo.key == key && now.Sub(masqMemo.at) < MasqueradeRecheck {
		return nil
	}
	masqMemo.key = ""
	if err := check(); err != nil {
		return err
	}
	if ok {
		masqMemo.key, masqMemo.at = key, now
	}
	return nil
}

// forgetMasquerade drops the memo, so that the next Configure looks again.
func forgetMasquerade() {
	masqMemo.Lock()
	masqMemo.key = ""
	masqMemo.Unlock()
}

// iptables runs iptables (waiting for the xtables lock) and returns its
// combined output on failure.
func iptables(args ...string) error {
	cmd := exec.Command("iptables", append([]string{"-w", "5"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// masqueradeRules are the chain's rules for pods of p leaving through any
// device but the host interface dev (traffic back to pods keeps its source).
func masqueradeRules(dev string, p netip.Prefix) [][]string {
	base := []string{"-s", p.String(), "!", "-d", p.String(), "!", "-o", dev}
	comment := []string{"-m", "comment", "--comment", jumpComment}
	var out [][]string
	for _, proto := range []string{"tcp", "udp"} {
		r := append(append(append([]string{}, base...), "-p", proto), comment...)
		out = append(out, append(r, "-j", "MASQUERADE", "--to-ports", MasqueradePorts))
	}
	return append(out, append(append(append([]string{}, base...), comment...), "-j", "MASQUERADE"))
}

// ensureMasquerade makes Chain hold exactly the rules for p and dev, and
// POSTROUTING jump to it (checked at most every MasqueradeRecheck while
// they stay the same).
func ensureMasquerade(dev string, p netip.Prefix) error {
	key, ok := memoKey(dev + " " + p.String())
	return memoized(key, ok, func() error { return checkMasquerade(dev, p) })
}

func checkMasquerade(dev string, p netip.Prefix) error {
	if err := iptablesRun("-t", "nat", "-S", Chain); err != nil {
		if err := iptablesRun("-t", "nat", "-N", Chain); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	jump := []string{"POSTROUTING", "-m", "comment", "--comment", jumpComment, "-j", Chain}
	if err := iptablesRun(append([]string{"-t", "nat", "-C"}, jump...)...); err != nil {
		if err := iptablesRun(append([]string{"-t", "nat", "-A"}, jump...)...); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	rules := masqueradeRules(dev, p)
	ok := true
	for _, r := range rules {
		if iptablesRun(append([]string{"-t", "nat", "-C", Chain}, r...)...) != nil {
			ok = false
			break
		}
	}
	if ok {
		return nil
	}
	if err := iptablesRun("-t", "nat", "-F", Chain); err != nil {
		return fmt.Errorf("host interface: masquerade: %w", err)
	}
	for _, r := range rules {
		if err := iptablesRun(append([]string{"-t", "nat", "-A", Chain}, r...)...); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	return nil
}

// removeMasquerade deletes the jump and the chain; without iptables there
// is nothing to remove. Like ensureMasquerade it looks again only after
// MasqueradeRecheck.
func removeMasquerade() error {
	key, ok := memoKey("off")
	return memoized(key, ok, deleteMasquerade)
}

func deleteMasquerade() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	if iptablesRun("-t", "nat", "-S", Chain) != nil {
		return nil // no chain
	}
	jump := []string{"-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", jumpComment, "-j", Chain}
	for range 16 { // every copy of the jump
		if iptablesRun(jump...) != nil {
			break
		}
	}
	var errs []error
	for _, args := range [][]string{{"-t", "nat", "-F", Chain}, {"-t", "nat", "-X", Chain}} {
		if err := iptablesRun(args...); err != nil {
			errs = append(errs, fmt.Errorf("host interface: removing masquerade: %w", err))
		}
	}
	return errors.Join(errs...)
}
