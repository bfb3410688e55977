package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

// downStorage fails every call, as an unreachable storage does.
type downStorage struct{}

var errDown = errors.New("storage down")

func (downStorage) Lock(context.Context, string) error           { return errDown }
func (downStorage) Unlock(context.Context, string) error         { return nil }
func (downStorage) Store(context.Context, string, []byte) error  { return errDown }
func (downStorage) Load(context.Context, string) ([]byte, error) { return nil, errDown }

// TestBackendJWTApply: the header is replaced (aliases too) when signing
// works, and a key store without keys is a 503, never a request sent on
// with the client's header.
func TestBackendJWTApply(t *testing.T) {
	reg, err := keymanagers.NewRegistry(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		storage backendjwt.Storage
		status  int // 0: applied
	}{
		{"storage works: the gateway's JWT replaces the client's", &certmagic.FileStorage{Path: t.TempDir()}, 0},
		{"storage down before the first key: 503", downStorage{}, http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := backendjwt.NewKeyStore(backendjwt.KeyStoreConfig{Storage: tc.storage, Algorithm: backendjwt.EdDSA})
			if err != nil {
				t.Fatal(err)
			}
			s, err := backendjwt.NewSigner(backendjwt.Config{Issuer: "gw", Keys: ks})
			if err != nil {
				t.Fatal(err)
			}
			b := &BackendJWT{signer: s, header: "X-Jwt-Assertion", folded: "x-jwt-assertion", reg: func() *keymanagers.Registry { return reg }, logger: zap.NewNop()}
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-JWT-Assertion", "forged")
			r.Header["X-Jwt_assertion"] = []string{"forged-alias"}
			r.Header.Set("X-Other", "kept")
			err = b.apply(r, &keymanagers.Principal{Tenant: "acme", KeyManager: "km", Subject: "alice"})
			if tc.status != 0 {
				var he caddyhttp.HandlerError
				if !errors.As(err, &he) || he.StatusCode != tc.status {
					t.Fatalf("apply: %v, want a %d handler error", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := r.Header.Values("X-JWT-Assertion"); len(v) != 1 || v[0] == "forged" || len(v[0]) < 40 {
				t.Fatalf("X-JWT-Assertion = %q", v)
			}
			if _, ok := r.Header["X-Jwt_assertion"]; ok || r.Header.Get("X-Other") != "kept" {
				t.Fatalf("headers after apply: %v", r.Header)
			}
		})
	}
}
