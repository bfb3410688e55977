package keymanagers

import (
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the introspection
// latency histogram. An array, not a slice: the counters are sized from
// it at compile time, and nothing outside can change it.
var latencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// LatencyBuckets returns a copy of the histogram's bucket bounds.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBuckets[:]...) }

// latencyHistogram is a lock-free fixed-bucket histogram.
type latencyHistogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNs  atomic.Int64
	total  atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
	h.total.Add(1)
}

// LatencySnapshot is a histogram in Prometheus' cumulative form.
type LatencySnapshot struct {
	Count      uint64
	SumSeconds float64
	// Cumulative maps each bucket's upper bound to the count of
	// observations at or below it.
	Cumulative map[float64]uint64
}

func (h *latencyHistogram) snapshot() LatencySnapshot {
	s := LatencySnapshot{Count: h.total.Load(), SumSeconds: time.Duration(h.sumNs.Load()).Seconds(), Cumulative: map[float64]uint64{}}
	var acc uint64
	for i, b := range latencyBuckets {
		acc += h.counts[i].Load()
		s.Cumulative[b] = acc
	}
	return s
}
