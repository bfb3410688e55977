package keymanagers

// Tests of the opaque-token path under abuse: the unknown-token
// introspection budget, the separate negative cache, what counts as a
// breaker failure, the flight cap, and stale_if_error after a revocation
// sync. Helpers come from introspect_test.go (the "ix" ones).

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// abuseStep is one request of a scenario: advance the clock, then
// authenticate the token labelled tok (each label is one random opaque
// token), which the Key Manager answers active, or inactive when inactive
// is set.
type abuseStep struct {
	advance  time.Duration
	tok      string
	inactive bool
	want     *Error
}

func TestIntrospectionAbuse_UnknownTokenBudget(t *testing.T) {
	cases := []struct {
		name          string
		rate          float64
		burst         int
		steps         []abuseStep
		wantCalls     int64
		wantThrottled uint64
	}{
		{"the burst is spent, then unknown tokens are refused without a call", 1, 3, []abuseStep{
			{tok: "a"}, {tok: "b"}, {tok: "c"},
			{tok: "d", want: ErrIntrospectionBudget}, {tok: "e", want: ErrIntrospectionBudget},
		}, 3, 2},
		{"the bucket refills at the configured rate", 2, 1, []abuseStep{
			{tok: "a"}, {tok: "b", want: ErrIntrospectionBudget},
			{advance: 499 * time.Millisecond, tok: "c", want: ErrIntrospectionBudget},
			{advance: time.Millisecond, tok: "d"},
		}, 2, 2},
		{"cached and expired positive results are not budgeted", 0.001, 1, []abuseStep{
			{tok: "a"}, {tok: "b", want: ErrIntrospectionBudget},
			{tok: "a"},                           // cache hit
			{advance: 6 * time.Minute, tok: "a"}, // past the 5m TTL: asked again although the bucket is empty
		}, 2, 1},
		{"a negative result is replayed without a call or budget", 0.001, 1, []abuseStep{
			{tok: "x", inactive: true, want: ErrInactive},
			{tok: "x", inactive: true, want: ErrInactive},
			{tok: "y", want: ErrIntrospectionBudget},
		}, 1, 1},
		{"a refusal over budget is not cached", 1, 1, []abuseStep{
			{tok: "a"}, {tok: "b", want: ErrIntrospectionBudget},
			{advance: time.Second, tok: "b"},
		}, 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.IntrospectionRate = tc.rate
				d.IntrospectionBurst = tc.burst
			})
			e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
			toks := map[string]string{}
			for i, s := range tc.steps {
				e.f.clock.Advance(s.advance)
				tok, ok := toks[s.tok]
				if !ok {
					tok = ixUUID()
					toks[s.tok] = tok
				}
				if s.inactive {
					e.srv.set(tok, map[string]any{"active": false})
				}
				_, err := e.auth(tok)
				ixNoToken(t, err, tok)
				if (err == nil) != (s.want == nil) || (err != nil && !errorsIs(err, s.want)) {
					t.Fatalf("step %d (token %s): got %v, want %v", i, s.tok, err, s.want)
				}
				checkErr(t, err, s.want)
			}
			ixCalls(t, e.srv, tc.wantCalls)
			if got := e.km.Metrics().IntrospectionThrottled; got != tc.wantThrottled {
				t.Fatalf("Metrics().IntrospectionThrottled = %d, want %d", got, tc.wantThrottled)
			}
			if got := e.status().Throttled; got != tc.wantThrottled {
				t.Fatalf("Status().Introspection.Throttled = %d, want %d", got, tc.wantThrottled)
			}
		})
	}
}

func TestIntrospectionAbuse_ConcurrentIdenticalTokensShareOneFlightAndOneUnit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		callers int
	}{{"one caller", 1}, {"fifty callers", 50}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.IntrospectionRate = 0.001
				d.IntrospectionBurst = 2
				d.Timeout = Duration(10 * time.Second)
			})
			e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
			tok := ixUUID()
			e.srv.hold()
			var wg sync.WaitGroup
			errs := make(chan error, tc.callers)
			for range tc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.auth(tok)
					errs <- err
				}()
			}
			waitFor(t, "the flight to reach the server", func() bool { return e.srv.calls.Load() == 1 })
			e.srv.release()
			wg.Wait()
			close(errs)
			for err := range errs {
				checkErr(t, err, nil)
			}
			ixCalls(t, e.srv, 1)
			_, err := e.auth(ixUUID()) // the second unit
			checkErr(t, err, nil)
			_, err = e.auth(ixUUID()) // none left
			checkErr(t, err, ErrIntrospectionBudget)
			ixCalls(t, e.srv, 2)
		})
	}
}

