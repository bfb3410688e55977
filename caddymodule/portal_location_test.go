package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestPortalAPIBaseFollowsTheStrippedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, original, current, want string
	}{
		{"handle_path stripped /portal", "/portal/api/acme/", "/api/acme/", "/portal/api/"},
		{"nested prefix", "/ops/keys/portal/api/acme/x", "/api/acme/x", "/ops/keys/portal/api/"},
		{"served at the root", "/api/acme/", "/api/acme/", "/api/"},
		{"rewritten, not stripped: no prefix is guessed", "/console/keys", "/api/acme/", "/api/"},
		{"no original request", "", "/api/acme/", "/api/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tc.current, nil)
			if tc.original != "" {
				orig := httptest.NewRequest(http.MethodPost, tc.original, nil)
				r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *orig))
			}
			if got := portalAPIBase(r); got != tc.want {
				t.Fatalf("portalAPIBase = %q, want %q", got, tc.want)
			}
		})
	}
}
