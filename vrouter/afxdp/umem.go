package afxdp

import (
	"errors"
	"fmt"
	"math/bits"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UmemConfig sizes a Umem and the rings of its sockets. Zero fields take
// the defaults; sizes must be powers of two.
type UmemConfig struct {
	NumFrames int // frames in the UMEM; default 4096
	FrameSize int // chunk size, 2048 or 4096 (aligned mode); default 2048
	// Headroom is extra space the kernel leaves before received data, on
	// top of XDP_PACKET_HEADROOM (256); default 0.
	Headroom int
	// Ring sizes in entries, per socket; default 2048 each.
	FillSize, CompletionSize, RxSize, TxSize int
}

// Owner tags of a frame: free, the caller's, or lent to socket slot tag-tagSocket.
const (
	tagFree   uint16 = 0
	tagUser   uint16 = 1
	tagSocket uint16 = 2
	maxSlots         = 1<<16 - int(tagSocket)
)

// ErrClosed is returned when a closed Umem or Socket is used.
var ErrClosed = errors.New("afxdp: closed")

// Umem is a region of frames shared by several sockets, with a fixed free
// list and a per-frame owner tag. It is owned by one goroutine (a poller)
// together with all its sockets; nothing here is safe for concurrent use.
type Umem struct {
	cfg      UmemConfig
	mem      []byte
	shift    uint     // log2(FrameSize)
	free     []uint64 // stack of free chunk addresses, cap NumFrames
	owner    []uint16 // per frame index: tagFree, tagUser or a socket tag
	socks    []*Socket
	reg      *Socket       // the socket a new one shares through first (bindShared), or nil
	mode     SocketOptions // bind mode of every open socket
	badFrees uint64
}

func (c *UmemConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.NumFrames, 4096)
	def(&c.FrameSize, 2048)
	def(&c.FillSize, 2048)
	def(&c.CompletionSize, 2048)
	def(&c.RxSize, 2048)
	def(&c.TxSize, 2048)
}

func pow2(v int) bool { return v > 0 && v&(v-1) == 0 }

func (c *UmemConfig) validate() error {
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("afxdp: frame size %d: want 2048 or 4096", c.FrameSize)
	}
	if c.NumFrames <= 0 || c.NumFrames > 1<<22 {
		return fmt.Errorf("afxdp: frame count %d out of range", c.NumFrames)
	}
	if c.Headroom < 0 || c.Headroom+unix.XDP_PACKET_HEADROOM+64 > c.FrameSize {
		return fmt.Errorf("afxdp: headroom %d too large for frame size %d", c.Headroom, c.FrameSize)
	}
	for _, n := range []int{c.FillSize, c.CompletionSize, c.RxSize, c.TxSize} {
		if !pow2(n) || n > 1<<20 {
			return fmt.Errorf("afxdp: ring size %d: want a power of two", n)
		}
	}
	return nil
}

// NewUmem maps and populates the frame memory. The kernel registration
// (XDP_UMEM_REG) happens on the first Open, and again on an Open that finds
// no bound socket to share the UMEM through.
func NewUmem(cfg UmemConfig) (*Umem, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(-1, 0, cfg.NumFrames*cfg.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap umem: %w", err)
	}
	u := &Umem{
		cfg:   cfg,
		mem:   mem,
		shift: uint(bits.TrailingZeros(uint(cfg.FrameSize))),
		free:  make([]uint64, cfg.NumFrames),
		owner: make([]uint16, cfg.NumFrames),
	}
	for i := range u.free {
		u.free[i] = uint64(cfg.NumFrames-1-i) << u.shift // Alloc hands out low addresses first
	}
	return u, nil
}

// Mem returns the whole region; frame data is Mem()[d.Addr : d.Addr+d.Len].
func (u *Umem) Mem() []byte { return u.mem }

// FrameSize returns the chunk size in bytes.
func (u *Umem) FrameSize() int { return u.cfg.FrameSize }

