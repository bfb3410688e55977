package caddymodule

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// benchHandler builds a handler over a pinned-certificate Key Manager (no
// network) and returns it with a ~1 KB RS256 token it accepts.
func benchHandler(b *testing.B, forward []ForwardClaim) (*Handler, string) {
	b.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	def, err := keymanagers.Prepare(keymanagers.Definition{
		Name: "bench", Issuer: "https://idp.bench.test", Audiences: []string{"https://api.bench.test"},
		CertificatePEM: fakeidp.SelfSignedPEM(b, priv, "bench", false),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	km, err := keymanagers.NewKeyManager("acme", def, keymanagers.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(km.Close)
	reg, err := keymanagers.NewRegistry(map[string][]*keymanagers.KeyManager{"acme": {km}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	cache, err := keymanagers.NewResultCache(keymanagers.CacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cache.Close() })
	app := &App{gateway: keymanagers.NewGateway(reg, cache, nil, nil)}
	initMetrics() // count validations as a provisioned app does
	var claims []string
	for _, f := range forward {
		claims = append(claims, f.Claim)
	}
	app.gateway.SetProjectedClaims(claims)
	h := &Handler{Tenant: "acme", KeepToken: true, ForwardClaim: forward, app: app, logger: zap.NewNop(),
		MaxTokenSize: DefaultMaxTokenSize, route: &keymanagers.Route{}}
	for _, f := range forward {
		h.forward = append(h.forward, forwardHeader{claim: f.Claim, header: http.CanonicalHeaderKey(f.Header), folded: foldHeaderName(f.Header)})
	}

	token := fakeidp.Mint(b, fakeidp.Key{KID: "k1", Alg: "RS256", Priv: priv}, map[string]any{
		jwt.IssuerKey: "https://idp.bench.test", jwt.SubjectKey: "user-1234567890", jwt.AudienceKey: "https://api.bench.test",
		jwt.ExpirationKey: time.Now().Add(time.Hour), jwt.IssuedAtKey: time.Now(), "azp": "bench-client",
		"scope": "orders:read orders:write inventory:read", "email": "user@bench.test",
		"padding": strings.Repeat("x", 420), // brings the token to ~1 KB
	}, nil)
	return h, token
}

var okNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

func benchServe(b *testing.B, h *Handler, token string) {
	req := httptest.NewRequest("GET", "http://api.bench.test/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	// warm the cache
	r := newBenchRequest(req)
	if err := h.ServeHTTP(w, r, okNext); err != nil || w.Code != 200 {
		b.Fatalf("warm-up: %v %d %s", err, w.Code, w.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A fresh request with Caddy's HTTP replacer, as the server makes
		// per request; see BenchmarkRequestSetupBaseline for its own cost.
		r := newBenchRequest(req)
		if err := h.ServeHTTP(w, r, okNext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerCacheHit is the keymanager handler on a cached ~1 KB
// RS256 token, without forwarded headers.
func BenchmarkHandlerCacheHit(b *testing.B) {
	h, tok := benchHandler(b, nil)
	benchServe(b, h, tok)
}

// BenchmarkHandlerCacheHitForwardClaim adds one forward_claim header.
func BenchmarkHandlerCacheHitForwardClaim(b *testing.B) {
	h, tok := benchHandler(b, []ForwardClaim{{Claim: "sub", Header: "X-User-Id"}})
	benchServe(b, h, tok)
}

// BenchmarkRequestSetupBaseline is the per-request setup the handler
// benchmarks include (a Replacer and a request context), to subtract.
func BenchmarkRequestSetupBaseline(b *testing.B) {
	req := httptest.NewRequest("GET", "http://api.bench.test/orders/1", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = newBenchRequest(req)
	}
}

// newBenchRequest copies req and gives it Caddy's HTTP replacer (with the
// http.* provider, as caddyhttp's server does).
func newBenchRequest(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	caddyhttp.NewTestReplacer(r)
	return r
}
