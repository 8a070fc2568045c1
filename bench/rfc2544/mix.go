package rfc2544

import "fmt"

// Part is one frame size of a Mix and its weight.
type Part struct {
	Size, Weight int
}

// Mix is a frame-size mix; a single-part Mix is a fixed size.
type Mix []Part

// IMIX is the simple IMIX: 7:4:1 of 64, 576 and 1500-byte frames.
var IMIX = Mix{{64, 7}, {576, 4}, {1500, 1}}

// Fixed is the mix of one size.
func Fixed(size int) Mix { return Mix{{size, 1}} }

// Sizes returns the frame sizes of m.
func (m Mix) Sizes() []int {
	s := make([]int, len(m))
	for i, p := range m {
		s[i] = p.Size
	}
	return s
}

// AvgSize is the mean frame size of m in bytes.
func (m Mix) AvgSize() float64 {
	var bytes, w int
	for _, p := range m {
		bytes += p.Size * p.Weight
		w += p.Weight
	}
	if w == 0 {
		return 0
	}
	return float64(bytes) / float64(w)
}

// Name is "IMIX" for IMIX, the size for a fixed mix, or the parts.
func (m Mix) Name() string {
	if len(m) == 1 {
		return fmt.Sprint(m[0].Size)
	}
	if len(m) == len(IMIX) {
		same := true
		for i := range m {
			same = same && m[i] == IMIX[i]
		}
		if same {
			return "IMIX"
		}
	}
	return fmt.Sprint([]Part(m))
}

// Splitter divides a stream of frames among the parts of a mix so that,
// at any point, part i has been given floor(total x w_i / W) frames: the
// mix is exact over time, however the stream is chunked.
type Splitter struct {
	mix   Mix
	wsum  uint64
	total uint64
	given []uint64
	out   []uint64
}

// NewSplitter returns a Splitter for m (weights > 0).
func NewSplitter(m Mix) (*Splitter, error) {
	s := &Splitter{mix: m, given: make([]uint64, len(m)), out: make([]uint64, len(m))}
	for _, p := range m {
		if p.Weight <= 0 {
			return nil, fmt.Errorf("mix part %v: weight must be positive", p)
		}
		s.wsum += uint64(p.Weight)
	}
	if s.wsum == 0 {
		return nil, fmt.Errorf("empty mix")
	}
	return s, nil
}

// Split takes n more frames of the stream and returns how many each part
// gets now (a slice reused by the next call). The counts sum to n, give or
// take the rounding carried to later calls.
func (s *Splitter) Split(n uint64) []uint64 {
	s.total += n
	for i, p := range s.mix {
		want := s.total * uint64(p.Weight) / s.wsum
		s.out[i] = want - s.given[i]
		s.given[i] = want
	}
	return s.out
}
