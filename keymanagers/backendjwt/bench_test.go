package backendjwt

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBackendJWTCached is the cost on a cached principal: a cache
// lookup, no signature.
func BenchmarkBackendJWTCached(b *testing.B) {
	c := newClock()
	ks := newKeyStore(b, newMemStorage(), ES256, c, 0)
	cache, err := NewCache(8, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cache.Close() })
	s := newSigner(b, Config{Issuer: "https://gw.example", Audience: []string{"orders"}, Claims: []string{"email"}, Keys: ks, Cache: cache, Now: c.Now})
	caller := &Caller{CacheKey: [32]byte{9}, Tenant: "acme", KeyManager: "okta", Subject: "alice", ClientID: "cid", Scopes: "orders:read orders:write", Claims: claimMap{"email": `"alice@example.com"`}}
	if _, err := s.Token(context.Background(), caller); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(context.Background(), caller); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBackendJWTFresh is the cost of building and signing one JWT
// (a principal seen for the first time, or caching disabled).
func BenchmarkBackendJWTFresh(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			c := newClock()
			ks := newKeyStore(b, newMemStorage(), alg, c, 0)
			s := newSigner(b, Config{Issuer: "https://gw.example", Audience: []string{"orders"}, Claims: []string{"email"}, Keys: ks, Now: c.Now})
			caller := &Caller{Tenant: "acme", KeyManager: "okta", Subject: "alice", ClientID: "cid", Scopes: "orders:read orders:write", Claims: claimMap{"email": `"alice@example.com"`}}
			if _, err := s.Token(context.Background(), caller); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Token(context.Background(), caller); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
