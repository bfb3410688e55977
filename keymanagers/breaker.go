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
