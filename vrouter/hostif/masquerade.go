package hostif

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
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
// POSTROUTING jump to it.
func ensureMasquerade(dev string, p netip.Prefix) error {
	if err := iptables("-t", "nat", "-S", Chain); err != nil {
		if err := iptables("-t", "nat", "-N", Chain); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	jump := []string{"POSTROUTING", "-m", "comment", "--comment", jumpComment, "-j", Chain}
	if err := iptables(append([]string{"-t", "nat", "-C"}, jump...)...); err != nil {
		if err := iptables(append([]string{"-t", "nat", "-A"}, jump...)...); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	rules := masqueradeRules(dev, p)
	ok := true
	for _, r := range rules {
		if iptables(append([]string{"-t", "nat", "-C", Chain}, r...)...) != nil {
			ok = false
			break
		}
	}
	if ok {
		return nil
	}
	if err := iptables("-t", "nat", "-F", Chain); err != nil {
		return fmt.Errorf("host interface: masquerade: %w", err)
	}
	for _, r := range rules {
		if err := iptables(append([]string{"-t", "nat", "-A", Chain}, r...)...); err != nil {
			return fmt.Errorf("host interface: masquerade: %w", err)
		}
	}
	return nil
}

// removeMasquerade deletes the jump and the chain; without iptables there
// is nothing to remove.
func removeMasquerade() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	if iptables("-t", "nat", "-S", Chain) != nil {
		return nil // no chain
	}
	jump := []string{"-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", jumpComment, "-j", Chain}
	for range 16 { // every copy of the jump
		if iptables(jump...) != nil {
			break
		}
	}
	var errs []error
	for _, args := range [][]string{{"-t", "nat", "-F", Chain}, {"-t", "nat", "-X", Chain}} {
		if err := iptables(args...); err != nil {
			errs = append(errs, fmt.Errorf("host interface: removing masquerade: %w", err))
		}
	}
	return errors.Join(errs...)
}
