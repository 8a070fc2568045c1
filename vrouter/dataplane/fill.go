package dataplane

import "time"

// A socket's fill ring must hold every frame that arrives while its poller
// is off the CPU: at 400 kpps a 3 ms stall (the kernel's own work on the
// forwarding CPU) needs 1200 frames, three times the 512 a socket keeps by
// default. Lending that many to every socket would tie up the UMEM in
// sockets that receive nothing, so a poller deepens only the fill rings of
// the sockets that are busy: every fillWindow it gives each socket enough
// frames for fillCover at the rate it received in the last window, at least
// FillTarget and at most FillMax, within fillShare of its UMEM's frames.
const (
	fillWindow = time.Millisecond
	fillCover  = 5 * time.Millisecond
	// defaultFillRing is the fill ring's size where the poller was not
	// told another (afxdp's default, and xdptest's): no target exceeds
	// the ring.
	defaultFillRing = 2048
)

// fillShare is the part of a UMEM's frames its sockets' fill targets may
// add up to (as a fraction fillShare/4): the rest is for frames in flight.
// A UMEM admits sockets at FillTarget up to half its frames (groupFor), so
// growth can always take a quarter more.
const fillShare = 3

// fillDecay: a target above what its socket needs shrinks by 1/fillDecay
// a window, halving in ~180 ms: it stays deep across the pauses of bursty
// traffic (and between a benchmark's trials), where a socket that had to
// grow again would lose frames in the window it takes.
const fillDecay = 256

// nextFill returns a socket's fill target for the next window: enough for
// fillCover at the rate of recv frames in elapsed, clamped to base..most.
// It grows at once and shrinks by 1/fillDecay per window.
func nextFill(cur, recv int, elapsed time.Duration, base, most int) int {
	if elapsed <= 0 {
		return cur
	}
	want := int(int64(recv) * int64(fillCover) / int64(elapsed))
	want = min(max(want, base), most)
	if want >= cur {
		return want
	}
	return max(want, cur-max(cur/fillDecay, 1))
}

// adaptFill re-sizes the fill targets of every socket once fillWindow has
// passed since the last time (now is on the poller's clock, see since).
// It runs between rounds and allocates nothing.
func (p *Poller) adaptFill(now int64) {
	elapsed := time.Duration(now - p.fillStart)
	if elapsed < fillWindow {
		return
	}
	p.fillStart = now
	base, most := p.FillTarget, p.FillMax
	if most == 0 {
		most = p.fillRing
	}
	most = min(max(most, base), p.fillRing)
	for _, g := range p.groups {
		g.filling = 0
	}
	for _, pt := range p.ports {
		pt.g.filling += pt.fill
	}
	for _, pt := range p.ports {
		next := nextFill(pt.fill, pt.recv, elapsed, base, most)
		if room := pt.g.frames*fillShare/4 - pt.g.filling; next > pt.fill {
			next = max(pt.fill, min(next, pt.fill+room))
		}
		pt.recv = 0
		if next == pt.fill {
			continue
		}
		pt.g.filling += next - pt.fill
		pt.fill = next
		pt.sock.SetFillTarget(next)
	}
}
