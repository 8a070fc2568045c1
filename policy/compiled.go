package policy

import (
	"encoding/binary"
	"math/bits"
)

// Decision is the outcome of Compiled.Check: the index of the deciding rule
// (in Set.Rules of the direction) when allowed, or one of the constants.
type Decision int32

const (
	// NotIsolated: the direction is not isolated; allowed.
	NotIsolated Decision = -1
	// Denied: isolated and no rule allows it.
	Denied Decision = -2
)

// Allowed reports whether d lets the packet through.
func (d Decision) Allowed() bool { return d != Denied }

// Compiled is a Set ready for the data path: Check allocates nothing and
// takes no lock. It is immutable; share it freely.
type Compiled struct {
	set Set
	cls [2]classifier // by Direction: Ingress, Egress
}

// Compile validates s and returns its compiled form. The Compiled keeps a
// shallow copy of s (see the package doc).
func Compile(s *Set) (*Compiled, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{set: *s}
	for _, d := range []Direction{Ingress, Egress} {
		if err := c.cls[d].build(s.Rules(d)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Set is the Set c was compiled from (do not modify it).
func (c *Compiled) Set() *Set { return &c.set }

// Isolated reports whether c isolates d.
func (c *Compiled) Isolated(d Direction) bool { return c.set.Isolated(d) }

// Check decides a packet crossing the interface in direction d: peer is
// the other end's address (the source for ingress, the destination for
// egress), proto the IP protocol, port the destination port (0 where the
// protocol has none). The decision is the first rule, in Set order, that
// allows the packet. Safe for concurrent use; no allocation; a direction
// other than Ingress is Egress, as in Set.Isolated.
func (c *Compiled) Check(d Direction, peer [4]byte, proto uint8, port uint16) Decision {
	if !c.set.Isolated(d) {
		return NotIsolated
	}
	k := &c.cls[Egress]
	if d == Ingress {
		k = &c.cls[Ingress]
	}
	return k.check(binary.BigEndian.Uint32(peer[:]), proto, port)
}

// Policy names the object behind decision x in direction d: a rule's
// Policy, or "" for NotIsolated and Denied.
func (c *Compiled) Policy(d Direction, x Decision) string {
	r := c.set.Rules(d)
	if x < 0 || int(x) >= len(r) {
		return ""
	}
	return r[x].Policy
}

// classifier is one direction's rules as two partitions: the IPv4 space
// cut into intervals whose addresses every rule treats alike, and each
// protocol's port space likewise. Each interval names a row: the bitset
// (one bit per rule, in rule order) of the rules matching it. A packet's
// rules are its address row AND its port row; the lowest bit is the first
// matching rule. Rows are interned, so equal sets are stored once.
type classifier struct {
	words    int      // row width in uint64 words (>= 1)
	rows     []uint64 // the distinct rows, each words long
	addr     []uint32 // interval starts, ascending; addr[0] == 0
	addrRow  []uint32 // offset in rows of each address interval's row
	port     [3]ports // TCP, UDP, SCTP
	otherRow uint32   // offset of the row of every other protocol: AllPorts rules
}

// ports is one protocol's partition of 0..65535.
type ports struct {
	start []uint16 // ascending; start[0] == 0
	row   []uint32 // offset in rows
}

func (k *classifier) check(a uint32, proto uint8, port uint16) Decision {
	var q uint32
	switch proto {
	case ProtoTCP:
		q = k.port[0].lookup(port)
	case ProtoUDP:
		q = k.port[1].lookup(port)
	case ProtoSCTP:
		q = k.port[2].lookup(port)
	default:
		q = k.otherRow
	}
	p := k.addrRow[last(k.addr, a)]
	w := k.words
	pr := k.rows[p : int(p)+w]
	qr := k.rows[q : int(q)+w]
	qr = qr[:len(pr)]
	for i, x := range pr {
		if x &= qr[i]; x != 0 {
			return Decision(i*64 + bits.TrailingZeros64(x))
		}
	}
	return Denied
}

func (t *ports) lookup(port uint16) uint32 {
	return t.row[last(t.start, port)]
}

// last is the index of the last element of s (ascending, s[0] == 0) that
// is <= x: a binary search without data-dependent branches (its cost is
// log2(len(s)) dependent loads, whatever x is). Addresses are uint32,
// ports uint16 (each type its own instantiation: no dictionary calls).
func last[T uint16 | uint32](s []T, x T) int {
	lo, n := 0, len(s)
	for n > 1 {
		half := n >> 1
		// lo += half if s[lo+half] <= x, by the sign of the difference:
		// the compiler makes a branch of the if, mispredicted half the time.
		d := int64(x) - int64(s[lo+half])
		lo += half &^ int(d>>63)
		n -= half
	}
	return lo
}
