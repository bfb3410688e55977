//go:build unix

package caddymodule_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/kmgate/caddy-keymanager/internal/testidp"
)

// TestRealIdPs runs the gateway against two real OAuth2 servers whose token
// shapes differ on purpose: Ory Hydra (typ JWT, scp array, aud array,
// issuer with a trailing slash, Key Manager found by discovery) and node
// oidc-provider (typ at+jwt, ES256 and RS256, scope string, aud string).
// A missing IdP fails the test; it never skips.
func TestRealIdPs(t *testing.T) {
	hydra := testidp.StartHydra(t)
	hydra.CreateJWK(t, "hydra.jwt.access-token", "es-1", "ES256")
	hydra.CreateClient(t, testidp.ClientSpec{
		ID: "orders-app", Secret: "orders-secret-123", Scopes: []string{"read", "write"},
		Audiences: []string{"https://api.example.test"}, Strategy: "jwt",
	})
	node := testidp.StartOIDCProvider(t)
	up := newUpstream(t)

	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
		tenant hydra {
			key_manager hydra {
				well_known_url %[1]s
				audience https://api.example.test
			}
		}
		tenant node {
			key_manager node {
				issuer %[2]s
				jwks_url %[3]s
				audience https://api.example.test https://rs256.example.test
				require_at_jwt
			}
		}
	}
}
http://localhost:9080 {
	route /hydra/* {
		keymanager {
			tenant hydra
			forward_claim sub X-User-Id
		}
		reverse_proxy %[4]s
	}
	route /node/* {
		keymanager {
			tenant node
			forward_claim client_id X-Client-Id
		}
		reverse_proxy %[4]s
	}
	route /who/* {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		respond "{keymanager.key_manager}|{keymanager.subject}|{keymanager.client_id}|{keymanager.scopes}"
	}
}
`, hydra.WellKnownURL(), node.Issuer(), node.JWKSURL(), up.hostPort())
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	hydraTok := hydra.Token(t, "orders-app", "orders-secret-123", "read write", "https://api.example.test")
	nodeES := node.Token(t, "read write", testidp.OIDCResourceJWT)
	nodeRS := node.Token(t, "read", testidp.OIDCResourceRS256)

	// The shapes this test depends on, so a change in an IdP shows up here.
	if h, c := jwtParts(t, hydraTok); h["typ"] != "JWT" || c["iss"] != hydra.Issuer() || !strings.HasSuffix(hydra.Issuer(), "/") {
		t.Fatalf("unexpected Hydra token shape: header %v claims %v", h, c)
	}
	if h, _ := jwtParts(t, nodeES); h["typ"] != "at+jwt" || h["alg"] != "ES256" {
		t.Fatalf("unexpected oidc-provider token header %v", h)
	}
	if h, _ := jwtParts(t, nodeRS); h["alg"] != "RS256" {
		t.Fatalf("unexpected oidc-provider RS256 header %v", h)
	}

	get := func(path, token, tenant string) (int, string) {
		req, _ := http.NewRequest("GET", gatewayBase+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if tenant != "" {
			req.Header.Set("X-Tenant", tenant)
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(resp))
		return resp.StatusCode, b.String()
	}

	cases := []struct {
		name, path, token, tenant string
		status                    int
		body                      string
	}{
		{"Hydra JWT (scp array, aud array, trailing-slash issuer) passes", "/hydra/orders", hydraTok, "", 200, "upstream ok"},
		{"oidc-provider ES256 at+jwt passes", "/node/orders", nodeES, "", 200, "upstream ok"},
		{"oidc-provider RS256 at+jwt passes", "/node/orders", nodeRS, "", 200, "upstream ok"},
		{"Hydra token refused on the node tenant", "/node/orders", hydraTok, "", 401, ""},
		{"oidc-provider token refused on the Hydra tenant", "/hydra/orders", nodeES, "", 401, ""},
		{"Hydra scopes from the scp array", "/who/x", hydraTok, "hydra", 200, "hydra|orders-app|orders-app|read write"},
		{"oidc-provider scopes from the scope string", "/who/x", nodeES, "node", 200, "node|cc-client|cc-client|read write"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(tc.path, tc.token, tc.tenant)
			if status != tc.status || (tc.body != "" && body != tc.body) {
				t.Fatalf("got %d %q, want %d %q", status, body, tc.status, tc.body)
			}
		})
	}
	t.Run("upstream got the principal's headers", func(t *testing.T) {
		get("/hydra/orders", hydraTok, "")
		if got := up.lastHeader().Get("X-User-Id"); got != "orders-app" {
			t.Fatalf("X-User-Id %q", got)
		}
		get("/node/orders", nodeES, "")
		if got := up.lastHeader().Get("X-Client-Id"); got != "cc-client" {
			t.Fatalf("X-Client-Id %q", got)
		}
	})
	t.Run("Hydra key rotation: a token signed by a new key passes on first use", func(t *testing.T) {
		hydra.CreateJWK(t, "hydra.jwt.access-token", "es-2", "ES256")
		tok := hydra.Token(t, "orders-app", "orders-secret-123", "read", "https://api.example.test")
		if h, _ := jwtParts(t, tok); h["kid"] != "es-2" {
			t.Fatalf("Hydra did not sign with the new key: %v", h)
		}
		if status, body := get("/hydra/orders", tok, ""); status != 200 {
			t.Fatalf("rotated key: %d %s", status, body)
		}
	})
}

func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
