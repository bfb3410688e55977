package keymanagers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkCacheMillionResults stores 1M realistic validation results in
// a 240 MiB cache (the target: <= 300 MB heap for 1M results) and reports
// the heap they take and the entries kept (all 1M must stay).
func BenchmarkCacheMillionResults(b *testing.B) {
	for i := 0; i < b.N; i++ {
		before := heapMB()
		c, err := NewResultCache(CacheConfig{SizeBytes: 240 << 20, MaxTTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		exp := time.Now().Add(time.Hour).Unix()
		for n := 0; n < 1_000_000; n++ {
			p := &Principal{KeyManager: "okta-prod", KeyManagerTenant: "acme", Issuer: "https://dev-123456.okta.com/oauth2/default",
				Subject: fmt.Sprintf("user-%08d@example.com", n), ClientID: "0oa1b2c3d4e5f6g7h8i9", Scopes: "orders:read orders:write profile",
				JTI: fmt.Sprintf("AT.%016x", n), ExpiresAt: exp, hardExpiry: exp, fpHash: 0x0123456789abcdef}
			var k [32]byte
			binary.LittleEndian.PutUint64(k[:], uint64(n))
			k = sha256.Sum256(k[:])
			c.set(&k, encodeEntry(p, nil))
		}
		after := heapMB()
		b.ReportMetric(after-before, "heapMB/1M")
		b.ReportMetric(float64(c.Len()), "entries")
		_ = c.Close()
	}
}

// BenchmarkJunkFlood sends 1M random junk tokens (opaque, JWT-shaped,
// oversized) through Authenticate and reports the heap growth: junk is
// never cached, so memory stays within cache_size (+20% target).
func BenchmarkJunkFlood(b *testing.B) {
	reg, err := NewRegistry(map[string][]*KeyManager{"acme": nil}, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewResultCache(CacheConfig{SizeBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	g := NewGateway(reg, c, nil, nil)
	rnd := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 600)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for i := 0; i < b.N; i++ {
		before := heapMB()
		for n := 0; n < 1_000_000; n++ {
			l := 20 + rnd.IntN(len(buf)-20)
			for j := 0; j < l; j++ {
				buf[j] = alphabet[rnd.IntN(len(alphabet))]
			}
			tok := string(buf[:l])
			if n%3 == 0 {
				tok = "eyJhbGciOiJSUzI1NiJ9." + tok + ".sig"
			}
			_, _ = g.Authenticate(context.Background(), "acme", nil, tok)
		}
		b.ReportMetric(heapMB()-before, "heapGrowthMB")
		b.ReportMetric(float64(c.Len()), "entries")
	}
}
