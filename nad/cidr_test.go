package nad

import (
	"strings"
	"testing"
)

// TestParseCIDRRange: a VN prefix must be /8 to /29 and made of unicast
// addresses; the project's test ranges stay valid.
func TestParseCIDRRange(t *testing.T) {
	good := []struct{ in, want string }{
		{"198.18.0.0/15", "198.18.0.0/15"},
		{"198.19.0.0/16", "198.19.0.0/16"},
		{"198.18.10.7/24", "198.18.10.0/24"},
		{"198.18.50.0/29", "198.18.50.0/29"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"1.0.0.0/8", "1.0.0.0/8"},
		{"223.255.255.0/24", "223.255.255.0/24"},
		{"126.0.0.0/8", "126.0.0.0/8"},
		{"128.0.0.0/8", "128.0.0.0/8"},
	}
	for _, tt := range good {
		if got, err := parseCIDR(tt.in); err != nil || got != tt.want {
			t.Errorf("parseCIDR(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		{"0.0.0.0/0", "0.0.0.0/0 is shorter than /8"},
		{"198.18.0.0/7", "198.18.0.0/7 is shorter than /8"},
		{"128.0.0.0/1", "is shorter than /8"},
		{"0.0.0.0/8", "0.0.0.0/8 is in 0.0.0.0/8 (this network)"},
		{"0.1.2.0/24", "0.1.2.0/24 is in 0.0.0.0/8 (this network)"},
		{"127.0.0.0/8", "127.0.0.0/8 is in 127.0.0.0/8 (loopback)"},
		{"127.0.0.1/24", "127.0.0.1/24 is in 127.0.0.0/8 (loopback)"},
		{"224.0.0.0/8", "224.0.0.0/8 is in 224.0.0.0/4 (multicast)"},
		{"239.255.255.0/24", "is in 224.0.0.0/4 (multicast)"},
		{"240.0.0.0/8", "240.0.0.0/8 is in 240.0.0.0/4 (reserved, up to the 255.255.255.255 broadcast)"},
		{"255.255.255.248/29", "is in 240.0.0.0/4 (reserved"},
		{"255.255.255.255/32", "too small"},
		{"198.18.10.0/31", "too small"},
	}
	for _, tt := range bad {
		got, err := parseCIDR(tt.in)
		if err == nil || got != "" || !strings.Contains(err.Error(), tt.want) ||
			!strings.HasPrefix(err.Error(), "annotation "+AnnotationCIDR+": ") {
			t.Errorf("parseCIDR(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.want)
		}
	}
}
