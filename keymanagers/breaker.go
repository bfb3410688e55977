package keymanagers

import "sync/atomic"

// breaker is a consecutive-failure circuit breaker.
type breaker struct {
	threshold int64
	cooldown  int64 // ns
	failures  atomic.Int64
	openUntil atomic.Int64 // unix ns; 0 closed
	probing   atomic.Bool
}

// allow reports whether a call may go out now. When the cooldown has
// passed, exactly one caller gets through as a probe.
func (b *breaker) allow(now int64) bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	if now < until {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

func (b *breaker) success() {
	b.failures.Store(0)
	b.openUntil.Store(0)
	b.probing.Store(false)
}

// neutral ends a call whose failure says nothing about the Key Manager's
// health (a 4xx, an unreadable 200): it neither opens nor closes the
// breaker nor resets the failure count, but gives up the probe slot so the
// next caller may probe.
func (b *breaker) neutral() {
	b.probing.Store(false)
}

// isOpen reports whether the breaker refuses calls now (not half-open),
// without claiming the probe.
func (b *breaker) isOpen(now int64) bool {
	until := b.openUntil.Load()
	return until != 0 && now < until
}

// failure records a failed call; it reports whether the breaker opened.
func (b *breaker) failure(now int64) bool {
	n := b.failures.Add(1)
	wasProbe := b.probing.Swap(false)
	if b.threshold > 0 && (n >= b.threshold || wasProbe) {
		b.openUntil.Store(now + b.cooldown)
		return true
	}
	return false
}

// State is "closed", "open" or "half-open".
func (b *breaker) state(now int64) string {
	until := b.openUntil.Load()
	switch {
	case until == 0:
		return "closed"
	case now < until:
		return "open"
	}
	return "half-open"
}

// tokenBucket is a lock-free token bucket (GCRA): rate tokens per second,
// at most burst at once. tat is the theoretical arrival time of the next
// token, in unix ns.
type tokenBucket struct {
	interval  int64 // ns per token
	tolerance int64 // (burst-1) * interval
	tat       atomic.Int64
}

// init sets the rate and burst (before any use); rate 0 never refuses.
func (b *tokenBucket) init(rate float64, burst int) {
	if rate > 0 {
		b.interval = max(int64(1e9/rate), 1)
	}
	b.tolerance = int64(max(burst, 1)-1) * b.interval
}

// take spends one token at now (unix ns); false when none is left. A
// bucket with no rate never refuses.
func (b *tokenBucket) take(now int64) bool {
	if b.interval == 0 {
		return true
	}
	for {
		tat := b.tat.Load()
		t := max(tat, now)
		if t-now > b.tolerance {
			return false
		}
		if b.tat.CompareAndSwap(tat, t+b.interval) {
			return true
		}
	}
}

// flightLimit is a non-blocking counting semaphore.
type flightLimit struct {
	max int64 // 0: no limit
	n   atomic.Int64
}

// acquire takes a slot, or reports false at once when all are taken.
func (l *flightLimit) acquire() bool {
	if l.n.Add(1) > l.max && l.max > 0 {
		l.n.Add(-1)
		return false
	}
	return true
}

func (l *flightLimit) release() { l.n.Add(-1) }
