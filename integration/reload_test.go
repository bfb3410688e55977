package integration

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadUnderLoadKeepsCacheAndDropsNothing: config reloads (POST /load)
// while clients send authenticated requests drop no request, cause no 5xx,
// refetch no JWKS (Key Manager runtimes, config and API ones, are pooled
// across reloads), and keep the result cache: a token validated before the
// reloads is still a cache hit after them.
func TestReloadUnderLoadKeepsCacheAndDropsNothing(t *testing.T) {
	cfg := gatewayConfig{ports: newPorts(t), storage: t.TempDir(), cfgIdP: newIdP(t, "c1"), version: "v0"}
	apiIdP := newIdP(t, "k1")
	p := startCaddy(t, cfg.caddyfile())
	p.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("from-api", apiIdP))

	type tokenCase struct{ token, body string }
	var toks []tokenCase
	for i := range 4 {
		toks = append(toks, tokenCase{cfg.cfgIdP.mint("c1", fmt.Sprintf("cfg-user-%d", i)), "ok from-config"})
		toks = append(toks, tokenCase{apiIdP.mint("k1", fmt.Sprintf("api-user-%d", i)), "ok from-api"})
	}
	for _, tc := range toks {
		p.expect(t, tc.token, "acme", 200, tc.body)
	}
	// One token per Key Manager validated now and then left alone until
	// after the reloads.
	type cachedToken struct {
		km    string
		token string
	}
	cached := []cachedToken{
		{"from-config", cfg.cfgIdP.mint("c1", "before-reloads")},
		{"from-api", apiIdP.mint("k1", "before-reloads")},
	}
	for _, c := range cached {
		p.expect(t, c.token, "acme", 200, "ok "+c.km)
	}
	// Let any background first fetch settle, then take the baseline.
	time.Sleep(300 * time.Millisecond)
	cfgFetches, apiFetches := cfg.cfgIdP.fetches.Load(), apiIdP.fetches.Load()
	if cfgFetches == 0 || apiFetches == 0 {
		t.Fatalf("no JWKS fetch before the run (config %d, api %d): the tokens cannot have been verified", cfgFetches, apiFetches)
	}

	const (
		workers     = 8
		minRequests = 1000
		reloads     = 3
	)
	var (
		sent, ok     atomic.Int64
		reloadsDone  atomic.Bool
		mu           sync.Mutex
		failures     []string
		transportErr int
		serverErr    int
		otherStatus  int
	)
	deadline := time.Now().Add(30 * time.Second)
	record := func(s string) {
		if len(failures) < 10 {
			failures = append(failures, s)
		}
	}
	var wg sync.WaitGroup
	runStart := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += workers {
				if (sent.Load() >= minRequests && reloadsDone.Load()) || time.Now().After(deadline) {
					return
				}
				tc := toks[i%len(toks)]
				sent.Add(1)
				status, body, err := p.get("/api/x", tc.token, "acme")
				switch {
				case err != nil:
					mu.Lock()
					transportErr++
					record(fmt.Sprintf("transport error: %v", err))
					mu.Unlock()
				case status >= 500:
					mu.Lock()
					serverErr++
					record(fmt.Sprintf("%d %q", status, body))
					mu.Unlock()
				case status != 200 || body != tc.body:
					mu.Lock()
					otherStatus++
					record(fmt.Sprintf("%d %q, want 200 %q", status, body, tc.body))
					mu.Unlock()
				default:
					ok.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}

	type reloadRun struct {
		before, after int64
		took          time.Duration
		err           error
	}
	runs := make([]reloadRun, 0, reloads)
	for v := 1; v <= reloads; v++ {
		for sent.Load() < int64(v*minRequests/(reloads+1)) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		next := cfg
		next.version = fmt.Sprintf("v%d", v)
		r := reloadRun{before: sent.Load()}
		start := time.Now()
		r.err = p.load(next.caddyfile())
		r.took = time.Since(start)
		r.after = sent.Load()
		if r.err == nil {
			// The new config is the one serving.
			if status, body, err := p.get("/version", "", ""); err != nil || status != 200 || body != "version "+next.version {
				r.err = fmt.Errorf("after the load, /version answers %d %q %v", status, body, err)
			}
		}
		runs = append(runs, r)
		if r.err != nil {
			break
		}
	}
	reloadsDone.Store(true)
	wg.Wait()
	total := sent.Load()
	t.Logf("%d requests (%d ok) by %d clients in %v across %d reloads", total, ok.Load(), workers, time.Since(runStart).Round(time.Millisecond), len(runs))
	for i, r := range runs {
		t.Logf("reload %d: took %v, %d requests sent while it ran, err %v", i+1, r.took.Round(time.Millisecond), r.after-r.before, r.err)
		if r.err != nil {
			t.Errorf("reload %d failed: %v", i+1, r.err)
		} else if r.after == r.before {
			t.Errorf("reload %d overlapped no request: the test proves nothing about it", i+1)
		}
	}
	if len(runs) != reloads {
		t.Errorf("%d reloads done, want %d", len(runs), reloads)
	}
	if transportErr+serverErr+otherStatus > 0 || ok.Load() != total {
		t.Fatalf("%d transport errors, %d 5xx, %d other answers out of %d requests; first ones:\n%s",
			transportErr, serverErr, otherStatus, total, strings.Join(failures, "\n"))
	}
	if total < minRequests {
		t.Fatalf("only %d requests before the deadline", total)
	}

	// The reloads made no JWKS fetch: the runtimes and their keys were kept.
	if n := cfg.cfgIdP.fetches.Load(); n != cfgFetches {
		t.Errorf("config Key Manager: %d JWKS fetches during the reloads", n-cfgFetches)
	}
	if n := apiIdP.fetches.Load(); n != apiFetches {
		t.Errorf("API Key Manager: %d JWKS fetches during the reloads", n-apiFetches)
	}

	// With both JWKS endpoints failing, the tokens validated before and
	// during the reloads still pass and nothing is fetched.
	cfg.cfgIdP.fail.Store(true)
	apiIdP.fail.Store(true)
	cfgFetches, apiFetches = cfg.cfgIdP.fetches.Load(), apiIdP.fetches.Load()
	for _, tc := range toks {
		p.expect(t, tc.token, "acme", 200, tc.body)
	}
	if c, a := cfg.cfgIdP.fetches.Load()-cfgFetches, apiIdP.fetches.Load()-apiFetches; c != 0 || a != 0 {
		t.Fatalf("known tokens made JWKS fetches after the reloads (config %d, api %d)", c, a)
	}

	// The result cache itself survived the reloads: a token validated once
	// before them, and not since, is a cache hit after them (Caddy's
	// metrics count hits and misses), with both JWKS endpoints failing.
	for _, c := range cached {
		hits, misses := p.cacheCounters(t)
		p.expect(t, c.token, "acme", 200, "ok "+c.km)
		h, m := p.cacheCounters(t)
		if h-hits != 1 || m != misses {
			t.Fatalf("%s: the token validated before the reloads counted %v hits and %v misses, want 1 hit", c.km, h-hits, m-misses)
		}
	}
	// Control: a token never seen is a miss (the counters discriminate).
	hits, misses := p.cacheCounters(t)
	p.expect(t, apiIdP.mint("k1", "newcomer"), "acme", 200, "ok from-api")
	if h, m := p.cacheCounters(t); h != hits || m-misses != 1 {
		t.Fatalf("a new token counted %v hits and %v misses, want 1 miss", h-hits, m-misses)
	}

	// The admin API of the reloaded config edits the running registry.
	lateIdP := newIdP(t, "l1")
	p.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("after-reloads", lateIdP))
	p.expect(t, lateIdP.mint("l1", "late"), "acme", 200, "ok after-reloads")
}
