package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"
)

// gatewayFixture is a real in-process Caddy (caddytest) with two tenants,
// a Global Key Manager and an upstream that records what it received.
type gatewayFixture struct {
	tester       *caddytest.Tester
	acme, globex *testIdP
	corp         *testIdP
	up           *upstream
}

const gatewayBase = "http://localhost:9080"

func startGateway(t *testing.T) *gatewayFixture {
	t.Helper()
	f := &gatewayFixture{
		acme:   newTestIdP(t, jwa.RS256, "acme-1"),
		globex: newTestIdP(t, jwa.ES256, "globex-1"),
		corp:   newTestIdP(t, jwa.RS256, "corp-1"),
		up:     newUpstream(t),
	}
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
		max_ttl 1m
		expose_claims email
		global corp {
			issuer %[1]s
			jwks_url %[2]s/jwks
			audience https://api.example.test
		}
		tenant acme {
			key_manager acme-idp {
				issuer %[3]s
				jwks_url %[4]s/jwks
				audience https://api.example.test
				claims {
					consumer_key cid
				}
			}
		}
		tenant globex {
			key_manager globex-idp {
				well_known_url %[5]s/.well-known/openid-configuration
				audience https://api.example.test
			}
		}
	}
}
http://localhost:9080 {
	route /acme/* {
		keymanager {
			tenant acme
			forward_claim sub X-User-Id
			forward_claim email X-Email
		}
		reverse_proxy %[6]s
	}
	route /acme-own/* {
		keymanager {
			tenant acme
			key_managers acme-idp
		}
		reverse_proxy %[6]s
	}
	route /globex/* {
		keymanager {
			tenant globex
			keep_token
		}
		reverse_proxy %[6]s
	}
	route /dyn/* {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		reverse_proxy %[6]s
	}
	route /who {
		keymanager acme
		respond "{keymanager.tenant}|{keymanager.key_manager}|{keymanager.subject}|{keymanager.client_id}|{keymanager.scopes}|{http.auth.user.id}|{keymanager.claims.email}"
	}
}
`, f.corp.Issuer, f.corp.Srv.URL, f.acme.Issuer, f.acme.Srv.URL, f.globex.Issuer, f.up.hostPort())
	f.tester = caddytest.NewTester(t)
	f.tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return f
}

func (f *gatewayFixture) do(t *testing.T, method, path, token string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, gatewayBase+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.tester.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestGatewayEndToEnd(t *testing.T) {
	f := startGateway(t)
	aud := "https://api.example.test"
	acmeTok := f.acme.Mint(map[string]any{"sub": "alice", "aud": aud, "cid": "acme-app", "scope": "orders:read orders:write", "email": "alice@acme.test"})
	corpTok := f.corp.Mint(map[string]any{"sub": "carol", "aud": []string{aud}, "azp": "corp-app", "scp": []string{"admin"}})
	globexTok := f.globex.Mint(map[string]any{"sub": "gina", "aud": aud, "client_id": "globex-app"})
	expired := f.acme.Mint(map[string]any{"sub": "alice", "aud": aud, "exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})
	wrongAud := f.acme.Mint(map[string]any{"sub": "alice", "aud": "https://other.test"})

	type want struct {
		status   int
		code     int
		upstream bool
		bearer   string // expected fragment of WWW-Authenticate
	}
	cases := []struct {
		name  string
		path  string
		token string
		hdr   map[string]string
		want  want
	}{
		{"tenant KM token passes on its tenant", "/acme/orders", acmeTok, nil, want{200, 0, true, ""}},
		{"global KM token passes on tenant acme", "/acme/orders", corpTok, nil, want{200, 0, true, ""}},
		{"global KM token passes on tenant globex", "/globex/x", corpTok, nil, want{200, 0, true, ""}},
		{"discovered KM token passes on its tenant", "/globex/x", globexTok, nil, want{200, 0, true, ""}},
		{"tenant A token refused on tenant B", "/globex/x", acmeTok, nil, want{401, 900901, false, `error="invalid_token"`}},
		{"global token refused where the route lists only the tenant KM", "/acme-own/x", corpTok, nil, want{401, 900901, false, `error="invalid_token"`}},
		{"tenant KM token accepted where the route lists it", "/acme-own/x", acmeTok, nil, want{200, 0, true, ""}},
		{"no token is 401 missing credentials", "/acme/orders", "", nil, want{401, 900902, false, `Bearer realm="acme"`}},
		{"expired token is 900903", "/acme/orders", expired, nil, want{401, 900903, false, `error="invalid_token"`}},
		{"wrong audience is 900901", "/acme/orders", wrongAud, nil, want{401, 900901, false, `error="invalid_token"`}},
		{"garbage token is 900901", "/acme/orders", "not.a.jwt", nil, want{401, 900901, false, `error="invalid_token"`}},
		{"oversized token refused before parsing", "/acme/orders", strings.Repeat("a", 9000), nil, want{401, 900901, false, `error="invalid_token"`}},
		{"dynamic tenant from header", "/dyn/x", globexTok, map[string]string{"X-Tenant": "globex"}, want{200, 0, true, ""}},
		{"dynamic unknown tenant is 404", "/dyn/x", globexTok, map[string]string{"X-Tenant": "nope"}, want{404, 0, false, ""}},
		{"dynamic unknown tenant without token is 404", "/dyn/x", "", map[string]string{"X-Tenant": "nope"}, want{404, 0, false, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.up.hits.Load()
			resp, body := f.do(t, "GET", tc.path, tc.token, tc.hdr)
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.want.status, body)
			}
			reached := f.up.hits.Load() > before
			if reached != tc.want.upstream {
				t.Fatalf("upstream reached = %v, want %v", reached, tc.want.upstream)
			}
			if tc.want.code != 0 {
				var eb struct {
					Code        int    `json:"code"`
					Message     string `json:"message"`
					Description string `json:"description"`
				}
				if err := json.Unmarshal([]byte(body), &eb); err != nil {
					t.Fatalf("error body is not JSON: %q", body)
				}
				if eb.Code != tc.want.code || eb.Message == "" || eb.Description == "" {
					t.Fatalf("error body %+v, want code %d with message and description", eb, tc.want.code)
				}
				if tc.token != "" && strings.Contains(body, tc.token) {
					t.Fatal("error body echoes the token")
				}
			}
			if tc.want.bearer != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.want.bearer) {
				t.Fatalf("WWW-Authenticate %q lacks %q", resp.Header.Get("WWW-Authenticate"), tc.want.bearer)
			}
		})
	}

	t.Run("upstream gets forwarded claims and no Authorization header", func(t *testing.T) {
		resp, _ := f.do(t, "GET", "/acme/orders", acmeTok, map[string]string{"X-User-Id": "mallory", "X-Email": "spoof@evil.test"})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		h := f.up.lastHeader()
		if got := h.Values("X-User-Id"); len(got) != 1 || got[0] != "alice" {
			t.Fatalf("X-User-Id = %q, want [alice] (client value must be replaced)", got)
		}
		if got := h.Values("X-Email"); len(got) != 1 || got[0] != "alice@acme.test" {
			t.Fatalf("X-Email = %q", got)
		}
		if h.Get("Authorization") != "" {
			t.Fatal("Authorization header reached the upstream")
		}
	})
	t.Run("an underscore variant of a forwarded header is dropped", func(t *testing.T) {
		req, _ := http.NewRequest("GET", gatewayBase+"/acme/orders", nil)
		req.Header.Set("Authorization", "Bearer "+acmeTok)
		req.Header["X-User_Id"] = []string{"mallory"} // CGI-style upstreams read this as X-User-Id
		resp, err := f.tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k, v := range f.up.lastHeader() {
			if strings.Contains(k, "_") || (strings.EqualFold(k, "X-User-Id") && (len(v) != 1 || v[0] != "alice")) {
				t.Fatalf("upstream got %s: %q", k, v)
			}
		}
	})
	t.Run("forwarded claim missing from the token removes a spoofed header", func(t *testing.T) {
		_, _ = f.do(t, "GET", "/acme/orders", corpTok, map[string]string{"X-Email": "spoof@evil.test"})
		if got := f.up.lastHeader().Get("X-Email"); got != "" {
			t.Fatalf("X-Email = %q, want it removed", got)
		}
	})
	t.Run("keep_token forwards the Authorization header", func(t *testing.T) {
		_, _ = f.do(t, "GET", "/globex/x", globexTok, nil)
		if got := f.up.lastHeader().Get("Authorization"); got != "Bearer "+globexTok {
			t.Fatal("Authorization header was not kept")
		}
	})
	t.Run("placeholders expose the principal", func(t *testing.T) {
		for i := 0; i < 2; i++ { // fresh, then from the cache
			resp, body := f.do(t, "GET", "/who", acmeTok, nil)
			want := "acme|acme-idp|alice|acme-app|orders:read orders:write|alice|alice@acme.test"
			if resp.StatusCode != 200 || body != want {
				t.Fatalf("pass %d: %d %q, want %q", i, resp.StatusCode, body, want)
			}
		}
		_, body := f.do(t, "GET", "/who", corpTok, nil)
		if want := "acme|corp|carol|corp-app|admin|carol|"; body != want {
			t.Fatalf("global token placeholders %q, want %q", body, want)
		}
	})
	t.Run("metrics on the admin endpoint, with bounded labels", func(t *testing.T) {
		f.do(t, "GET", "/dyn/x", globexTok, map[string]string{"X-Tenant": "random-tenant-123"})
		resp, err := f.tester.Client.Get("http://localhost:2999/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		for _, want := range []string{
			`caddy_keymanagers_validations_total{key_manager="acme-idp",outcome="ok",tenant="acme"}`,
			`caddy_keymanagers_validations_total{key_manager="",outcome="expired",tenant="acme"}`,
			`caddy_keymanagers_validations_total{key_manager="",outcome="unknown_tenant",tenant="_unknown"}`,
			`caddy_keymanagers_cache_requests_total{result="hit"}`,
			`caddy_keymanagers_jwks_keys{key_manager="corp",tenant="global"} 1`,
			`caddy_keymanagers_jwks_fetches_total{key_manager="acme-idp",result="ok",tenant="acme"}`,
			`caddy_keymanagers_cache_entries`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(body, "random-tenant-123") || strings.Contains(body, "alice") {
			t.Error("metrics carry an unbounded label value (tenant from a header, or a subject)")
		}
	})
	t.Run("cached result survives the IdP going away", func(t *testing.T) {
		tok := f.acme.Mint(map[string]any{"sub": "bob", "aud": aud})
		if resp, _ := f.do(t, "GET", "/acme/x", tok, nil); resp.StatusCode != 200 {
			t.Fatalf("first: %d", resp.StatusCode)
		}
		fetches := f.acme.Fetches.Load()
		for i := 0; i < 5; i++ {
			if resp, _ := f.do(t, "GET", "/acme/x", tok, nil); resp.StatusCode != 200 {
				t.Fatalf("repeat %d: %d", i, resp.StatusCode)
			}
		}
		if f.acme.Fetches.Load() != fetches {
			t.Fatal("cache hits fetched the JWKS")
		}
	})
}

// TestGatewayHandleErrorsKeepsControl proves denials are returned as Caddy
// handler errors when the site has handle_errors, with the status,
// WWW-Authenticate and {keymanager.error.*} placeholders available.
func TestGatewayHandleErrorsKeepsControl(t *testing.T) {
	idp := newTestIdP(t, jwa.RS256, "k1")
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
				issuer %s
				jwks_url %s/jwks
			}
		}
	}
}
http://localhost:9080 {
	keymanager acme
	respond "ok"
	handle_errors {
		respond "custom {err.status_code} {keymanager.error.code} {keymanager.error.message}"
	}
}
`, idp.Issuer, idp.Srv.URL), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	resp, body := tester.AssertGetResponse(gatewayBase+"/x", 401, "custom 401 900902 Missing Credentials")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
	_ = body
	req, _ := http.NewRequest("GET", gatewayBase+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+idp.Mint(map[string]any{"sub": "a"}))
	tester.AssertResponse(req, 200, "ok")
}

// TestConfigErrors proves bad configs fail to load with a message that
// names the problem (and, for Caddyfiles, the line). Expected strings are
// matched against the admin API's JSON error, hence the escaped quotes.
func TestConfigErrors(t *testing.T) {
	base := `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	keymanagers {
%s
	}
}
http://localhost:9080 {
	%s
	respond ok
}
`
	cases := []struct {
		name, kms, site, want string
	}{
		{"two KMs with one issuer in a tenant", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
			}
			key_manager two {
				issuer https://idp.test
				jwks_url https://idp.test/keys
			}
		}`, "", `Caddyfile:13: tenant acme: key managers \"one\" (Caddyfile:9) and \"two\" have the same issuer`},
		{"tenant KM and global KM with one issuer", `
		global corp {
			issuer https://idp.test
			jwks_url https://idp.test/jwks
		}
		tenant acme {
			key_manager mine {
				issuer https://idp.test
				jwks_url https://idp.test/keys
			}
		}`, "", `Caddyfile:13: tenant acme: key managers \"corp\" (Caddyfile:8) and \"mine\" have the same issuer`},
		{"alg none", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
				allowed_algorithms RS256 none
			}
		}`, "", `Caddyfile:12: key manager one: allowed_algorithms: \"none\" is never allowed`},
		{"HS256 without a shared secret", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
				allowed_algorithms HS256
			}
		}`, "", `needs shared_secret`},
		{"unknown subdirective", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_urll https://idp.test/jwks
			}
		}`, "", `Caddyfile:11: key manager one: unknown subdirective \"jwks_urll\"`},
		{"unknown connector type", `
		tenant acme {
			key_manager one {
				type nosuchvendor
				issuer https://idp.test
			}
		}`, "", `Caddyfile:10: key manager one: unknown connector type \"nosuchvendor\"`},
		{"handler names an unknown tenant", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
			}
		}`, "keymanager nobody", `tenant \"nobody\" is not defined`},
		{"handler names a KM the tenant cannot see", `
		tenant acme {
			key_manager one {
				issuer https://idp.test
				jwks_url https://idp.test/jwks
			}
		}`, "keymanager {\n\t\ttenant acme\n\t\tkey_managers two\n\t}", `tenant \"acme\" has no key manager \"two\"`},
		{"KM without issuer or discovery", `
		tenant acme {
			key_manager one {
				jwks_url https://idp.test/jwks
			}
		}`, "", `Caddyfile:9: key manager one: issuer: set issuer, or well_known_url to discover it`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, fmt.Sprintf(base, tc.kms, tc.site), "caddyfile", tc.want)
		})
	}
}
