package rfc2544

import (
	"math"
	"time"
)

// FineSlice is the pacer's time slice for a generator whose sends cost
// little more than their frames (AF_XDP TX): at rate r it sends bursts of
// about r*FineSlice frames, one per slice, and sleeps in between, so that a
// datapath's zero-loss rate is not bound by how deep its rings absorb a
// burst. A live-frames test run costs about 20 ms of fixed set-up and
// tear-down on kernel 6.18 (an RCU grace period, not CPU time): paced, it
// could keep no slice under ~25 ms, bursts 25 times larger.
const FineSlice = time.Millisecond

// Burst is the burst size Pace uses at rate with slice (at least 1).
func Burst(rate float64, slice time.Duration) uint64 {
	return max(1, uint64(rate*slice.Seconds()))
}

// maxChunk bounds one unpaced send call.
const maxChunk = 1 << 16

// SendFunc sends up to n frames and returns how many it sent.
type SendFunc func(n uint64) (uint64, error)

// Pace offers total frames through send at rate frames/s (+Inf or 0:
// unpaced, as fast as send goes), one burst per slice (FineSlice for an
// AF_XDP generator), and stops early after limit. It returns the frames sent and the time from the first send until the last returned.
//
// The generator has no rate control of its own, so pacing is by bursts:
// every slice the frames due since the start (rate x elapsed, minus those
// sent) go out in one burst of at most 4 slices' worth. The offered rate is
// exact over the trial; within a slice frames leave back to back at the
// generator's own speed.
func Pace(rate float64, total uint64, limit, slice time.Duration, send SendFunc) (uint64, time.Duration, error) {
	start := time.Now()
	if rate <= 0 || math.IsInf(rate, 1) {
		return paceUnlimited(total, start, limit, send)
	}
	burst := Burst(rate, slice)
	var sent uint64
	for sent < total {
		el := time.Since(start)
		if el > limit {
			break
		}
		target := min(uint64(rate*el.Seconds()), total)
		due := target - min(sent, target)
		if due < burst && target < total {
			time.Sleep(time.Duration(float64(burst-due) / rate * float64(time.Second)))
			continue
		}
		n, err := send(min(due, 4*burst))
		sent += n
		if err != nil {
			return sent, time.Since(start), err
		}
	}
	return sent, time.Since(start), nil
}

func paceUnlimited(total uint64, start time.Time, limit time.Duration, send SendFunc) (uint64, time.Duration, error) {
	var sent uint64
	for sent < total && time.Since(start) <= limit {
		n, err := send(min(total-sent, maxChunk))
		sent += n
		if err != nil {
			return sent, time.Since(start), err
		}
	}
	return sent, time.Since(start), nil
}
