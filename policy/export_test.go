package policy

// Exported for the external tests and benchmarks (package policy_test).

// Checker is what Compiled and the reference implementation share.
type Checker interface {
	Check(d Direction, peer [4]byte, proto uint8, port uint16) Decision
}

// RefCompile compiles s with the linear reference implementation.
func RefCompile(s *Set) (Checker, error) { return refCompile(s) }

// Footprint is the memory the classifiers of c hold, in bytes.
func (c *Compiled) Footprint() int { return c.footprint() }

// Shape is the size of each classifier of c: rules, distinct rows,
// address intervals, TCP/UDP/SCTP port intervals.
func (c *Compiled) Shape() [2][6]int {
	var out [2][6]int
	for i := range c.cls {
		k := &c.cls[i]
		out[i] = [6]int{k.words, len(k.rows) / k.words, len(k.addr), len(k.port[0].start), len(k.port[1].start), len(k.port[2].start)}
	}
	return out
}
