package nettest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	rawSendLimit = 60 * time.Second // a raw-send stops after this long
	maxFrame     = 1514
	ethHdrLen    = 14
	ipv4HdrLen   = 20
)

// FrameKinds are the kinds of frames RawSend knows, "mixed" last.
var FrameKinds = []string{"random", "truncated-eth", "truncated-ip", "bad-ihl",
	"bad-total-length", "ipv6", "unknown-ethertype", "mixed"}

// frameGen builds frames into buf; each call returns the next frame.
type frameGen struct {
	rng      *rand.Rand
	src, dst net.HardwareAddr
	buf      [maxFrame]byte
}

var frameBuilders = map[string]func(g *frameGen) []byte{
	"random":            (*frameGen).random,
	"truncated-eth":     (*frameGen).truncatedEth,
	"truncated-ip":      (*frameGen).truncatedIP,
	"bad-ihl":           (*frameGen).badIHL,
	"bad-total-length":  (*frameGen).badTotalLength,
	"ipv6":              (*frameGen).ipv6,
	"unknown-ethertype": (*frameGen).unknownEthertype,
}

// rawSend: IFNAME COUNT KIND [DSTMAC]. Prints "sent=N failed=M".
func rawSend(args []string, out io.Writer) error {
	if len(args) < 3 || len(args) > 4 {
		return errors.New("usage: raw-send IFNAME COUNT KIND [DSTMAC]")
	}
	count, err := strconv.Atoi(args[1])
	if err != nil || count < 0 || count > MaxRawFrames {
		return fmt.Errorf("bad COUNT %q (0..%d)", args[1], MaxRawFrames)
	}
	build, err := builderFor(args[2])
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(args[0])
	if err != nil {
		return fmt.Errorf("interface %s: %w", args[0], err)
	}
	g := &frameGen{rng: newRand(uint64(count)), src: ifi.HardwareAddr, dst: broadcast}
	if len(args) == 4 {
		if g.dst, err = net.ParseMAC(args[3]); err != nil {
			return fmt.Errorf("bad DSTMAC: %w", err)
		}
	}
	sent, failed, err := sendFrames(ifi.Index, count, func() []byte { return build(g) })
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "sent=%d failed=%d\n", sent, failed)
	return err
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func builderFor(kind string) (func(g *frameGen) []byte, error) {
	if kind == "mixed" {
		return (*frameGen).mixed, nil
	}
	if b, ok := frameBuilders[kind]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("unknown frame kind %q", kind)
}

// sendFrames sends count frames from next through an AF_PACKET socket on
// ifindex, for at most rawSendLimit; a frame the kernel refuses is counted
// as failed, not fatal.
func sendFrames(ifindex, count int, next func() []byte) (sent, failed int, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifindex}
	stop := time.Now().Add(rawSendLimit)
	for i := 0; i < count && time.Now().Before(stop); i++ {
		if unix.Sendto(fd, next(), 0, to) != nil {
			failed++
			continue
		}
		sent++
	}
	return sent, failed, nil
}

func (g *frameGen) mixed() []byte {
	kind := FrameKinds[g.rng.IntN(len(FrameKinds)-1)]
	return frameBuilders[kind](g)
}

// random: 0..1514 random bytes; lengths below 14 are refused by the kernel.
func (g *frameGen) random() []byte {
	return g.fill(g.buf[:g.rng.IntN(maxFrame+1)])
}

// truncatedEth: an Ethernet header and nothing else, for an ethertype that
// promises more (IPv4, ARP, IPv6, 802.1Q). Shorter frames than 14 bytes
// cannot be sent on Ethernet links (the kernel checks min_header_len).
func (g *frameGen) truncatedEth() []byte {
	types := [...]uint16{0x0800, 0x0806, 0x86dd, 0x8100}
	return g.eth(types[g.rng.IntN(len(types))])
}

// truncatedIP: Ethernet/IPv4 with 0..19 bytes of a valid IPv4 header.
func (g *frameGen) truncatedIP() []byte {
	f := g.ipv4(ipv4HdrLen + 8)
	return f[:ethHdrLen+g.rng.IntN(ipv4HdrLen)]
}

// badIHL: IHL below 5, or IHL 15 (60 bytes) in a shorter packet.
func (g *frameGen) badIHL() []byte {
	f := g.ipv4(ipv4HdrLen + 8 + g.rng.IntN(24))
	ihl := byte(g.rng.IntN(5))
	if g.rng.IntN(2) == 0 {
		ihl = 15
	}
	f[ethHdrLen] = 0x40 | ihl
	setIPv4Checksum(f[ethHdrLen:])
	return f
}

// badTotalLength: total length below the header, or beyond the frame.
func (g *frameGen) badTotalLength() []byte {
	f := g.ipv4(ipv4HdrLen + 8 + g.rng.IntN(64))
	ipLen := len(f) - ethHdrLen
	bad := g.rng.IntN(ipv4HdrLen)
	if g.rng.IntN(2) == 0 {
		bad = ipLen + 1 + g.rng.IntN(0xffff-ipLen)
	}
	binary.BigEndian.PutUint16(f[ethHdrLen+2:], uint16(bad))
	setIPv4Checksum(f[ethHdrLen:])
	return f
}

// ipv6: a well-formed IPv6/UDP frame between documentation addresses.
func (g *frameGen) ipv6() []byte {
	payload := 8 + g.rng.IntN(64)
	f := g.eth(0x86dd)
	f = g.buf[:len(f)+40+payload]
	h := f[ethHdrLen:]
	g.fill(h)
	copy(h, []byte{0x60, 0, 0, 0})
	binary.BigEndian.PutUint16(h[4:], uint16(payload))
	h[6], h[7] = 17, 64 // UDP, hop limit
	copy(h[8:], netIPv6(1))
	copy(h[24:], netIPv6(2))
	binary.BigEndian.PutUint16(h[44:], uint16(payload))
	h[46], h[47] = 0, 0 // no checksum: receivers must drop or ignore, not crash
	return f
}

// unknownEthertype: an experimental ethertype with 46 random bytes.
func (g *frameGen) unknownEthertype() []byte {
	types := [...]uint16{0x88b5, 0x88b6, 0x1234, 0xffff}
	g.eth(types[g.rng.IntN(len(types))])
	g.fill(g.buf[ethHdrLen : ethHdrLen+46])
	return g.buf[:ethHdrLen+46]
}

// eth writes the Ethernet header and returns the 14-byte frame.
func (g *frameGen) eth(ethertype uint16) []byte {
	copy(g.buf[0:], g.dst)
	copy(g.buf[6:], g.src)
	binary.BigEndian.PutUint16(g.buf[12:], ethertype)
	return g.buf[:ethHdrLen]
}

// ipv4 returns a frame with a valid IPv4 header (198.18.0.0/15 addresses,
// protocol UDP) of total length ipLen and random payload.
func (g *frameGen) ipv4(ipLen int) []byte {
	g.eth(0x0800)
	f := g.buf[:ethHdrLen+ipLen]
	h := f[ethHdrLen:]
	g.fill(h[ipv4HdrLen:])
	copy(h, []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1})
	binary.BigEndian.PutUint16(h[2:], uint16(ipLen))
	setIPv4Checksum(h)
	return f
}

func (g *frameGen) fill(b []byte) []byte {
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 7)) }

func netIPv6(last byte) []byte {
	return []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}
}

// setIPv4Checksum recomputes the checksum over the first 20 bytes of h.
func setIPv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i < ipv4HdrLen; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
}
