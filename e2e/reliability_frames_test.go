package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A flood of hostile frames, built and sent by the test process itself
// through an AF_PACKET socket made inside the sender's namespace. Every kind
// is one xvrd must drop (and count); none is a frame a correct vRouter would
// forward or answer.

// floodTarget addresses the frames: the sender's own MAC and IPv4 address,
// the receiver's MAC (the vRouter's, or the fabric NIC's), an address the
// receiver owns and one in a VN the sender is not on.
type floodTarget struct {
	srcMAC, dstMAC net.HardwareAddr
	srcIP          netip.Addr
	dstIP          netip.Addr // on the sender's subnet, or the node IP for the fabric
	foreignIP      netip.Addr // another VN's pod: must not be reached
	labels         []uint32   // fabric: MPLS labels xvrd uses (for valid-looking tunnels)
	vnis           []uint32   // fabric: VNIs xvrd uses
}

// frameKind builds one hostile frame into b and returns it.
type frameKind struct {
	name  string
	build func(g *floodGen, b []byte) []byte
}

type floodGen struct {
	rng *rand.Rand
	to  floodTarget
}

const (
	ethLen  = 14
	ipLen   = 20
	udpLen  = 8
	maxSend = 1514
)

// podKinds are the frames a hostile pod sends to its host veth.
var podKinds = []frameKind{
	{"bad-ip-checksum", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		f[ethLen+10] ^= 0x5a // the checksum no longer matches
		return f
	}},
	{"bad-ihl", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		f[ethLen] = 0x40 | byte(g.rng.IntN(5)) // IHL 0..4
		ipChecksum(f[ethLen : ethLen+ipLen])
		return f
	}},
	{"ihl-beyond-frame", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 4)
		f[ethLen] = 0x4f // 60-byte header in a 32-byte packet
		ipChecksum(f[ethLen : ethLen+ipLen])
		return f
	}},
	{"bad-total-length", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		binary.BigEndian.PutUint16(f[ethLen+2:], uint16(len(f)-ethLen+1+g.rng.IntN(1000)))
		ipChecksum(f[ethLen : ethLen+ipLen])
		return f
	}},
	{"truncated-ip", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		return f[:ethLen+g.rng.IntN(ipLen)]
	}},
	{"runt", func(g *floodGen, b []byte) []byte { // 14..59 bytes, shorter than Ethernet's minimum
		f := g.eth(b, 0x0800)
		n := ethLen + g.rng.IntN(60-ethLen)
		g.fill(f[ethLen:n])
		return f[:n]
	}},
	{"ip-version-5", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		f[ethLen] = 0x55
		ipChecksum(f[ethLen : ethLen+ipLen])
		return f
	}},
	{"other-vn", func(g *floodGen, b []byte) []byte { // well formed, to a VN the sender is not on
		return g.udp(b, g.to.foreignIP, 40)
	}},
	{"broadcast-ip", func(g *floodGen, b []byte) []byte {
		return g.udp(b, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 40)
	}},
	{"multicast-ip", func(g *floodGen, b []byte) []byte {
		return g.udp(b, netip.AddrFrom4([4]byte{224, 0, 0, byte(1 + g.rng.IntN(250))}), 40)
	}},
	{"arp-reply", func(g *floodGen, b []byte) []byte { // unsolicited, claiming another address
		return g.arp(b, 2, 1, 6, 4, g.to.srcIP, g.to.dstIP)
	}},
	{"arp-foreign", func(g *floodGen, b []byte) []byte { // request for an address outside the VN
		return g.arp(b, 1, 1, 6, 4, g.to.srcIP, g.to.foreignIP)
	}},
	{"arp-gratuitous", func(g *floodGen, b []byte) []byte {
		return g.arp(b, 1, 1, 6, 4, g.to.srcIP, g.to.srcIP)
	}},
	{"arp-bad-lengths", func(g *floodGen, b []byte) []byte {
		return g.arp(b, 1, uint16(g.rng.IntN(0xffff)+2), byte(g.rng.IntN(6)), byte(5+g.rng.IntN(200)), g.to.srcIP, g.to.dstIP)
	}},
	{"arp-truncated", func(g *floodGen, b []byte) []byte {
		f := g.arp(b, 1, 1, 6, 4, g.to.srcIP, g.to.dstIP)
		return f[:ethLen+g.rng.IntN(28)]
	}},
	{"ipv6", func(g *floodGen, b []byte) []byte {
		f := g.eth(b, 0x86dd)
		n := ethLen + 40 + g.rng.IntN(64)
		g.fill(f[ethLen:n])
		f[ethLen] = 0x60
		return f[:n]
	}},
	{"unknown-ethertype", func(g *floodGen, b []byte) []byte {
		f := g.eth(b, [...]uint16{0x88b5, 0x1234, 0xffff, 0x0801}[g.rng.IntN(4)])
		g.fill(f[ethLen : ethLen+46])
		return f[:ethLen+46]
	}},
	{"vlan-tagged", func(g *floodGen, b []byte) []byte {
		f := g.udp(b[4:], g.to.dstIP, 40) // room for the tag
		f = b[:len(f)+4]
		g.eth(f, 0x8100)
		binary.BigEndian.PutUint16(f[14:], uint16(g.rng.IntN(4096)))
		binary.BigEndian.PutUint16(f[16:], 0x0800)
		return f
	}},
	{"random", func(g *floodGen, b []byte) []byte {
		f := g.fill(b[:ethLen+g.rng.IntN(maxSend-ethLen+1)])
		copy(f, g.to.dstMAC) // to the receiver, so nothing filters it out on the way
		if binary.BigEndian.Uint16(f[12:]) == 0x0806 {
			f[12] = 0x88 // random ARP could be a valid request xvrd rightly answers
		}
		return f
	}},
	{"oversized", func(g *floodGen, b []byte) []byte { // beyond the MTU: the sending kernel refuses it
		return g.udp(b, g.to.dstIP, maxSend-ethLen-ipLen-udpLen+1+g.rng.IntN(400))
	}},
}

