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

// Sparse is the alternative classifier of decision 0008, built from c,
// and its footprint in bytes.
func Sparse(c *Compiled) (Checker, int) {
	sc := newSparse(c)
	return sc, sc.footprint()
}
