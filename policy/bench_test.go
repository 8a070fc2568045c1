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
			allowed := 0
			pkts := policytest.Packets(&s, 4000, seed)
			for _, p := range pkts {
				got, want := c.Check(p.Dir, p.Peer, p.Proto, p.Port), ref.Check(p.Dir, p.Peer, p.Proto, p.Port)
				if got != want {
					t.Fatalf("n=%d seed=%d: Check(%+v) = %d, reference %d", n, seed, p, got, want)
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
