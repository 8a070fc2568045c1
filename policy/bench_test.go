package policy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xvr-project/xvr/policy"
	"github.com/xvr-project/xvr/policy/policytest"
)

// TestSyntheticMatchesReference checks the classifier against the linear
// reference on the benchmark's own sets and packets, and that those
// packets see both verdicts.
func TestSyntheticMatchesReference(t *testing.T) {
	for _, n := range []int{0, 1, 10, 100, 1000} {
		for seed := range uint64(3) {
			s := policytest.Synthetic(n, seed)
			c, err := policy.Compile(&s)
			if err != nil {
				t.Fatalf("n=%d seed=%d: %v", n, seed, err)
			}
			ref, err := policy.RefCompile(&s)
			if err != nil {
				t.Fatal(err)
			}
			sparse, _ := policy.Sparse(c)
			allowed := 0
			pkts := policytest.Packets(&s, 4000, seed)
			for _, p := range pkts {
				got, want := c.Check(p.Dir, p.Peer, p.Proto, p.Port), ref.Check(p.Dir, p.Peer, p.Proto, p.Port)
				if got != want {
					t.Fatalf("n=%d seed=%d: Check(%+v) = %d, reference %d", n, seed, p, got, want)
				}
				if sp := sparse.Check(p.Dir, p.Peer, p.Proto, p.Port); sp != want {
					t.Fatalf("n=%d seed=%d: sparse Check(%+v) = %d, reference %d", n, seed, p, sp, want)
				}
				if got.Allowed() {
					allowed++
				}
			}
			if n >= 100 && (allowed < len(pkts)/10 || allowed > len(pkts)*9/10) {
				t.Errorf("n=%d seed=%d: %d of %d packets allowed: the mix is lopsided", n, seed, allowed, len(pkts))
			}
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		s := policytest.Synthetic(n, 1)
		c, err := policy.Compile(&s)
		if err != nil {
			b.Fatal(err)
		}
		pkts := policytest.Packets(&s, 1<<12, 2)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var sink policy.Decision
			start := time.Now()
			i := 0
			for b.Loop() {
				p := &pkts[i&(len(pkts)-1)]
				sink += c.Check(p.Dir, p.Peer, p.Proto, p.Port)
				i++
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "checks/s")
			b.ReportMetric(float64(c.Footprint()), "classifier-B")
			_ = sink
		})
	}
}

// BenchmarkCheckReference is the linear implementation the classifier
// replaced, for comparison.
func BenchmarkCheckReference(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		s := policytest.Synthetic(n, 1)
		c, err := policy.RefCompile(&s)
		if err != nil {
			b.Fatal(err)
		}
		pkts := policytest.Packets(&s, 1<<12, 2)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var sink policy.Decision
			i := 0
			for b.Loop() {
				p := &pkts[i&(len(pkts)-1)]
				sink += c.Check(p.Dir, p.Peer, p.Proto, p.Port)
				i++
			}
			_ = sink
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := policytest.Synthetic(n, 1)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := policy.Compile(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckSparse is the alternative of decision 0008: rule lists
// per address interval instead of bitset rows.
func BenchmarkCheckSparse(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		s := policytest.Synthetic(n, 1)
		c, err := policy.Compile(&s)
		if err != nil {
			b.Fatal(err)
		}
		sc, size := policy.Sparse(c)
		pkts := policytest.Packets(&s, 1<<12, 2)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var sink policy.Decision
			i := 0
			for b.Loop() {
				p := &pkts[i&(len(pkts)-1)]
				sink += sc.Check(p.Dir, p.Peer, p.Proto, p.Port)
				i++
			}
			b.ReportMetric(float64(size), "classifier-B")
			_ = sink
		})
	}
}

// worst is the worst case of both forms: n rules covering every address,
// each on its own TCP port, and a packet no rule allows (the bitset form
// ANDs every word, the sparse form walks the whole list).
func worst(n int) policy.Set {
	s := policy.Set{Ingress: true, Egress: true}
	for i := range n {
		s.IngressRules = append(s.IngressRules, policy.Rule{
			Peers: []policy.Peer{{CIDR: "0.0.0.0/0"}},
			Ports: []policy.Port{{Protocol: "TCP", Port: uint16(1 + i)}},
		})
	}
	return s
}

func BenchmarkCheckWorst(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := worst(n)
		c, err := policy.Compile(&s)
		if err != nil {
			b.Fatal(err)
		}
		sc, _ := policy.Sparse(c)
		for _, impl := range []struct {
			name string
			c    policy.Checker
		}{{"bitset", c}, {"sparse", sc}} {
			b.Run(fmt.Sprintf("%s/rules=%d", impl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				var sink policy.Decision
				for b.Loop() {
					sink += impl.c.Check(policy.Ingress, [4]byte{198, 18, 0, 1}, policy.ProtoTCP, 0)
				}
				if sink != policy.Denied*policy.Decision(b.N) {
					b.Fatalf("allowed")
				}
			})
		}
	}
}
