package xdptest

// fifo is a fixed-capacity queue: a fake ring.
type fifo[T any] struct {
	buf     []T
	head, n int
}

func newFifo[T any](size int) fifo[T] { return fifo[T]{buf: make([]T, size)} }

func (f *fifo[T]) len() int { return f.n }

func (f *fifo[T]) full() bool { return f.n == len(f.buf) }

// push appends v, reporting false when the queue is full.
func (f *fifo[T]) push(v T) bool {
	if f.full() {
		return false
	}
	f.buf[(f.head+f.n)%len(f.buf)] = v
	f.n++
	return true
}

// pop removes the oldest entry.
func (f *fifo[T]) pop() (v T, ok bool) {
	if f.n == 0 {
		return v, false
	}
	v = f.buf[f.head]
	f.head = (f.head + 1) % len(f.buf)
	f.n--
	return v, true
}

// reset empties the queue.
func (f *fifo[T]) reset() { f.head, f.n = 0, 0 }
