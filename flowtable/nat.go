package flowtable

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// TF's fabric SNAT port ranges.
const (
	TCPPortMin, TCPPortMax = 56000, 57023
	UDPPortMin, UDPPortMax = 57024, 58047
)

// PortPool hands out ports from [lo, hi] without locks: a bitmap of atomic
// words claimed with CAS. Successive Allocs start at successive words, so
// concurrent allocators rarely touch the same word and a freed port is not
// handed out again at once.
type PortPool struct {
	lo    uint16
	n     uint32
	words []atomic.Uint64
	next  atomic.Uint32
	used  atomic.Int32
}

// NewPortPool returns a pool of the ports lo..hi inclusive.
func NewPortPool(lo, hi uint16) (*PortPool, error) {
	if lo == 0 || hi < lo {
		return nil, fmt.Errorf("port range %d-%d invalid", lo, hi)
	}
	n := uint32(hi-lo) + 1
	return &PortPool{lo: lo, n: n, words: make([]atomic.Uint64, (n+63)/64)}, nil
}

// Alloc takes a free port; false when none is left. No allocation.
func (p *PortPool) Alloc() (uint16, bool) {
	nw := uint32(len(p.words))
	start := p.next.Add(1)
	for k := range nw {
		w := (start + k) % nw
		if b, ok := p.claimIn(w); ok {
			p.used.Add(1)
			return p.lo + uint16(w*64+b), true
		}
	}
	return 0, false
}

// claimIn sets the lowest clear valid bit of word w.
func (p *PortPool) claimIn(w uint32) (uint32, bool) {
	word := &p.words[w]
	for {
		v := word.Load()
		b := uint32(bits.TrailingZeros64(^v))
		if b == 64 || w*64+b >= p.n {
			return 0, false
		}
		if word.CompareAndSwap(v, v|1<<b) {
			return b, true
		}
	}
}

// Free returns port to the pool; false if it is outside the range or was
// not allocated.
func (p *PortPool) Free(port uint16) bool {
	if port < p.lo || uint32(port-p.lo) >= p.n {
		return false
	}
	i := uint32(port - p.lo)
	word, bit := &p.words[i/64], uint64(1)<<(i%64)
	for {
		v := word.Load()
		if v&bit == 0 {
			return false
		}
		if word.CompareAndSwap(v, v&^bit) {
			p.used.Add(-1)
			return true
		}
	}
}

// InUse is the number of allocated ports.
func (p *PortPool) InUse() int { return int(p.used.Load()) }

// SNAT is one node IP's source-NAT port pools. ICMP echo identifiers come
// from their own pool over the UDP range.
type SNAT struct {
	IP             [4]byte
	TCP, UDP, ICMP *PortPool
}

// NewSNAT returns the pools of ip with TF's ranges.
func NewSNAT(ip [4]byte) *SNAT {
	tcp, _ := NewPortPool(TCPPortMin, TCPPortMax)
	udp, _ := NewPortPool(UDPPortMin, UDPPortMax)
	icmp, _ := NewPortPool(UDPPortMin, UDPPortMax)
	return &SNAT{IP: ip, TCP: tcp, UDP: udp, ICMP: icmp}
}

// pool returns the pool for an IP protocol number, nil if none.
func (s *SNAT) pool(proto uint8) *PortPool {
	switch proto {
	case 6:
		return s.TCP
	case 17:
		return s.UDP
	case 1:
		return s.ICMP
	}
	return nil
}

// Alloc takes a port (or ICMP identifier) for proto (6, 17 or 1).
func (s *SNAT) Alloc(proto uint8) (uint16, bool) {
	if p := s.pool(proto); p != nil {
		return p.Alloc()
	}
	return 0, false
}

// Free returns a port taken with Alloc; false if it was not allocated.
func (s *SNAT) Free(proto uint8, port uint16) bool {
	if p := s.pool(proto); p != nil {
		return p.Free(port)
	}
	return false
}
