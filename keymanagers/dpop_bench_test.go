package keymanagers

import (
	"context"
	"testing"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
)

// benchDPoP authorizes a DPoP-bound token that is in the cache, with a
// new proof per request (signed up front, cycled; the replay cache is
// reset whenever the cycle restarts): the per-request cost of DPoP is the
// proof's parse and signature verification, the jti record and the
// binding check.
func benchDPoP(b *testing.B, client testKey) {
	e := newBenchEnv(b, rsaKey(b, "rsa-a", "k1", "RS256"))
	idp := rsaKey(b, "rsa-a", "k1", "RS256")
	c := benchClaims(e.clock.Now())
	c["cnf"] = map[string]any{"jkt": fakeidp.Thumbprint(b, client)}
	tok := mint(b, idp, c, nil)
	proofs := make([]string, 512)
	for i := range proofs {
		proofs[i] = fakeidp.DPoPProof(b, client, "GET", dpopURI, tok, e.clock.Now(), nil)
	}
	route, err := CompileRoute(RouteConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := Request{Tenant: testTenant, Route: route, Token: tok, Method: "GET", EscapedPath: "/orders/1", Scheme: SchemeDPoP, URI: dpopURI}
	req.DPoPProofs = []string{fakeidp.DPoPProof(b, client, "GET", dpopURI, tok, e.clock.Now(), nil)}
	if _, err := e.g.Authorize(ctx, &req); err != nil { // warm the cache
		b.Fatal(err)
	}
	one := make([]string, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(proofs) == 0 {
			b.StopTimer()
			e.g.replay = newReplayCache(0)
			b.StartTimer()
		}
		one[0] = proofs[i%len(proofs)]
		req.DPoPProofs = one
		p, err := e.g.Authorize(ctx, &req)
		if err != nil || !p.Cached {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorizeDPoPCacheHitES256(b *testing.B) { benchDPoP(b, ecKey(b, "p256-client", "")) }
func BenchmarkAuthorizeDPoPCacheHitEdDSA(b *testing.B) { benchDPoP(b, edKey(b, "ed-client", "")) }

// BenchmarkAuthorizeBearerCacheHit is the same route and cached token
// path without DPoP, for comparison.
func BenchmarkAuthorizeBearerCacheHit(b *testing.B) {
	k := rsaKey(b, "rsa-a", "k1", "RS256")
	e := newBenchEnv(b, k)
	tok := mint(b, k, benchClaims(e.clock.Now()), nil)
	route, err := CompileRoute(RouteConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := Request{Tenant: testTenant, Route: route, Token: tok, Method: "GET", EscapedPath: "/orders/1", Scheme: SchemeBearer}
	if _, err := e.g.Authorize(ctx, &req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.g.Authorize(ctx, &req); err != nil {
			b.Fatal(err)
		}
	}
}
