package caddymodule

import (
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"

	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

// TestBackendJWTJWKSHandler: methods, caching headers and bodies of the
// keymanager_backend_jwks handler.
func TestBackendJWTJWKSHandler(t *testing.T) {
	empty := &App{claimsMu: new(sync.Mutex)}
	withKeys := &App{claimsMu: new(sync.Mutex)}
	ks, err := backendjwt.NewKeyStore(backendjwt.KeyStoreConfig{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Algorithm: backendjwt.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	withKeys.backendJWT = &backendJWTState{stores: map[backendjwt.Algorithm]*backendjwt.KeyStore{backendjwt.EdDSA: ks}}
	cases := []struct {
		name, method string
		app          *App
		status       int
		cacheControl string
		bodyHas      string
	}{
		{"GET with no backend_jwt route: empty, not cacheable", "GET", empty, 200, "no-store", `{"keys":[]}`},
		{"GET with a key set", "GET", withKeys, 200, "public, max-age=3600", `"kty":"OKP"`},
		{"HEAD: headers only", "HEAD", withKeys, 200, "public, max-age=3600", ""},
		{"POST refused", "POST", withKeys, 405, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			err := (&BackendJWKS{app: tc.app}).ServeHTTP(w, httptest.NewRequest(tc.method, "/jwks", nil), nil)
			status := w.Code
			var he caddyhttp.HandlerError
			if errors.As(err, &he) {
				status = he.StatusCode
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || w.Header().Get("Cache-Control") != tc.cacheControl {
				t.Fatalf("status %d, Cache-Control %q; want %d, %q", status, w.Header().Get("Cache-Control"), tc.status, tc.cacheControl)
			}
			if tc.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", w.Header().Get("Allow"))
			}
			body := w.Body.String()
			if tc.bodyHas == "" && body != "" || tc.bodyHas != "" && !strings.Contains(body, tc.bodyHas) {
				t.Fatalf("body %q, want it to hold %q", body, tc.bodyHas)
			}
			if tc.status == 200 && w.Header().Get("Content-Type") != "application/jwk-set+json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
		})
	}
}
