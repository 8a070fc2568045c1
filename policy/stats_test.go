package policy_test

import "testing"
import "github.com/xvr-project/xvr/policy"
import "github.com/xvr-project/xvr/policy/policytest"

func TestStats(t *testing.T) {
	for _, n := range []int{1, 100, 1000, 10000} {
		s := policytest.Synthetic(n, 1)
		c, _ := policy.Compile(&s)
		t.Logf("n=%d shape=%v footprint=%d", n, c.Shape(), c.Footprint())
	}
}
