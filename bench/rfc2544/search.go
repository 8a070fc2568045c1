package rfc2544

import (
	"errors"
	"fmt"
	"math"
)

// Outcome is what one trial measured.
type Outcome struct {
	Offered  float64 // the offered rate the generator achieved, frames/s
	Sent     uint64  // frames offered
	Received uint64  // frames counted at the sink
}

// Lost is how many offered frames were not received.
func (o Outcome) Lost() uint64 { return o.Sent - min(o.Sent, o.Received) }

// Trial offers frames at rate (frames/s; +Inf: as fast as the generator
// can) for the trial duration and reports what arrived.
type Trial func(rate float64) (Outcome, error)

// Config bounds a Search.
type Config struct {
	// Max is the highest rate tried, typically the generator's own rate.
	Max float64
	// Hint, when in (0, Max), is probed first after Max fails (for example
	// the rate delivered under overload), saving bisection steps.
	Hint float64
	// Resolution ends the search when hi-lo <= Resolution*hi (0.01 = 1 %).
	Resolution float64
	// MaxTrials bounds the trials, Max included.
	MaxTrials int
	// LossTolerance is the fraction of frames a passing trial may lose;
	// 0 is RFC 2544's zero loss.
	LossTolerance float64
	// Progress, if set, is called after every trial.
	Progress func(Record)
}

func (c Config) validate() error {
	switch {
	case !(c.Max > 0) || math.IsInf(c.Max, 0):
		return fmt.Errorf("max rate %v: want a finite rate above 0", c.Max)
	case !(c.Resolution > 0 && c.Resolution < 1):
		return fmt.Errorf("resolution %v: want (0, 1)", c.Resolution)
	case c.MaxTrials < 1:
		return fmt.Errorf("max trials %d: want at least 1", c.MaxTrials)
	case c.LossTolerance < 0 || c.LossTolerance >= 1:
		return fmt.Errorf("loss tolerance %v: want [0, 1)", c.LossTolerance)
	}
	return nil
}

// Record is one trial of a search.
type Record struct {
	Rate float64 // the rate asked for
	Outcome
	Pass bool
}

// Result is the outcome of a search.
type Result struct {
	// Rate is the highest passing rate found; 0 if none passed.
	Rate float64
	// Best is the outcome of the trial at Rate.
	Best Outcome
	// AtMax: the trial at Max passed, so the datapath may be faster than
	// the generator (the figure is a lower bound).
	AtMax  bool
	Trials []Record
}

// ErrNoSent means a trial offered nothing, so it cannot pass or fail.
var ErrNoSent = errors.New("trial sent no frames")

// Search finds the highest rate in (0, Max] at which a trial loses at most
// LossTolerance of its frames: a trial at Max, then the Hint, then
// bisection between the highest pass and the lowest failure.
func Search(c Config, trial Trial) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	s := searcher{c: c, trial: trial, hi: c.Max}
	pass, err := s.try(c.Max)
	if err != nil || pass {
		s.res.AtMax = pass
		return s.res, err
	}
	next := c.Max / 2
	if c.Hint > 0 && c.Hint < c.Max {
		next = c.Hint
	}
	for len(s.res.Trials) < c.MaxTrials && s.hi-s.lo > c.Resolution*s.hi {
		if _, err := s.try(next); err != nil {
			return s.res, err
		}
		next = (s.lo + s.hi) / 2
	}
	return s.res, nil
}

type searcher struct {
	c      Config
	trial  Trial
	lo, hi float64
	res    Result
}

// try runs one trial at rate and moves the bounds.
func (s *searcher) try(rate float64) (bool, error) {
	o, err := s.trial(rate)
	if err != nil {
		return false, fmt.Errorf("trial at %.0f/s: %w", rate, err)
	}
	if o.Sent == 0 {
		return false, fmt.Errorf("trial at %.0f/s: %w", rate, ErrNoSent)
	}
	r := Record{Rate: rate, Outcome: o, Pass: float64(o.Lost()) <= s.c.LossTolerance*float64(o.Sent)}
	s.res.Trials = append(s.res.Trials, r)
	if s.c.Progress != nil {
		s.c.Progress(r)
	}
	if r.Pass {
		s.lo = rate
		s.res.Rate, s.res.Best = rate, o
	} else {
		s.hi = rate
	}
	return r.Pass, nil
}