// fabricKinds are the frames a hostile host on the underlay sends to a
// node's fabric NIC. Most are overlay UDP to the node IP, which the fabric
// XDP program steers to xvrd; the kernel: ones the program passes to the
// node's kernel, so xvrd never sees them (they show that the host side
// survives them too).
var fabricKinds = []frameKind{
	{"mpls-unknown-label", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 6635, 4+28)
		putMPLS(f[ethLen+ipLen+udpLen:], 900000+uint32(g.rng.IntN(1000)))
		g.innerIPv4(f[ethLen+ipLen+udpLen+4:], false)
		return f
	}},
	{"mpls-truncated", func(g *floodGen, b []byte) []byte {
		return g.udpPort(b, 6635, g.rng.IntN(4))
	}},
	{"mpls-bad-inner", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 6635, 4+28)
		putMPLS(f[ethLen+ipLen+udpLen:], g.to.labels[g.rng.IntN(len(g.to.labels))])
		g.innerIPv4(f[ethLen+ipLen+udpLen+4:], true)
		return f
	}},
	{"mpls-not-bottom", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 6635, 8+28)
		putMPLS(f[ethLen+ipLen+udpLen:], g.to.labels[0])
		f[ethLen+ipLen+udpLen+2] &^= 1 // bottom-of-stack bit off: a label stack xvrd does not use
		putMPLS(f[ethLen+ipLen+udpLen+4:], g.to.labels[0])
		g.innerIPv4(f[ethLen+ipLen+udpLen+8:], false)
		return f
	}},
	{"vxlan-bad-flags", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 4789, 8+14+28)
		g.fill(f[ethLen+ipLen+udpLen : ethLen+ipLen+udpLen+8])
		f[ethLen+ipLen+udpLen] &^= 0x08 // I flag off: no valid VNI
		return f
	}},
	{"vxlan-unknown-vni", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 4789, 8+14+28)
		putVXLAN(f[ethLen+ipLen+udpLen:], 0xfff000+uint32(g.rng.IntN(0xfff)))
		return f
	}},
	{"vxlan-truncated-inner", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 4789, 8+g.rng.IntN(14+20))
		putVXLAN(f[ethLen+ipLen+udpLen:], g.to.vnis[g.rng.IntN(len(g.to.vnis))])
		return f
	}},
	{"overlay-bad-udp-length", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, [2]uint16{6635, 4789}[g.rng.IntN(2)], 4+28)
		binary.BigEndian.PutUint16(f[ethLen+ipLen+4:], uint16(len(f)-ethLen-ipLen+1+g.rng.IntN(500)))
		return f
	}},
	// The underlay bridge drops this one: with br_netfilter on
	// (bridge-nf-call-iptables=1, as on this host) a bridge checks the IPv4
	// header of what it forwards. From a real NIC it would reach xvrd.
	{"bridge:overlay-bad-ip-checksum", func(g *floodGen, b []byte) []byte {
		f := g.udpPort(b, 6635, 4+28)
		putMPLS(f[ethLen+ipLen+udpLen:], g.to.labels[0])
		g.innerIPv4(f[ethLen+ipLen+udpLen+4:], false)
		f[ethLen+10] ^= 0xa5
		return f
	}},
	// Passed to the node's kernel by the fabric program:
	{"kernel:random", podKinds[len(podKinds)-2].build},
	{"kernel:arp-bad-lengths", func(g *floodGen, b []byte) []byte {
		return g.arp(b, 1, 7, 9, 200, g.to.srcIP, g.to.dstIP)
	}},
	{"kernel:bad-ihl", func(g *floodGen, b []byte) []byte {
		f := g.udp(b, g.to.dstIP, 40)
		f[ethLen] = 0x43
		ipChecksum(f[ethLen : ethLen+ipLen])
		return f
	}},
}