// Headroom returns where received data starts inside a chunk.
func (u *Umem) Headroom() int { return unix.XDP_PACKET_HEADROOM + u.cfg.Headroom }

// FreeFrames returns how many frames are on the free list.
func (u *Umem) FreeFrames() int { return len(u.free) }

// BadFrees counts Free calls for frames the caller did not own (ignored).
func (u *Umem) BadFrees() uint64 { return u.badFrees }

// index returns the frame index of any address inside a chunk.
func (u *Umem) index(addr uint64) (uint64, bool) {
	i := addr >> u.shift
	return i, i < uint64(len(u.owner))
}

// Alloc takes a free frame for the caller and returns its chunk base.
func (u *Umem) Alloc() (addr uint64, ok bool) {
	n := len(u.free)
	if n == 0 {
		return 0, false
	}
	addr = u.free[n-1]
	u.free = u.free[:n-1]
	u.owner[addr>>u.shift] = tagUser
	return addr, true
}

// Free gives back a frame the caller owns; any address inside the chunk
// will do. Frames the caller does not own are ignored and counted.
func (u *Umem) Free(addr uint64) {
	if !u.release(addr, tagUser) {
		u.badFrees++
	}
}

// release puts the frame at addr on the free list if its owner is tag.
func (u *Umem) release(addr uint64, tag uint16) bool {
	i, ok := u.index(addr)
	if !ok || u.owner[i] != tag {
		return false
	}
	u.owner[i] = tagFree
	u.free = append(u.free, i<<u.shift) // never grows: at most NumFrames entries
	return true
}

// lend records that the frame at addr now belongs to tag.
func (u *Umem) lend(addr uint64, tag uint16) {
	if i, ok := u.index(addr); ok {
		u.owner[i] = tag
	}
}

// reclaim frees every frame tagged tag and returns how many.
func (u *Umem) reclaim(tag uint16) int {
	n := 0
	for i, t := range u.owner {
		if t == tag {
			u.owner[i] = tagFree
			u.free = append(u.free, uint64(i)<<u.shift)
			n++
		}
	}
	return n
}

// Close closes every open socket and unmaps the memory. Frames and slices
// obtained from Mem must not be used afterwards.
func (u *Umem) Close() error {
	var errs []error
	for _, s := range u.socks {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if u.mem != nil {
		if err := unix.Munmap(u.mem); err != nil {
			errs = append(errs, fmt.Errorf("munmap umem: %w", err))
		}
		u.mem = nil
	}
	return errors.Join(errs...)
}

// register hands the memory to the kernel on socket fd (XDP_UMEM_REG).
func (u *Umem) register(fd int) error {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&u.mem[0]))),
		Len:      uint64(len(u.mem)),
		Size:     uint32(u.cfg.FrameSize),
		Headroom: uint32(u.cfg.Headroom),
	}
	err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
	if err != nil {
		return fmt.Errorf("setsockopt xdp_umem_reg: %w", err)
	}
	return nil
}

// slot returns a free socket slot index.
func (u *Umem) slot() (int, error) {
	for i, s := range u.socks {
		if s == nil {
			return i, nil
		}
	}
	if len(u.socks) >= maxSlots {
		return 0, fmt.Errorf("afxdp: too many sockets on one umem")
	}
	u.socks = append(u.socks, nil)
	return len(u.socks) - 1, nil
}

// hasSockets reports whether any socket is open on u.
func (u *Umem) hasSockets() bool {
	for _, o := range u.socks {
		if o != nil {
			return true
		}
	}
	return false
}

// forget drops socket s and, if later sockets would have bound through it,
// picks another open socket not known to be unbound (or none).
func (u *Umem) forget(s *Socket) {
	u.socks[s.slot] = nil
	if u.reg != s {
		return
	}
	u.reg = nil
	for _, o := range u.socks {
		if o != nil && !o.unbound {
			u.reg = o
			return
		}
	}
}
