package keymanagers

import (
	"encoding/json"
	"testing"
	"time"
)

// TestParseDurationAcceptsTheCaddySpellings proves the one parser of
// definition durations reads what caddy.ParseDuration reads (the Caddyfile
// and JSON accept the same words) and refuses nonsense.
func TestParseDurationAcceptsTheCaddySpellings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"5m", 5 * time.Minute, true},
		{"1d", 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"2h1d", 26 * time.Hour, true},
		{"-1d", -24 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"d", 0, false},
		{"1e300d", 0, false},
		{"NaNd", 0, false},
		{"", 0, false},
		{"5", 0, false},
		{"5x", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		var d Duration
		jerr := json.Unmarshal([]byte(`"`+tc.in+`"`), &d)
		if (jerr == nil) != tc.ok || (tc.ok && time.Duration(d) != tc.want) {
			t.Errorf("JSON %q = %v, %v; want %v ok=%v", tc.in, time.Duration(d), jerr, tc.want, tc.ok)
		}
	}
}

// TestLatencyBucketsCannotBeChangedFromOutside proves the histogram's
// shape is fixed: the exported bounds are a copy, so changing (or growing)
// them cannot desize the counters.
func TestLatencyBucketsCannotBeChangedFromOutside(t *testing.T) {
	b := LatencyBuckets()
	b[0] = 99
	b = append(b, 20, 30)
	if LatencyBuckets()[0] == 99 || len(LatencyBuckets()) != len(latencyBuckets) {
		t.Fatal("LatencyBuckets exposes the histogram's own bounds")
	}
	var h latencyHistogram
	h.observe(time.Hour) // beyond the last bound: the +Inf counter
	if h.snapshot().Count != 1 {
		t.Fatal("observation lost")
	}
}
