package flowtable

import "fmt"

// Kind is what the data path does with a packet that hits an entry.
type Kind uint8

const (
	// Forward sends the packet to Action.NextHop (the cached route lookup).
	Forward Kind = iota + 1
	// Drop discards the packet (a policy decision, counted by the caller).
	Drop
	// NATSrc rewrites the source to Action.IP:Port, then forwards to NextHop:
	// the forward entry of a source-NATed flow.
	NATSrc
	// NATDst rewrites the destination to Action.IP:Port, then forwards to
	// NextHop: the reverse entry of a source-NATed flow (back to the pod).
	NATDst
)

var kindNames = [...]string{"", "forward", "drop", "nat-src", "nat-dst"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// IsNAT reports whether k rewrites the packet (NATSrc or NATDst).
func (k Kind) IsNAT() bool { return k == NATSrc || k == NATDst }

// Action is an entry's decision. IP and Port are the NAT rewrite values of
// NATSrc and NATDst (for ICMP echo, Port is the identifier); for Forward and
// Drop the table keeps them as given, for the caller's own use (the
// pipeline's network-policy verdicts keep their generation and decision
// there).
type Action struct {
	Kind    Kind
	NextHop uint32
	IP      [4]byte
	Port    uint16
}

func (a *Action) valid() bool { return a.Kind >= Forward && a.Kind <= NATDst }
