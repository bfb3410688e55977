package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestScopesThroughCaddy proves resource scopes, strategies, path
// normalisation, application scopes, subscriptions and claim requirements
// end to end through a real Caddy.
func TestScopesThroughCaddy(t *testing.T) {
	idp := newTestIdP(t, jwa.RS256, "s-1")
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
		tenant acme {
			key_manager idp {
				issuer %[1]s
				jwks_url %[2]s/jwks
			}
			application batch {
				key_manager idp
				client_id batch-app
				scopes admin
				deny_scopes orders:delete
				subscriptions orders
			}
		}
	}
}
http://localhost:9080 {
	route /api/* {
		keymanager {
			tenant acme
			scope GET  /api/orders/{id} orders:read
			scope POST /api/orders      orders:write
			scope DELETE /api/orders/{id} orders:delete
			scope *    /api/admin/*     admin
			scope GET  /api/reports     reports:read reports:admin {
				match all
			}
		}
		respond "ok {keymanager.scopes}"
	}
	route /strict/* {
		keymanager {
			tenant acme
			scope GET /strict/known orders:read
			unmatched deny
		}
		respond "ok"
	}
	route /hier/* {
		keymanager {
			tenant acme
			scope_strategy hierarchic
			scope GET /hier/orders orders:read
			scope DELETE /hier/orders orders:delete
		}
		respond "ok"
	}
	route /wild/* {
		keymanager {
			tenant acme
			scope_strategy wildcard
			scope GET /wild/orders orders:read
			scope DELETE /wild/orders orders:delete
		}
		respond "ok"
	}
	route /sub/* {
		keymanager {
			tenant acme
			api orders
			require_subscription
		}
		respond "ok"
	}
	route /roles/* {
		keymanager {
			tenant acme
			require_claim realm_access.roles admin auditor
		}
		respond "ok"
	}
}
`, idp.Issuer, idp.Srv.URL), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	tok := func(claims map[string]any) string { return idp.Mint(claims) }
	reader := tok(map[string]any{"sub": "alice", "azp": "web-app", "scope": "orders:read"})
	writer := tok(map[string]any{"sub": "bob", "azp": "web-app", "scope": "orders:read orders:write"})
	broad := tok(map[string]any{"sub": "carol", "azp": "web-app", "scope": "orders"})
	wild := tok(map[string]any{"sub": "dan", "azp": "web-app", "scope": "orders:*"})
	reports1 := tok(map[string]any{"sub": "e", "azp": "web-app", "scope": "reports:read"})
	reports2 := tok(map[string]any{"sub": "e", "azp": "web-app", "scope": "reports:read reports:admin"})
	batchOwn := tok(map[string]any{"sub": "batch-app", "azp": "batch-app", "scope": "orders:read orders:delete"})
	batchBroad := tok(map[string]any{"sub": "batch-app", "azp": "batch-app", "scope": "orders"})
	batchWild := tok(map[string]any{"sub": "batch-app", "azp": "batch-app", "scope": "orders:*"})
	batchUser := tok(map[string]any{"sub": "frank", "azp": "batch-app", "scope": "orders:read"})
	roles := tok(map[string]any{"sub": "g", "azp": "web-app", "realm_access": map[string]any{"roles": []string{"user", "auditor"}}})
	noRoles := tok(map[string]any{"sub": "g", "azp": "web-app", "realm_access": map[string]any{"roles": []string{"user"}}})

	cases := []struct {
		name, method, path, token string
		status                    int
		body                      string // substring of the body
		scopeHdr                  string // expected scope="..." in WWW-Authenticate
	}{
		{"template rule grants with the scope", "GET", "/api/orders/42", reader, 200, "ok orders:read", ""},
		{"missing scope is 403 listing the scope", "POST", "/api/orders", reader, 403, "900910", "orders:write"},
		{"rule with the scope passes", "POST", "/api/orders", writer, 200, "ok", ""},
		{"unmatched resource is allowed by default", "GET", "/api/unlisted", reader, 200, "ok", ""},
		{"wildcard rule needs admin", "GET", "/api/admin/users", writer, 403, "900910", "admin"},
		{"dot segments cannot reach admin", "GET", "/api/orders/../admin/users", reader, 403, "900910", "admin"},
		{"encoded slash and dots cannot reach admin", "GET", "/api/orders/%2e%2e%2Fadmin/users", reader, 403, "900910", "admin"},
		{"case cannot dodge a rule", "GET", "/api/ADMIN/users", reader, 403, "900910", "admin"},
		{"double slash cannot dodge a rule", "GET", "/api//admin//users", reader, 403, "900910", "admin"},
		{"trailing slash cannot dodge a rule", "POST", "/api/orders/", reader, 403, "900910", "orders:write"},
		{"double encoding is refused", "GET", "/api/%252e%252e/admin", reader, 400, "malformed", ""},
		{"match all needs every scope", "GET", "/api/reports", reports1, 403, "900910", "reports:read reports:admin"},
		{"match all passes with every scope", "GET", "/api/reports", reports2, 200, "ok", ""},
		{"unmatched deny refuses unlisted resources", "GET", "/strict/other", writer, 403, "900910", ""},
		{"unmatched deny still allows listed ones", "GET", "/strict/known", reader, 200, "ok", ""},
		{"hierarchic: orders grants orders:read", "GET", "/hier/orders", broad, 200, "ok", ""},
		{"exact: orders does not grant orders:read", "GET", "/api/orders/1", broad, 403, "900910", "orders:read"},
		{"wildcard: orders:* grants orders:read", "GET", "/wild/orders", wild, 200, "ok", ""},
		{"application scopes are added to the application's own token", "GET", "/api/admin/jobs", batchOwn, 200, "ok orders:read admin", ""},
		{"deny_scopes remove a scope from the application's tokens", "DELETE", "/api/orders/7", batchOwn, 403, "900910", "orders:delete"},
		{"hierarchic: a granted parent does not undo deny_scopes", "DELETE", "/hier/orders", batchBroad, 403, "900910", "orders:delete"},
		{"hierarchic: the parent still grants what is not denied", "GET", "/hier/orders", batchBroad, 200, "ok", ""},
		{"wildcard: a granted star does not undo deny_scopes", "DELETE", "/wild/orders", batchWild, 403, "900910", "orders:delete"},
		{"wildcard: the star still grants what is not denied", "GET", "/wild/orders", batchWild, 200, "ok", ""},
		{"application scopes are not added to user tokens", "GET", "/api/admin/jobs", batchUser, 403, "900910", "admin"},
		{"subscribed application passes", "GET", "/sub/x", batchUser, 200, "ok", ""},
		{"token of an unknown application is 403 900908", "GET", "/sub/x", reader, 403, "900908", ""},
		{"nested claim array holding a required value passes", "GET", "/roles/x", roles, 200, "ok", ""},
		{"nested claim without the value is 403", "GET", "/roles/x", noRoles, 403, "900908", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, gatewayBase+tc.path, nil)
			req.URL.RawPath = "" // send the path exactly as written
			req.URL.Opaque = "//localhost:9080" + tc.path
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.body)
			}
			if tc.scopeHdr != "" {
				wa := resp.Header.Get("WWW-Authenticate")
				if !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="`+tc.scopeHdr+`"`) {
					t.Fatalf("WWW-Authenticate %q, want insufficient_scope with scope=%q", wa, tc.scopeHdr)
				}
			}
			if tc.status == 403 && strings.Contains(string(b), "900910") {
				var eb map[string]any
				if json.Unmarshal(b, &eb) != nil {
					t.Fatalf("body not JSON: %s", b)
				}
			}
		})
	}
}
