package caddymodule

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

// withBackendJWT gives a bench handler a backend_jwt option (keys on file
// storage in a temporary folder, the shared JWT cache).
func withBackendJWT(b *testing.B, h *Handler, cached bool) {
	b.Helper()
	ks, err := backendjwt.NewKeyStore(backendjwt.KeyStoreConfig{Storage: &certmagic.FileStorage{Path: b.TempDir()}, Algorithm: backendjwt.ES256})
	if err != nil {
		b.Fatal(err)
	}
	cfg := backendjwt.Config{Issuer: "https://gw.bench.test", Audience: []string{"orders"}, TTL: 5 * time.Minute, Keys: ks}
	if cached {
		c, err := backendjwt.NewCache(8, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		cfg.Cache = c
	}
	s, err := backendjwt.NewSigner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h.BackendJWT = &BackendJWT{signer: s, header: http.CanonicalHeaderKey(DefaultBackendJWTHeader), folded: foldHeaderName(DefaultBackendJWTHeader),
		reg: h.app.gateway.Registry, logger: h.logger}
}

// BenchmarkBackendJWTHandlerCached is BenchmarkHandlerCacheHit plus the
// backend JWT of the cached principal (a second cache lookup, no
// signature).
func BenchmarkBackendJWTHandlerCached(b *testing.B) {
	h, tok := benchHandler(b, nil)
	withBackendJWT(b, h, true)
	benchServe(b, h, tok)
}

// BenchmarkBackendJWTHandlerFresh signs an ES256 JWT on every request
// (the cost of a principal's first request).
func BenchmarkBackendJWTHandlerFresh(b *testing.B) {
	h, tok := benchHandler(b, nil)
	withBackendJWT(b, h, false)
	benchServe(b, h, tok)
}