// reachesXvrd reports whether frames of the fabric kind named name reach
// xvrd: all but those the fabric program passes to the node's kernel
// (kernel:) and those the underlay drops on the way (bridge:).
func reachesXvrd(name string) bool {
	return !strings.HasPrefix(name, "kernel:") && !strings.HasPrefix(name, "bridge:")
}

func (g *floodGen) eth(b []byte, ethertype uint16) []byte {
	copy(b[0:], g.to.dstMAC)
	copy(b[6:], g.to.srcMAC)
	binary.BigEndian.PutUint16(b[12:], ethertype)
	return b
}

func (g *floodGen) fill(b []byte) []byte {
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

// udp writes Ethernet/IPv4/UDP from the sender to dst with payload random
// bytes and returns the frame.
func (g *floodGen) udp(b []byte, dst netip.Addr, payload int) []byte {
	g.eth(b, 0x0800)
	n := ethLen + ipLen + udpLen + payload
	f := b[:n]
	h := f[ethLen:]
	src, d := g.to.srcIP.As4(), dst.As4()
	copy(h, []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0})
	binary.BigEndian.PutUint16(h[2:], uint16(min(ipLen+udpLen+payload, 0xffff)))
	copy(h[12:], src[:])
	copy(h[16:], d[:])
	ipChecksum(h[:ipLen])
	u := h[ipLen:]
	binary.BigEndian.PutUint16(u[0:], uint16(40000+g.rng.IntN(20000)))
	binary.BigEndian.PutUint16(u[2:], 9)
	binary.BigEndian.PutUint16(u[4:], uint16(min(udpLen+payload, 0xffff)))
	u[6], u[7] = 0, 0
	g.fill(u[udpLen:])
	return f
}

// udpPort is udp to the target's address and dport.
func (g *floodGen) udpPort(b []byte, dport uint16, payload int) []byte {
	f := g.udp(b, g.to.dstIP, payload)
	binary.BigEndian.PutUint16(f[ethLen+ipLen+2:], dport)
	return f
}

