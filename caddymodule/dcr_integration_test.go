//go:build unix

package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/kmgate/caddy-keymanager/internal/testidp"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// dcrGateway starts Caddy with developer keys on real Hydra (open
// registration, endpoint configured) and oidc-provider (initial access
// token, endpoint discovered), plus Key Managers that refuse: "off" (no
// app creation), "down" (registration endpoint not listening) and, in
// tenant other, "hydra-no-tokens" (no token generation).
func dcrGateway(t *testing.T) (*adminFixture, *testidp.Hydra, *testidp.OIDC) {
	t.Helper()
	hydra := testidp.StartHydraDCR(t)
	node := testidp.StartOIDCProvider(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	f := &adminFixture{storage: t.TempDir()}
	f.cfg = fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	storage file_system %[1]s
	keymanagers {
		tenant dev {
			key_manager hydra {
				well_known_url %[2]s
				timeout 20s
				enable_oauth_app_creation
				enable_token_generation
				registration_endpoint %[3]s
			}
			key_manager node {
				well_known_url %[4]s
				audience https://api.example.test
				enable_oauth_app_creation
				enable_token_generation
				registration_access_token %[5]s
			}
			key_manager off {
				issuer https://off.example.test
				jwks_url http://%[6]s/jwks
			}
			key_manager down {
				issuer https://down.example.test
				jwks_url http://%[6]s/jwks
				enable_oauth_app_creation
				registration_endpoint http://%[6]s/register
			}
		}
		tenant other {
			key_manager hydra-no-tokens {
				well_known_url %[2]s
				enable_oauth_app_creation
				registration_endpoint %[3]s
			}
		}
	}
}
http://localhost:9080 {
	route /dev/* {
		keymanager dev
		respond "ok {keymanager.key_manager} {keymanager.client_id} {keymanager.scopes}"
	}
}
`, f.storage, hydra.WellKnownURL(), hydra.RegistrationURL(), node.WellKnownURL(), testidp.OIDCRegistrationIAT, closed)
	f.tester = caddytest.NewTester(t)
	f.tester.InitServer(f.cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return f, hydra, node
}

type appAnswer struct {
	Application keymanagers.Application `json:"application"`
}

// oldSecretRefused checks the IdP's token endpoint refuses a client.
func oldSecretRefused(t *testing.T, tokenURL, id, secret string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the IdP's token endpoint answered %d to the deleted client's secret, want a refusal", resp.StatusCode)
	}
}

// TestDeveloperKeys_RegisterTokenGatewayDelete registers an application
// at each real IdP through the admin API, sees its secret once and masked
// after, generates a token with chosen scopes that the gateway's
// keymanager handler accepts, deletes the application and proves the
// client is gone at the IdP. Then it checks every refusal's status.
func TestDeveloperKeys_RegisterTokenGatewayDelete(t *testing.T) {
	f, hydra, node := dcrGateway(t)
	lifecycle := []struct {
		km, tokenURL string
	}{
		{"hydra", hydra.TokenURL()},
		{"node", node.TokenURL()},
	}
	for _, tc := range lifecycle {
		t.Run(tc.km, func(t *testing.T) {
			id := "shop-" + tc.km
			resp, body := f.call(t, "POST", "/keymanagers/dev/applications/", map[string]any{"id": id, "key_manager": tc.km,
				"register": true, "client_name": "Shop", "grant_types": []string{"client_credentials"}, "registration_scopes": []string{"read", "write"}}, nil)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("register: %d %s", resp.StatusCode, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("the answer with the secret has Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			var created appAnswer
			_ = json.Unmarshal(body, &created)
			ap := created.Application
			if ap.ClientID == "" || ap.ClientSecret == "" || ap.ClientSecret == keymanagers.Mask || !ap.Registered {
				t.Fatalf("create answer: %s", body)
			}
			for _, path := range []string{"/keymanagers/dev/applications/" + id, "/keymanagers/dev/applications/"} {
				resp, body := f.call(t, "GET", path, nil, nil)
				if resp.StatusCode != http.StatusOK || strings.Contains(string(body), ap.ClientSecret) || !strings.Contains(string(body), keymanagers.Mask) {
					t.Fatalf("GET %s must mask the secret: %d %s", path, resp.StatusCode, body)
				}
			}
			resp, body = f.call(t, "POST", "/keymanagers/dev/applications/"+id+"/token", map[string]any{"scopes": []string{"read"}}, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("token: %d %s", resp.StatusCode, body)
			}
			var tok keymanagers.ClientToken
			_ = json.Unmarshal(body, &tok)
			if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Scope != "read" || tok.ExpiresIn <= 0 {
				t.Fatalf("token answer: %s", body)
			}
			status, out := f.gw(t, "/dev/orders", tok.AccessToken, "")
			if want := fmt.Sprintf("ok %s %s read", tc.km, ap.ClientID); status != http.StatusOK || out != want {
				t.Fatalf("gateway: %d %q, want 200 %q", status, out, want)
			}
			resp, body = f.call(t, "DELETE", "/keymanagers/dev/applications/"+id, nil, nil)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", resp.StatusCode, body)
			}
			oldSecretRefused(t, tc.tokenURL, ap.ClientID, ap.ClientSecret)
		})
	}

	// An application registered where tokens are off, and one the gateway did not register.
	if resp, body := f.call(t, "POST", "/keymanagers/other/applications/", map[string]any{"id": "no-tokens", "key_manager": "hydra-no-tokens", "register": true}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register at hydra-no-tokens: %d %s", resp.StatusCode, body)
	}
	if resp, body := f.call(t, "POST", "/keymanagers/dev/applications/", map[string]any{"id": "plain", "key_manager": "node", "client_id": "cc-client"}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("plain application: %d %s", resp.StatusCode, body)
	}
	refusals := []struct {
		name, method, path string
		body               any
		status             int
		field              string // expected first field error, for 400
	}{
		{"register with client_id", "POST", "/keymanagers/dev/applications/", map[string]any{"id": "a", "key_manager": "node", "register": true, "client_id": "x"}, 400, "client_id"},
		{"idp refuses the metadata", "POST", "/keymanagers/dev/applications/", map[string]any{"id": "a", "key_manager": "node", "register": true, "registration_scopes": []string{"admin"}}, 400, "registration_scopes"},
		{"app creation off", "POST", "/keymanagers/dev/applications/", map[string]any{"id": "a", "key_manager": "off", "register": true}, 409, ""},
		{"idp down", "POST", "/keymanagers/dev/applications/", map[string]any{"id": "a", "key_manager": "down", "register": true}, 502, ""},
		{"token generation off", "POST", "/keymanagers/other/applications/no-tokens/token", nil, 409, ""},
		{"token for an application not registered here", "POST", "/keymanagers/dev/applications/plain/token", map[string]any{}, 409, ""},
		{"token for an unknown application", "POST", "/keymanagers/dev/applications/nope/token", nil, 404, ""},
		{"token with an unknown field", "POST", "/keymanagers/dev/applications/plain/token", map[string]any{"scope": "read"}, 400, ""},
		{"token by GET", "GET", "/keymanagers/dev/applications/plain/token", nil, 405, ""},
		{"a client_secret sent", "PUT", "/keymanagers/dev/applications/plain", map[string]any{"key_manager": "node", "client_id": "cc-client", "client_secret": "guess"}, 400, "client_secret"},
		{"delete with a bad force", "DELETE", "/keymanagers/other/applications/no-tokens?force=maybe", nil, 400, ""},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.call(t, tc.method, tc.path, tc.body, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			}
			if strings.Contains(string(body), testidp.OIDCRegistrationIAT) {
				t.Fatalf("the answer echoes the initial access token: %s", body)
			}
			if tc.field != "" {
				var fe struct {
					Fields []keymanagers.FieldError `json:"fields"`
				}
				if json.Unmarshal(body, &fe) != nil || len(fe.Fields) == 0 || fe.Fields[0].Field != tc.field {
					t.Fatalf("want a field error on %s: %s", tc.field, body)
				}
			}
			if _, b := f.call(t, "GET", "/keymanagers/dev/applications/a", nil, nil); !strings.Contains(string(b), "not found") {
				t.Fatalf("a refused create left an application: %s", b)
			}
		})
	}
	resp, body := f.call(t, "GET", "/keymanagers/dev/node", nil, nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), testidp.OIDCRegistrationIAT) || !strings.Contains(string(body), `"registration_access_token": "`+keymanagers.Mask) {
		t.Fatalf("the Key Manager's initial access token must be masked: %d %s", resp.StatusCode, body)
	}
	// Import fills the developer-key endpoints from discovery.
	resp, body = f.call(t, "POST", "/keymanagers/discover", map[string]any{"well_known_url": node.WellKnownURL(),
		"enable_oauth_app_creation": true, "enable_token_generation": true, "registration_access_token": "iat-value"}, nil)
	var disc keymanagers.Definition
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &disc) != nil || disc.RegistrationEndpoint != node.RegistrationURL() ||
		disc.TokenURL != node.TokenURL() || disc.RegistrationAccessToken != keymanagers.Mask {
		t.Fatalf("discover: %d %s", resp.StatusCode, body)
	}
	if resp, body := f.call(t, "DELETE", "/keymanagers/other/applications/no-tokens", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete at hydra-no-tokens: %d %s", resp.StatusCode, body)
	}
}
