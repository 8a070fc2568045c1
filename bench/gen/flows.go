package gen

import "encoding/binary"

// MaxPortFlows is how many flows a generator numbers by UDP source port
// alone (FlowPortBase..65535). The AF_XDP generator goes beyond it by
// source address too (flowCycle); the live-frames pacer does not.
const MaxPortFlows = 1<<16 - FlowPortBase

// MaxFlows is how many flows the AF_XDP generator can number: MaxPortFlows
// source ports from each of 16 source addresses.
const MaxFlows = 16 * MaxPortFlows

// flowCycle numbers the frames of an AF_XDP generator's sends: frame i
// carries flow k = i mod n, from UDP source port FlowPortBase + k mod
// MaxPortFlows and from the frame's source address with k / MaxPortFlows
// in bits 4-7 of its last byte (a.b.c.d XOR step<<4: with d = 1, .1, .17,
// .33, … .241), the IPv4 checksum fixed for each. The frame's UDP checksum
// must be 0 (none): the port changes under it.
type flowCycle struct {
	n    uint32
	next uint64
	hdrs [][ipv4HdrLen]byte // per address step: the frame's IPv4 header with that source
}

// newFlowCycle prepares n flows of frame (an Ethernet/IPv4 (IHL 5)/UDP
// frame); n must be at most MaxFlows.
func newFlowCycle(frame []byte, n uint32) *flowCycle {
	c := &flowCycle{n: n}
	steps := (n + MaxPortFlows - 1) / MaxPortFlows
	for k := uint32(0); k < steps; k++ {
		var h [ipv4HdrLen]byte
		copy(h[:], frame[ethHdrLen:])
		h[15] ^= byte(k << 4)
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], ^fold(sum16(h[:], 0)))
		c.hdrs = append(c.hdrs, h)
	}
	return c
}

// write gives f (a copy of the frame) the next flow's source.
func (c *flowCycle) write(f []byte) {
	k := uint32(c.next % uint64(c.n))
	c.next++
	copy(f[ethHdrLen:], c.hdrs[k/MaxPortFlows][:])
	binary.BigEndian.PutUint16(f[udpSportOff:], uint16(FlowPortBase+k%MaxPortFlows))
}