func TestIntrospectionAbuse_NegativeFloodNeverEvictsPositiveEntries(t *testing.T) {
	const flood = 60000 // several times what 1 MiB holds
	now := time.Now().Unix()
	entry := func(negative bool, sub string) []byte {
		p := &Principal{KeyManager: "idp", Subject: sub, ExpiresAt: now + 600, hardExpiry: now + 3600,
			introspected: true, negative: negative}
		return encodeEntry(p, nil)
	}
	keyOf := func(s string) *[32]byte { k := sha256.Sum256([]byte(s)); return &k }
	cases := []struct {
		name          string
		keptNegative  bool // the entry that must survive
		floodNegative bool
		wantSurvives  bool
	}{
		{"a flood of negatives keeps a positive entry", false, true, true},
		{"a flood of positives keeps a negative entry", true, false, true},
		{"a flood of negatives evicts older negatives (bounded)", true, true, false},
		{"a flood of positives evicts older positives (bounded)", false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewResultCache(CacheConfig{SizeBytes: 1 << 20})
			must(t, err)
			t.Cleanup(func() { _ = c.Close() })
			kept := keyOf("kept")
			c.set(kept, entry(tc.keptNegative, "alice"))
			if c.get(kept) == nil {
				t.Fatal("the entry is not found right after set")
			}
			fill := entry(tc.floodNegative, "mallory")
			for i := range flood {
				var k [32]byte
				k[0], k[1], k[2], k[3] = byte(i), byte(i>>8), byte(i>>16), 0xee
				c.set(&k, fill)
			}
			got := c.get(kept)
			if (got != nil) != tc.wantSurvives {
				t.Fatalf("after %d entries: kept entry found = %v, want %v", flood, got != nil, tc.wantSurvives)
			}
			if got != nil {
				var p Principal
				must(t, decodeEntry(got, &p))
				if p.Subject != "alice" || p.negative != tc.keptNegative {
					t.Fatalf("kept entry decoded as subject %q, negative %v", p.Subject, p.negative)
				}
			}
		})
	}
}

func TestIntrospectionAbuse_OnlyTransportErrorsAnd5xxCountAsBreakerFailures(t *testing.T) {
	const closed = "connection-refused"
	cases := []struct {
		name        string
		mode        string
		wantBreaker string
	}{
		{"HTTP 401", ixStatus401, "closed"},
		{"HTML page with status 200", ixHTML, "closed"},
		{"non-JSON garbage with status 200", ixGarbage, "closed"},
		{"answer without active", ixNoActive, "closed"},
		{"HTTP 500", ixStatus500, "open"},
		{"HTTP 502 from a proxy", ixProxyHTML, "open"},
		{"timeout", ixSlow, "open"},
		{"connection refused", closed, "open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.BreakerThreshold = 3
				d.BreakerCooldown = Duration(time.Minute)
			})
			if tc.mode == closed {
				e.srv.Close()
			} else {
				e.srv.setMode(tc.mode)
			}
			for range 5 {
				tok := ixUUID()
				_, err := e.auth(tok)
				ixNoToken(t, err, tok)
				if errorsIs(err, ErrBreakerOpen) {
					break
				}
				checkErr(t, err, ErrIntrospection) // an error for this request either way
			}
			if got := e.status().Breaker; got != tc.wantBreaker {
				t.Fatalf("after failures answered %s: breaker %q, want %q", tc.name, got, tc.wantBreaker)
			}
			if got := e.km.Metrics().IntrospectionErrors; got < 3 {
				t.Fatalf("IntrospectionErrors = %d, want every failure counted", got)
			}
		})
	}
}

func TestIntrospectionAbuse_BearerTokenEndpointFailuresCountOnlyWhenItIsDownOr5xx(t *testing.T) {
	cases := []struct {
		name        string
		status      int // the token endpoint's answer; 0: connection refused
		wantBreaker string
	}{
		{"token endpoint answers 400", http.StatusBadRequest, "closed"},
		{"token endpoint answers 401", http.StatusUnauthorized, "closed"},
		{"token endpoint answers 503", http.StatusServiceUnavailable, "open"},
		{"token endpoint refuses connections", 0, "open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"error":"server_error"}`))
			}))
			t.Cleanup(tokenSrv.Close)
			if tc.status == 0 {
				tokenSrv.Close()
			}
			e := newIXEnv(t, func(d *Definition) {
				d.IntrospectionAuth = AuthBearer
				d.TokenURL = tokenSrv.URL + "/token"
				d.BreakerThreshold = 3
				d.BreakerCooldown = Duration(time.Minute)
			})
			for range 4 {
				_, err := e.auth(ixUUID())
				if errorsIs(err, ErrBreakerOpen) {
					break
				}
				checkErr(t, err, ErrIntrospection)
			}
			if got := e.status().Breaker; got != tc.wantBreaker {
				t.Fatalf("breaker %q, want %q", got, tc.wantBreaker)
			}
			ixCalls(t, e.srv, 0) // no introspection without a client-credentials token
		})
	}
}