// innerIPv4 writes a 28-byte inner IPv4/UDP packet; bad breaks its header.
func (g *floodGen) innerIPv4(b []byte, bad bool) {
	copy(b, []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 10, 99, 198, 18, 10, 98})
	ipChecksum(b[:ipLen])
	if bad {
		switch g.rng.IntN(3) {
		case 0:
			b[10] ^= 0xff
		case 1:
			b[0] = 0x42
		default:
			binary.BigEndian.PutUint16(b[2:], 2000)
		}
	}
}

func (g *floodGen) arp(b []byte, op, htype uint16, hlen, plen byte, spa, tpa netip.Addr) []byte {
	f := g.eth(b, 0x0806)
	a := f[ethLen:]
	binary.BigEndian.PutUint16(a[0:], htype)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = hlen, plen
	binary.BigEndian.PutUint16(a[6:], op)
	s, t := spa.As4(), tpa.As4()
	copy(a[8:], g.to.srcMAC)
	copy(a[14:], s[:])
	copy(a[18:], g.to.dstMAC)
	copy(a[24:], t[:])
	return f[:ethLen+28]
}

func putMPLS(b []byte, label uint32) {
	binary.BigEndian.PutUint32(b, label<<12|1<<8|64) // bottom of stack, TTL 64
}

func putVXLAN(b []byte, vni uint32) {
	binary.BigEndian.PutUint32(b, 0x08000000)
	binary.BigEndian.PutUint32(b[4:], vni<<8)
}

func ipChecksum(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
}

// floodResult is what a flood sent, by kind: frames the kernel accepted and
// frames it refused (EMSGSIZE for frames beyond the MTU).
type floodResult struct {
	sent, refused map[string]int
	took          time.Duration
}

func (r floodResult) total() (sent, refused int) {
	for _, n := range r.sent {
		sent += n
	}
	for _, n := range r.refused {
		refused += n
	}
	return sent, refused
}

func (r floodResult) String() string {
	var names []string
	for k := range r.sent {
		names = append(names, k)
	}
	for k := range r.refused {
		if _, ok := r.sent[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%d", k, r.sent[k])
		if r.refused[k] > 0 {
			fmt.Fprintf(&b, "(+%d refused)", r.refused[k])
		}
	}
	s, f := r.total()
	return fmt.Sprintf("%d sent, %d refused by the sending kernel in %v:%s", s, f, r.took.Round(time.Millisecond), b.String())
}

// flood sends frames of kinds round-robin out of dev in namespace nsName,
// paced at rate frames/s, until count frames or d have passed.
func flood(nsName, dev string, to floodTarget, kinds []frameKind, rate, count int, d time.Duration) (floodResult, error) {
	var fd int
	var ifindex int
	if err := inNetns(nsName, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("interface %s: %w", dev, err)
		}
		ifindex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		return nil
	}); err != nil {
		return floodResult{}, err
	}
	defer unix.Close(fd)
	g := &floodGen{rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3)), to: to}
	res := floodResult{sent: map[string]int{}, refused: map[string]int{}}
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex}
	buf := make([]byte, 4096)
	start := time.Now()
	for i := 0; i < count && time.Since(start) < d; i++ {
		k := kinds[i%len(kinds)]
		f := k.build(g, buf)
		err := unix.Sendto(fd, f, 0, sa)
		switch {
		case err == nil:
			res.sent[k.name]++
		case errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.EINVAL):
			res.refused[k.name]++
		case errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN):
			res.refused[k.name]++
			time.Sleep(100 * time.Microsecond)
		default:
			return res, fmt.Errorf("sending %s: %w", k.name, err)
		}
		if i%100 == 99 { // pace: frame i is due at start + i/rate
			if ahead := time.Duration(i+1)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	res.took = time.Since(start)
	return res, nil
}
