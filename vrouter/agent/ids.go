package agent

// ids hands out small dense integers, lowest free first, starting at min.
type ids struct {
	min  uint32
	used map[uint32]bool
}

func newIDs(min uint32) *ids { return &ids{min: min, used: map[uint32]bool{}} }

func (s *ids) next() uint32 {
	id := s.min
	for s.used[id] {
		id++
	}
	s.used[id] = true
	return id
}

// take marks a persisted id as used; it reports false if it already was.
func (s *ids) take(id uint32) bool {
	if id < s.min || s.used[id] {
		return false
	}
	s.used[id] = true
	return true
}

func (s *ids) release(id uint32) { delete(s.used, id) }