func TestIntrospectionAbuse_A4xxProbeNeitherReopensNorWedgesTheBreaker(t *testing.T) {
	cases := []struct {
		name      string
		probeMode string
		want      *Error // the request after the probe, with the Key Manager healthy
	}{
		{"a 4xx probe leaves the breaker half-open for the next probe", ixStatus401, nil},
		{"an HTML probe leaves the breaker half-open for the next probe", ixHTML, nil},
		{"a 5xx probe re-opens it", ixStatus500, ErrBreakerOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.BreakerThreshold = 3
				d.BreakerCooldown = Duration(time.Minute)
			})
			ixOpenBreaker(t, e, 3)
			e.f.clock.Advance(time.Minute)
			e.srv.setMode(tc.probeMode)
			_, err := e.auth(ixUUID())
			checkErr(t, err, ErrIntrospection)
			ixCalls(t, e.srv, 4)
			e.srv.setMode(ixOK)
			e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
			_, err = e.auth(ixUUID())
			checkErr(t, err, tc.want)
		})
	}
}

func TestIntrospectionAbuse_FlightCapAnswersExcessAtOnceWithoutACall(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"cap 1", 1}, {"cap 2", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.MaxIntrospectionFlights = tc.max
				d.Timeout = Duration(10 * time.Second)
			})
			e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
			e.srv.hold()
			held := make([]string, tc.max)
			var wg sync.WaitGroup
			errs := make(chan error, 2*tc.max)
			run := func(tok string) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.auth(tok)
					errs <- err
				}()
			}
			for i := range held {
				held[i] = ixUUID()
				run(held[i])
			}
			// The server counts a call once it arrives, after its flight
			// took a slot.
			waitFor(t, "the flights to reach the server", func() bool { return e.srv.calls.Load() == int64(tc.max) })
			run(held[0]) // an identical token joins its flight: not refused

			excess := ixUUID()
			start := time.Now()
			_, err := e.auth(excess)
			checkErr(t, err, ErrIntrospectionBusy)
			ixNoToken(t, err, excess)
			if time.Since(start) > time.Second {
				t.Fatalf("the excess request took %v to be refused", time.Since(start))
			}
			e.srv.release()
			wg.Wait()
			close(errs)
			for err := range errs {
				checkErr(t, err, nil)
			}
			ixCalls(t, e.srv, int64(tc.max))
			if got := e.km.Metrics().IntrospectionBusy; got != 1 {
				t.Fatalf("Metrics().IntrospectionBusy = %d, want 1", got)
			}
			if st := e.status(); st.Busy != 1 || st.InFlight != 0 {
				t.Fatalf("status busy %d, in flight %d; want 1, 0", st.Busy, st.InFlight)
			}
			_, err = e.auth(excess) // room again
			checkErr(t, err, nil)
			ixCalls(t, e.srv, int64(tc.max)+1)
		})
	}
}

func TestIntrospectionAbuse_StaleOnlyForTokensConfirmedSinceTheLastRevocationSync(t *testing.T) {
	cases := []struct {
		name      string
		marks     []time.Duration // MarkRevocationsSynced at confirmation + each
		reconfirm bool            // the Key Manager confirms the token again after the marks
		want      *Error
	}{
		{"no revocation sync yet: served stale", nil, false, nil},
		{"synced before the Key Manager confirmed the token: served stale", []time.Duration{-time.Second}, false, nil},
		{"synced at the very time it confirmed the token: served stale", []time.Duration{0}, false, nil},
		{"synced after it confirmed the token: not served", []time.Duration{30 * time.Second}, false, ErrIntrospection},
		{"synced just after it confirmed the token, in the same second: not served", []time.Duration{500 * time.Millisecond}, false, ErrIntrospection},
		{"an older mark does not move the sync back", []time.Duration{30 * time.Second, -time.Second}, false, ErrIntrospection},
		{"confirmed again after the sync: served stale", []time.Duration{30 * time.Second}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.IntrospectionCacheTTL = Duration(time.Minute)
				d.StaleIfError = Duration(5 * time.Minute)
				d.BreakerThreshold = 100
			})
			tok := ixUUID()
			e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
			confirmed := e.f.clock.Now()
			_, err := e.auth(tok)
			checkErr(t, err, nil)
			e.f.clock.Advance(30 * time.Second)
			for _, m := range tc.marks {
				e.g.MarkRevocationsSynced(confirmed.Add(m))
			}
			calls := int64(1)
			if tc.reconfirm {
				e.f.clock.Advance(31 * time.Second) // past the TTL: asked again
				_, err = e.auth(tok)
				checkErr(t, err, nil)
				calls++
				ixCalls(t, e.srv, calls)
			}
			e.f.clock.Advance(90 * time.Second) // past the TTL, within stale_if_error
			e.srv.setMode(ixStatus500)
			p, err := e.auth(tok)
			checkErr(t, err, tc.want)
			ixNoToken(t, err, tok)
			ixCalls(t, e.srv, calls+1) // the Key Manager is always asked first
			if err == nil && (p.Subject != "alice" || p.KeyManager != "idp") {
				t.Fatalf("stale principal = %+v", p)
			}
		})
	}
}
