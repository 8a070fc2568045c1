package encap

import (
	"fmt"
	"strings"
)

// Kind is an encapsulation. The zero Kind is none.
type Kind uint8

// Encapsulations xvr speaks.
const (
	MPLSoUDP Kind = iota + 1 // RFC 7510, inner IPv4 packet behind one MPLS label
	VXLAN                    // RFC 7348, inner Ethernet frame behind a 24-bit VNI
)

// UDP destination ports of the encapsulations.
const (
	PortMPLSoUDP = 6635
	PortVXLAN    = 4789
)

// Bytes of outer headers: Ethernet 14 + IPv4 20 + UDP 8, then 4 (MPLS) or 8 (VXLAN).
const (
	outerL3   = 20 + 8
	mplsHdrs  = 14 + outerL3 + 4
	vxlanHdrs = 14 + outerL3 + 8
)

// String returns the name ParsePriority accepts.
func (k Kind) String() string {
	switch k {
	case MPLSoUDP:
		return "MPLSoUDP"
	case VXLAN:
		return "VXLAN"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Port returns the UDP destination port of k, 0 for an unknown Kind.
func Port(k Kind) uint16 {
	switch k {
	case MPLSoUDP:
		return PortMPLSoUDP
	case VXLAN:
		return PortVXLAN
	}
	return 0
}

// Overhead returns how many bytes k adds on the wire to an inner Ethernet
// frame, which is also the headroom Encap needs: 32 for MPLSoUDP (outer
// Ethernet+IPv4+UDP+MPLS replace the inner Ethernet header) and 50 for VXLAN
// (the whole inner frame is carried). The same number is the difference
// between the fabric's and the pod's IP MTU. It is 0 for an unknown Kind.
func Overhead(k Kind) int {
	switch k {
	case MPLSoUDP:
		return mplsHdrs - 14
	case VXLAN:
		return vxlanHdrs
	}
	return 0
}

// PodMTU returns the IP MTU pods may use when their traffic may leave in any
// of kinds over a fabric of IP MTU fabricMTU: fabricMTU minus the largest
// overhead. No kinds means all of them. The result is never below 0.
func PodMTU(fabricMTU int, kinds []Kind) int {
	worst := Overhead(VXLAN)
	if len(kinds) > 0 {
		worst = 0
		for _, k := range kinds {
			worst = max(worst, Overhead(k))
		}
	}
	return max(fabricMTU-worst, 0)
}

// DefaultPriority returns the encapsulation priority used when none is
// configured: MPLSoUDP, then VXLAN (TF's default). The slice is the caller's.
func DefaultPriority() []Kind { return []Kind{MPLSoUDP, VXLAN} }

// ParsePriority parses a comma-separated priority list such as
// "MPLSoUDP,VXLAN" (names case-insensitive, spaces around names ignored).
// An empty or blank string gives DefaultPriority. Unknown or repeated names
// are errors.
func ParsePriority(s string) ([]Kind, error) {
	if strings.TrimSpace(s) == "" {
		return DefaultPriority(), nil
	}
	var out []Kind
	for name := range strings.SplitSeq(s, ",") {
		k, err := parseKind(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("encap priority %q: %w", s, err)
		}
		if contains(out, k) {
			return nil, fmt.Errorf("encap priority %q: %s listed twice", s, k)
		}
		out = append(out, k)
	}
	return out, nil
}

func parseKind(name string) (Kind, error) {
	switch strings.ToLower(name) {
	case "mplsoudp":
		return MPLSoUDP, nil
	case "vxlan":
		return VXLAN, nil
	}
	return 0, fmt.Errorf("unknown encapsulation %q (want MPLSoUDP or VXLAN)", name)
}

// Choose returns the first Kind of priority that accepted contains: the
// encapsulation to use towards a node that accepts the kinds accepted. It
// returns false when they have none in common (accepted empty included).
func Choose(priority, accepted []Kind) (Kind, bool) {
	for _, k := range priority {
		if contains(accepted, k) {
			return k, true
		}
	}
	return 0, false
}

func contains(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
