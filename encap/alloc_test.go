package encap

import (
	"testing"
)

func TestZeroAllocs(t *testing.T) {
	inner := innerFrame(t, 1, 2, 64)
	o := testOuter()
	for _, k := range []Kind{MPLSoUDP, VXLAN} {
		buf, off := inChunk(inner)
		var eoff, en int
		var err error
		var d Decapped
		encap := func() {
			copy(buf[off:], inner[:14]) // MPLSoUDP overwrote the inner Ethernet header
			eoff, en, err = Encap(buf, off, len(inner), k, 1000, o, FlowEntropy(inner[14:]))
		}
		decap := func() { err = Decap(buf, eoff, en, &d) }
		innerEth := func() { _, _ = InnerEthernet(buf, &d, rtrMAC, podMAC) }
		bad := func() { err = Decap(buf, eoff, 10, &d) }
		for name, f := range map[string]func(){"Encap": encap, "Decap": decap, "InnerEthernet": innerEth, "Decap error": bad} {
			if a := testing.AllocsPerRun(1000, f); a != 0 {
				t.Errorf("%v %s: %v allocs per run", k, name, a)
			}
		}
		_ = err
	}
	if a := testing.AllocsPerRun(1000, func() { _ = FlowEntropy(inner[14:]) }); a != 0 {
		t.Errorf("FlowEntropy: %v allocs per run", a)
	}
}
