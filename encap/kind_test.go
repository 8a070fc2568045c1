package encap

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestParsePriority(t *testing.T) {
	good := map[string][]Kind{
		"":                  {MPLSoUDP, VXLAN},
		"  ":                {MPLSoUDP, VXLAN},
		"MPLSoUDP,VXLAN":    {MPLSoUDP, VXLAN},
		"VXLAN,MPLSoUDP":    {VXLAN, MPLSoUDP},
		" vxlan ":           {VXLAN},
		"mplsoudp , VxLaN ": {MPLSoUDP, VXLAN},
	}
	for s, want := range good {
		got, err := ParsePriority(s)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"MPLSoGRE", "VXLAN,VXLAN", "VXLAN,", ",", "MPLSoUDP;VXLAN", "udp"} {
		if got, err := ParsePriority(s); err == nil {
			t.Errorf("ParsePriority(%q) = %v, want error", s, got)
		}
	}
	a, b := DefaultPriority(), DefaultPriority()
	a[0] = VXLAN
	if b[0] != MPLSoUDP {
		t.Error("DefaultPriority shares its slice")
	}
}

func TestChoose(t *testing.T) {
	def := DefaultPriority()
	cases := []struct {
		prio, acc []Kind
		want      Kind
		ok        bool
	}{
		{def, []Kind{VXLAN, MPLSoUDP}, MPLSoUDP, true},
		{def, []Kind{VXLAN}, VXLAN, true},
		{[]Kind{VXLAN, MPLSoUDP}, []Kind{MPLSoUDP, VXLAN}, VXLAN, true},
		{[]Kind{VXLAN}, []Kind{MPLSoUDP}, 0, false},
		{def, nil, 0, false},
		{nil, def, 0, false},
	}
	for _, c := range cases {
		if k, ok := Choose(c.prio, c.acc); k != c.want || ok != c.ok {
			t.Errorf("Choose(%v, %v) = %v %v, want %v %v", c.prio, c.acc, k, ok, c.want, c.ok)
		}
	}
}

func TestSizes(t *testing.T) {
	if Overhead(MPLSoUDP) != 32 || Overhead(VXLAN) != 50 || Overhead(0) != 0 {
		t.Errorf("overheads %d %d %d", Overhead(MPLSoUDP), Overhead(VXLAN), Overhead(0))
	}
	if Port(MPLSoUDP) != 6635 || Port(VXLAN) != 4789 || Port(9) != 0 {
		t.Error("ports")
	}
	for _, c := range []struct {
		mtu   int
		kinds []Kind
		want  int
	}{
		{1500, nil, 1450},
		{1500, []Kind{MPLSoUDP}, 1468},
		{1500, []Kind{MPLSoUDP, VXLAN}, 1450},
		{9000, []Kind{VXLAN}, 8950},
		{40, nil, 0},
	} {
		if got := PodMTU(c.mtu, c.kinds); got != c.want {
			t.Errorf("PodMTU(%d, %v) = %d, want %d", c.mtu, c.kinds, got, c.want)
		}
	}
	if MPLSoUDP.String() != "MPLSoUDP" || VXLAN.String() != "VXLAN" || Kind(7).String() != "Kind(7)" {
		t.Error("kind names")
	}
}

func TestErrors(t *testing.T) {
	seen := map[string]bool{}
	for e := Error(1); e < numErrors; e++ {
		s := e.Error()
		if s == "encap: unknown error" || s == "encap: " || seen[s] {
			t.Errorf("error %d text %q", e, s)
		}
		seen[s] = true
	}
	wrapped := fmt.Errorf("decap: %w", error(ErrBadMPLS))
	var e Error
	if !errors.Is(wrapped, ErrBadMPLS) || !errors.As(wrapped, &e) || e != ErrBadMPLS {
		t.Error("errors.Is/As")
	}
	if Error(0).Error() != "encap: unknown error" || Error(200).Error() != "encap: unknown error" {
		t.Error("out-of-range error text")
	}
}
