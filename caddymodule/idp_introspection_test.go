//go:build unix

package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/kmgate/caddy-keymanager/internal/testidp"
)

// TestRealIdPIntrospection validates opaque tokens through RFC 7662 at two
// real servers (Hydra's admin port without client auth, oidc-provider with
// an authenticated introspecting client), shows that a revoked token is
// refused once its cache entry expires, and that introspecting JWTs
// (token_validation introspection) sees a revocation that a JWKS-mode
// route does not.
func TestRealIdPIntrospection(t *testing.T) {
	hydra := testidp.StartHydra(t)
	hydra.CreateClient(t, testidp.ClientSpec{ID: "opaque-app", Secret: "opaque-secret-123", Scopes: []string{"read", "write"},
		Audiences: []string{"https://api.example.test"}, Strategy: "opaque"})
	hydra.CreateClient(t, testidp.ClientSpec{ID: "jwt-app", Secret: "jwt-secret-123", Scopes: []string{"read"},
		Audiences: []string{"https://api.example.test"}, Strategy: "jwt"})
	node := testidp.StartOIDCProvider(t)
	up := newUpstream(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")

	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	log {
		output file %[7]s
		level DEBUG
	}
	keymanagers {
		tenant hydra {
			key_manager hydra-opaque {
				issuer %[1]s
				introspection_url %[2]s
				introspection_auth none
				audience https://api.example.test
				introspection_cache_ttl 1s
				token_handling {
					reference ^ory_at_
				}
			}
		}
		tenant hydra-jwks {
			key_manager hydra {
				issuer %[1]s
				jwks_url %[3]s
				token_validation jwt
			}
		}
		tenant hydra-revocable {
			key_manager hydra {
				issuer %[1]s
				introspection_url %[2]s
				introspection_auth none
				token_validation introspection
				introspection_cache_ttl 1s
			}
		}
		tenant node {
			key_manager node {
				well_known_url %[4]s
				client_id gateway
				client_secret {env.KMGATE_TEST_NODE_SECRET}
				introspection_cache_ttl 1s
			}
		}
		tenant node-badsecret {
			key_manager node {
				issuer %[5]s
				introspection_url %[8]s
				client_id gateway
				client_secret not-the-secret
			}
		}
	}
}
http://localhost:9080 {
	route /t/* {
		keymanager {
			tenant {http.request.header.X-Tenant}
			forward_claim sub X-User-Id
		}
		reverse_proxy %[6]s
	}
	route /who {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		respond "{keymanager.key_manager}|{keymanager.client_id}|{keymanager.scopes}"
	}
}
`, hydra.Issuer(), hydra.IntrospectionURL(), hydra.JWKSURL(), node.WellKnownURL(), node.Issuer(), up.hostPort(), logFile, node.IntrospectionURL())
	t.Setenv("KMGATE_TEST_NODE_SECRET", testidp.OIDCIntrospectSecret)
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	get := func(t *testing.T, path, tenant, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", gatewayBase+path, nil)
		req.Header.Set("X-Tenant", tenant)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(resp)
	}

	hydraOpaque := hydra.Token(t, "opaque-app", "opaque-secret-123", "read write", "https://api.example.test")
	if !strings.HasPrefix(hydraOpaque, "ory_at_") {
		t.Fatalf("Hydra did not issue an opaque token: %.10s...", hydraOpaque)
	}
	nodeOpaque := node.Token(t, "read", testidp.OIDCResourceOpaque)
	if strings.Count(nodeOpaque, ".") == 2 {
		t.Fatal("oidc-provider issued a JWT for the opaque resource")
	}

	t.Run("Hydra opaque token passes through introspection", func(t *testing.T) {
		status, body := get(t, "/who", "hydra", hydraOpaque)
		if status != 200 || body != "hydra-opaque|opaque-app|read write" {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("oidc-provider opaque token passes with an authenticated introspecting client", func(t *testing.T) {
		status, body := get(t, "/who", "node", nodeOpaque)
		if status != 200 || body != "node|cc-client|read" {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("junk opaque token is 401", func(t *testing.T) {
		if status, body := get(t, "/who", "node", "not-a-real-token-but-well-formed"); status != 401 || !strings.Contains(body, "900901") {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("a wrong introspection secret is 503 with a clear log line and no token in the logs", func(t *testing.T) {
		tok := node.Token(t, "read", testidp.OIDCResourceOpaque)
		status, body := get(t, "/who", "node-badsecret", tok)
		if status != 503 || !strings.Contains(body, "900900") {
			t.Fatalf("%d %q", status, body)
		}
		logs, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logs), "introspection endpoint answered HTTP 401 (invalid_client") {
			t.Fatalf("no clear log line about the refused client; logs:\n%s", tail(string(logs), 30))
		}
		for _, secret := range []string{tok, nodeOpaque, hydraOpaque, "not-the-secret", testidp.OIDCIntrospectSecret} {
			if strings.Contains(string(logs), secret) {
				t.Fatalf("a token or secret appears in the logs")
			}
		}
	})
	t.Run("a token revoked at the IdP is refused once its cache entry expires", func(t *testing.T) {
		tok := node.Token(t, "read", testidp.OIDCResourceOpaque)
		if status, _ := get(t, "/t/x", "node", tok); status != 200 {
			t.Fatalf("before revocation: %d", status)
		}
		node.RevokeToken(t, tok)
		if status, _ := get(t, "/t/x", "node", tok); status != 200 {
			t.Fatalf("still cached right after revocation: want 200, got %d", status)
		}
		time.Sleep(2100 * time.Millisecond) // introspection_cache_ttl 1s (whole seconds)
		if status, body := get(t, "/t/x", "node", tok); status != 401 || !strings.Contains(body, "900901") {
			t.Fatalf("after the cache entry expired: %d %q", status, body)
		}
	})
	t.Run("introspection mode sees a revoked JWT that JWKS mode still accepts", func(t *testing.T) {
		jwt := hydra.Token(t, "jwt-app", "jwt-secret-123", "read", "https://api.example.test")
		for _, tenant := range []string{"hydra-jwks", "hydra-revocable"} {
			if status, body := get(t, "/t/x", tenant, jwt); status != 200 {
				t.Fatalf("%s before revocation: %d %s", tenant, status, body)
			}
		}
		hydra.RevokeToken(t, "jwt-app", "jwt-secret-123", jwt)
		time.Sleep(2100 * time.Millisecond)
		if status, _ := get(t, "/t/x", "hydra-jwks", jwt); status != 200 {
			t.Fatalf("JWKS mode should accept a revoked but unexpired JWT, got %d", status)
		}
		if status, body := get(t, "/t/x", "hydra-revocable", jwt); status != 401 {
			t.Fatalf("introspection mode should refuse a revoked JWT, got %d %s", status, body)
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
