package caddymodule_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// bjwtCaddyfile is a gateway whose keymanager handler has the given
// options and whose keymanagers option ends with global.
func bjwtCaddyfile(global, handler string) string {
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	keymanagers {
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
			}
		}
%s
	}
}
http://localhost:9080 {
	keymanager {
		tenant acme
%s
	}
	respond ok
}
`, global, handler)
}

// TestBackendJWTCaddyfileErrors: what the parser can check alone is an
// adapt-time error with file and line, naming the option.
func TestBackendJWTCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, global, handler, want, at string
	}{
		{"unknown algorithm", "", "backend_jwt {\n issuer gw\n algorithm HS256\n}", `backend_jwt: algorithm: unknown algorithm "HS256"`, "at Caddyfile:21"},
		{"ttl under the floor", "", "backend_jwt {\n issuer gw\n ttl 10s\n}", `backend_jwt: ttl: 10s is too short (at least 30s)`, "at Caddyfile:21"},
		{"ttl not a duration", "", "backend_jwt {\n issuer gw\n ttl soon\n}", `backend_jwt: ttl: "soon" is not a duration`, ""},
		{"Authorization header", "", "backend_jwt {\n issuer gw\n header authorization\n}", `backend_jwt: header: "authorization" is not a header name that can be set`, "at Caddyfile:21"},
		{"header with a space", "", "backend_jwt {\n issuer gw\n header \"X JWT\"\n}", `backend_jwt: header: "X JWT" is not a header name`, ""},
		{"no issuer", "", "backend_jwt {\n ttl 1m\n}", `backend_jwt: issuer is required`, ""},
		{"unknown option", "", "backend_jwt {\n issuer gw\n lifetime 1m\n}", `backend_jwt: unknown option "lifetime"`, "at Caddyfile:21"},
		{"claim_mapping arity", "", "backend_jwt {\n issuer gw\n claims a\n claim_mapping a\n}", `backend_jwt: claim_mapping: expected CLAIM NAME`, ""},
		{"claim mapped twice", "", "backend_jwt {\n issuer gw\n claims a\n claim_mapping a b\n claim_mapping a c\n}", `backend_jwt: claim_mapping: "a" is mapped twice`, ""},
		{"option twice", "", "backend_jwt {\n issuer gw\n}\nbackend_jwt {\n issuer gw\n}", `backend_jwt: may appear only once`, ""},
		{"rotate_every too short", "backend_jwt {\n rotate_every 5m\n}", "", `backend_jwt: rotate_every: "5m" is not a duration of at least 10m0s`, "at Caddyfile:14"},
		{"global unknown option", "backend_jwt {\n rotate 1h\n}", "", `backend_jwt: unknown option "rotate" (expected rotate_every)`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(bjwtCaddyfile(tc.global, tc.handler)), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.at) {
				t.Fatalf("adapt error %v\nwant %q %s", err, tc.want, tc.at)
			}
		})
	}
}

// TestBackendJWTConfigErrors: checks that need the whole handler or app
// (and every JSON config) fail the load, naming the field.
func TestBackendJWTConfigErrors(t *testing.T) {
	cases := []struct {
		name, global, handler, want string
	}{
		{"header of a forward_claim", "", "forward_claim sub X-User-Id\nbackend_jwt {\n issuer gw\n header x-user_id\n}",
			`keymanager: backend_jwt: header: x-user_id is also the header of forward_claim[0] (sub)`},
		{"claim on a reserved name", "", "backend_jwt {\n issuer gw\n claims sub\n}",
			`keymanager: backend_jwt: claims: \"sub\" would overwrite the sub claim the gateway sets; rename it with claim_mapping`},
		{"ttl too long for the rotation", "backend_jwt {\n rotate_every 10m\n}", "backend_jwt {\n issuer gw\n ttl 10m\n}",
			`keymanager: backend_jwt: ttl: 10m0s is too long for keys rotated every 10m0s (at most 9m0s`},
		{"sync_interval too long for the rotation", "sync_interval 3m\nbackend_jwt {\n rotate_every 10m\n}", "backend_jwt {\n issuer gw\n}",
			`keymanagers: sync_interval (3m0s) must be shorter than a quarter of backend_jwt rotate_every (10m0s)`},
		{"mapping of a claim not chosen", "", "backend_jwt {\n issuer gw\n claims email\n claim_mapping groups roles\n}",
			`keymanager: backend_jwt: claim_mapping: \"groups\" is not one of the chosen claims`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, bjwtCaddyfile(tc.global, tc.handler), "caddyfile", tc.want)
		})
	}
	json := `{"admin": {"listen": "localhost:2999"}, "apps": {
	"keymanagers": {%s "tenants": {"acme": {"key_managers": [{"name": "one", "issuer": "https://idp.test", "jwks_url": "https://idp.test/jwks"}]}}},
	"http": {"servers": {"s": {"listen": ["localhost:9080"], "routes": [{"handle": [{"handler": "keymanager", "tenant": "acme", "backend_jwt": %s}]}]}}}}}`
	jsonCases := []struct {
		name, app, opt, want string
	}{
		{"unknown algorithm", "", `{"issuer": "gw", "algorithm": "HS256"}`, `keymanager: backend_jwt: algorithm: unknown algorithm \"HS256\"`},
		{"no issuer", "", `{"ttl": 60000000000}`, `keymanager: backend_jwt: issuer: is required`},
		{"ttl too short", "", `{"issuer": "gw", "ttl": 1000000000}`, `keymanager: backend_jwt: ttl: 1s is too short`},
		{"Authorization header", "", `{"issuer": "gw", "header": "Authorization"}`, `keymanager: backend_jwt: header: refusing to overwrite the Authorization header`},
		{"rotate_every too short", `"backend_jwt": {"rotate_every": 60000000000},`, `{"issuer": "gw"}`, `keymanagers: backend_jwt: rotate_every: 1m0s is too short`},
	}
	for _, tc := range jsonCases {
		t.Run("json "+tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, fmt.Sprintf(json, tc.app, tc.opt), "json", tc.want)
		})
	}
}
