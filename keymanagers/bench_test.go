package keymanagers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// benchClaims is a realistic access token body of roughly 1 KB once signed
// with RS256 (header + claims + 256-byte signature, base64url).
func benchClaims(now time.Time) map[string]any {
	c := claimsAt(testIssuer, now)
	c["scope"] = "openid profile email orders:read orders:write billing:read inventory:read inventory:write"
	c["client_id"] = "3MVG9lKcPoNINVBIPJjdw1J9LLM82HnFVVX19KY1uA5mu0QqLWf"
	c["groups"] = []string{"engineering", "platform", "on-call", "eu-west"}
	c["tenant_role"] = "admin"
	c["email"] = "alice@example.com"
	c["name"] = "Alice Example"
	return c
}

type benchEnv struct {
	g      *Gateway
	tenant *Tenant
	clock  *testClock
}

func newBenchEnv(b *testing.B, keys ...testKey) *benchEnv {
	b.Helper()
	f := newFixture(b, keys...)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	return &benchEnv{g: g, tenant: g.Registry().Tenant(testTenant), clock: f.clock}
}

// validateFresh runs the full validation path, bypassing the cache lookup
// (the result is still written, as Authenticate would on a miss).
func (e *benchEnv) validateFresh(b *testing.B, tok string) {
	p := new(Principal)
	p.key = sha256.Sum256([]byte(tok))
	if _, err := e.g.validate(context.Background(), e.tenant, nil, tok, p, e.g.projected.Load()); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAuthenticateCacheHit(b *testing.B) {
	k := rsaKey(b, "rsa-a", "k1", "RS256")
	e := newBenchEnv(b, k)
	tok := mint(b, k, benchClaims(e.clock.Now()), nil)
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
	b.ReportMetric(float64(len(tok)), "token-bytes")
}

func benchFresh(b *testing.B, k testKey) {
	e := newBenchEnv(b, k)
	tok := mint(b, k, benchClaims(e.clock.Now()), nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.validateFresh(b, tok)
	}
	b.ReportMetric(float64(len(tok)), "token-bytes")
}

func BenchmarkAuthenticateFreshRS256(b *testing.B) { benchFresh(b, rsaKey(b, "rsa-a", "k1", "RS256")) }
func BenchmarkAuthenticateFreshPS256(b *testing.B) { benchFresh(b, rsaKey(b, "rsa-a", "k1", "PS256")) }
func BenchmarkAuthenticateFreshES256(b *testing.B) { benchFresh(b, ecKey(b, "p256-a", "e1")) }
func BenchmarkAuthenticateFreshEdDSA(b *testing.B) { benchFresh(b, edKey(b, "ed-a", "d1")) }

// BenchmarkAuthenticateMissRS256 goes through Authenticate with a token the
// cache has never seen (N distinct tokens minted up front, cycled; the
// cache is purged whenever the cycle restarts).
func BenchmarkAuthenticateMissRS256(b *testing.B) {
	k := rsaKey(b, "rsa-a", "k1", "RS256")
	e := newBenchEnv(b, k)
	toks := make([]string, 256)
	for i := range toks {
		toks[i] = mint(b, k, benchClaims(e.clock.Now()), nil)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(toks) == 0 && i > 0 {
			b.StopTimer()
			_ = e.g.Cache().Purge()
			b.StartTimer()
		}
		if _, err := e.g.Authenticate(ctx, testTenant, nil, toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchJWX(b *testing.B, k testKey) {
	clock := newTestClock()
	tok := []byte(mint(b, k, benchClaims(clock.Now()), nil))
	alg := jwa.SignatureAlgorithm(k.Alg)
	pub := k.Public()
	opts := []jwt.ParseOption{jwt.WithKey(alg, pub), jwt.WithClock(jwt.ClockFunc(clock.Now)), jwt.WithAcceptableSkew(30 * time.Second)}
	if _, err := jwt.Parse(tok, opts...); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := jwt.Parse(tok, opts...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWXParseRS256(b *testing.B) { benchJWX(b, rsaKey(b, "rsa-a", "k1", "RS256")) }
func BenchmarkJWXParseES256(b *testing.B) { benchJWX(b, ecKey(b, "p256-a", "e1")) }

func splitForVerify(b *testing.B, tok string) (input []byte, sig []byte) {
	j := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[j+1:])
	if err != nil {
		b.Fatal(err)
	}
	return []byte(tok[:j]), sig
}

// BenchmarkRawRSAVerify is the floor: SHA-256 of the signing input and one
// PKCS#1 v1.5 verification of the same token.
func BenchmarkRawRSAVerify(b *testing.B) {
	k := rsaKey(b, "rsa-a", "k1", "RS256")
	input, sig := splitForVerify(b, mint(b, k, benchClaims(baseTime), nil))
	pub := k.Public().(*rsa.PublicKey)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawECDSAVerify is the same floor for ES256.
func BenchmarkRawECDSAVerify(b *testing.B) {
	k := ecKey(b, "p256-a", "e1")
	input, sig := splitForVerify(b, mint(b, k, benchClaims(baseTime), nil))
	pub := k.Public().(*ecdsa.PublicKey)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := sha256.Sum256(input)
		if !ecdsa.Verify(pub, d[:], r, s) {
			b.Fatal("bad signature")
		}
	}
}
