package keymanagers

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// newIXBenchEnv is an introspecting Key Manager whose server answers every
// token as active. Its unknown-token budget is as large as allowed: the
// fixture's clock does not move, so the bucket never refills.
func newIXBenchEnv(b *testing.B) *ixEnv {
	b.Helper()
	e := newIXEnv(b, func(d *Definition) { d.IntrospectionBurst = maxIntrospectionBurst })
	e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), map[string]any{"email": "alice@example.com"}) })
	return e
}

// BenchmarkAuthenticateCachedOpaque is the hot path for opaque tokens: a
// cache hit of an introspected result (no I/O, no signature work).
func BenchmarkAuthenticateCachedOpaque(b *testing.B) {
	e := newIXBenchEnv(b)
	tok := ixUUID()
	ctx := context.Background()
	if _, err := e.g.Authenticate(ctx, testTenant, nil, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.g.Authenticate(ctx, testTenant, nil, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := e.srv.calls.Load(); got != 1 {
		b.Fatalf("introspection calls = %d, want 1", got)
	}
}

// BenchmarkIntrospectionBurst1000 sends, per iteration, a fresh opaque
// token from 1000 goroutines at once and reports how many introspection
// calls each burst cost (coalescing should make it 1).
func BenchmarkIntrospectionBurst1000(b *testing.B) {
	const burst = 1000
	e := newIXBenchEnv(b)
	ctx := context.Background()
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok := ixUUID()
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(burst)
		for range burst {
			go func() {
				defer wg.Done()
				<-start
				if _, err := e.g.Authenticate(ctx, testTenant, nil, tok); err != nil {
					failed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d authentications failed", n)
	}
	b.ReportMetric(float64(e.srv.calls.Load())/float64(b.N), "calls/burst")
}
