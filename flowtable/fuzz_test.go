package flowtable

import "testing"

// FuzzOps decodes 4-byte operations (kind, key, arg, arg) and runs them on a
// small table and the reference model, checking they agree after each.
func FuzzOps(f *testing.F) {
	f.Add([]byte{opInsert, 0, 0, 1, opAccount, 0, 100, 0, opTick, 0, 30, 0, opAge, 0, 0, 0})
	f.Add([]byte{opInsert, 5, 3, 7, opInsert, 6, 3, 8, opClose, 5, 0, 0, opTick, 0, 6, 0, opAge, 0, 0, 0})
	f.Add([]byte{opInsert, 1, 2, 9, opInsert, 9, 2, 1, opDelete, 1, 0, 0, opInsert, 9, 0, 1})
	seq := []byte{}
	for i := range 8 {
		seq = append(seq, opInsert, byte(i*7), byte(i), byte(i*3))
	}
	f.Add(append(seq, opTick, 0, 15, 0, opTick, 0, 15, 0, opAge, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness(t)
		for i := 0; i+4 <= len(data) && i < 4*2000; i += 4 {
			h.step([4]byte(data[i : i+4]))
		}
	})
}
