package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

const adminBase = "http://localhost:2999"

type adminFixture struct {
	tester  *caddytest.Tester
	storage string
	cfgIdP  *testIdP
	cfg     string
}

func startAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{storage: t.TempDir(), cfgIdP: newTestIdP(t, jwa.RS256, "cfg-1")}
	f.cfg = fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	storage file_system %[1]s
	keymanagers {
		sync_interval 1s
		tenant acme {
			key_manager from-config {
				issuer %[2]s
				jwks_url %[3]s/jwks
				client_id cfg-client
				client_secret cfg-secret-value
			}
		}
	}
}
http://localhost:9080 {
	route /acme/* {
		keymanager acme
		respond "ok {keymanager.key_manager}"
	}
	route /dyn/* {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		respond "ok {keymanager.tenant} {keymanager.key_manager}"
	}
	route /sub/* {
		keymanager {
			tenant acme
			api orders
			require_subscription
		}
		respond "ok {keymanager.scopes}"
	}
	handle_path /portal/* {
		keymanager_portal
	}
}
`, f.storage, f.cfgIdP.Issuer, f.cfgIdP.Srv.URL)
	f.tester = caddytest.NewTester(t)
	f.tester.InitServer(f.cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return f
}

func (f *adminFixture) call(t *testing.T, method, path string, body any, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, adminBase+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
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
	return resp, b
}

func (f *adminFixture) gw(t *testing.T, path, token, tenant string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", gatewayBase+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if tenant != "" {
		req.Header.Set("X-Tenant", tenant)
	}
	resp, err := f.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func kmDef(name string, idp *testIdP) map[string]any {
	return map[string]any{"name": name, "issuer": idp.Issuer, "jwks_url": idp.Srv.URL + "/jwks",
		"client_id": "api-client", "client_secret": "api-secret-value"}
}

func TestAdminAPI(t *testing.T) {
	f := startAdminFixture(t)
	apiIdP := newTestIdP(t, jwa.ES256, "api-1")
	apiTok := apiIdP.Mint(map[string]any{"sub": "u1"})

	t.Run("a token of a Key Manager not yet created is refused", func(t *testing.T) {
		if status, _ := f.gw(t, "/acme/x", apiTok, ""); status != 401 {
			t.Fatalf("status %d", status)
		}
	})
	var etag string
	t.Run("POST creates a Key Manager that takes effect at once", func(t *testing.T) {
		resp, body := f.call(t, "POST", "/keymanagers/acme/", kmDef("from-api", apiIdP), nil)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		etag = resp.Header.Get("ETag")
		if etag == "" || strings.Contains(string(body), "api-secret-value") {
			t.Fatalf("no ETag or secret not masked: %s", body)
		}
		if status, body := f.gw(t, "/acme/x", apiTok, ""); status != 200 || body != "ok from-api" {
			t.Fatalf("gateway: %d %q", status, body)
		}
	})
	t.Run("GET lists config and API Key Managers with their source and masked secrets", func(t *testing.T) {
		resp, body := f.call(t, "GET", "/keymanagers/", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var list []struct {
			Tenant, Name, Source string
			Definition           map[string]any
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, v := range list {
			got[v.Tenant+"/"+v.Name] = v.Source
			if s, _ := v.Definition["client_secret"].(string); s != "" && s != "********" {
				t.Fatalf("secret not masked in %s/%s", v.Tenant, v.Name)
			}
		}
		if got["acme/from-config"] != "config" || got["acme/from-api"] != "api" {
			t.Fatalf("list %v", got)
		}
		if strings.Contains(string(body), "cfg-secret-value") || strings.Contains(string(body), "api-secret-value") {
			t.Fatal("a secret leaked")
		}
	})
	t.Run("status codes", func(t *testing.T) {
		cases := []struct {
			name, method, path string
			body               any
			hdr                map[string]string
			status             int
			want               string
		}{
			{"duplicate name is 409", "POST", "/keymanagers/acme/", kmDef("from-api", apiIdP), nil, 409, "already exists"},
			{"config name is 409 read-only", "POST", "/keymanagers/acme/", kmDef("from-config", apiIdP), nil, 409, "read-only"},
			{"same issuer as another KM is 409", "POST", "/keymanagers/acme/", kmDef("clash", f.cfgIdP), nil, 409, "same issuer"},
			{"invalid definition is 400 with field errors", "POST", "/keymanagers/acme/",
				map[string]any{"name": "Bad Name", "issuer": "https://x.test", "jwks_url": "ftp://x", "allowed_algorithms": []string{"none"}}, nil, 400, `"field": "allowed_algorithms"`},
			{"unknown JSON field is 400", "POST", "/keymanagers/acme/", `{"name":"x","issuer":"https://x.test","jwks_url":"https://x.test/j","jwks_urll":"y"}`, nil, 400, "jwks_urll"},
			{"malformed JSON is 400", "POST", "/keymanagers/acme/", `{"name":`, nil, 400, "invalid JSON"},
			{"unknown KM is 404", "GET", "/keymanagers/acme/nope", nil, nil, 404, "not found"},
			{"unknown tenant is 404", "GET", "/keymanagers/nobody/", nil, nil, 404, "not found"},
			{"unknown route is 404", "GET", "/keymanagers/acme/from-api/nope", nil, nil, 404, ""},
			{"wrong method is 405", "PATCH", "/keymanagers/acme/from-api", `{}`, nil, 405, "not allowed"},
			{"PUT with a stale If-Match is 412", "PUT", "/keymanagers/acme/from-api", kmDef("from-api", apiIdP), map[string]string{"If-Match": `"stale"`}, 412, "does not match"},
			{"PUT on a config KM is 409", "PUT", "/keymanagers/acme/from-config", kmDef("from-config", f.cfgIdP), nil, 409, "read-only"},
			{"PUT renaming is 400", "PUT", "/keymanagers/acme/from-api", kmDef("other", apiIdP), nil, 400, "cannot be renamed"},
			{"DELETE of a config KM is 409", "DELETE", "/keymanagers/acme/from-config", nil, nil, 409, "read-only"},
			{"DELETE with a stale If-Match is 412", "DELETE", "/keymanagers/acme/from-api", nil, map[string]string{"If-Match": `"stale"`}, 412, ""},
			{"revoke without token or jti is 400", "POST", "/keymanagers/revoke", `{}`, nil, 400, "either"},
			{"discover without a URL is 400", "POST", "/keymanagers/discover", `{"name":"d"}`, nil, 400, "well_known_url"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := f.call(t, tc.method, tc.path, tc.body, tc.hdr)
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
					t.Fatalf("%d %s, want %d containing %q", resp.StatusCode, body, tc.status, tc.want)
				}
			})
		}
	})
	t.Run("GET one has an ETag; PUT with it replaces; a masked secret keeps the stored one", func(t *testing.T) {
		resp, body := f.call(t, "GET", "/keymanagers/acme/from-api", nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("ETag") != etag {
			t.Fatalf("%d etag %q want %q: %s", resp.StatusCode, resp.Header.Get("ETag"), etag, body)
		}
		def := kmDef("from-api", apiIdP)
		def["client_secret"] = "********"
		def["display_name"] = "renamed for humans"
		resp, body = f.call(t, "PUT", "/keymanagers/acme/from-api", def, map[string]string{"If-Match": etag})
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		stored, err := os.ReadFile(filepath.Join(f.storage, "keymanagers", "tenants", "acme", "from-api.json"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(stored), "api-secret-value") || !strings.Contains(string(stored), "renamed for humans") {
			t.Fatalf("stored definition lost the secret or the change: %s", stored)
		}
	})
	t.Run("refresh fetches now and status reports the JWKS", func(t *testing.T) {
		// The PUT above made a new runtime whose first fetch runs in the
		// background: refresh makes it happen now.
		resp, body := f.call(t, "POST", "/keymanagers/acme/from-api/refresh", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"api-1"`) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body = f.call(t, "GET", "/keymanagers/acme/from-api/status", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"api-1"`) || !strings.Contains(string(body), `"entries"`) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		f.call(t, "POST", "/keymanagers/acme/from-config/refresh", nil, nil)
		resp, body = f.call(t, "GET", "/keymanagers/acme/from-config/status", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"cfg-1"`) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("discover fills a definition from a well-known URL", func(t *testing.T) {
		resp, body := f.call(t, "POST", "/keymanagers/discover", map[string]any{"well_known_url": apiIdP.Issuer + "/.well-known/openid-configuration"}, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), apiIdP.Issuer) || !strings.Contains(string(body), "/jwks") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body = f.call(t, "POST", "/keymanagers/discover", map[string]any{"well_known_url": apiIdP.Srv.URL + "/nothing-here"}, nil)
		if resp.StatusCode != 502 || !strings.Contains(string(body), "404") {
			t.Fatalf("bad document: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("revoking a token refuses it at once, cached or not", func(t *testing.T) {
		tok := apiIdP.Mint(map[string]any{"sub": "to-revoke"})
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 200 {
			t.Fatalf("before: %d", status)
		}
		resp, body := f.call(t, "POST", "/keymanagers/revoke", map[string]any{"token": tok}, nil)
		if resp.StatusCode != 201 || strings.Contains(string(body), tok) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if status, body := f.gw(t, "/acme/x", tok, ""); status != 401 || !strings.Contains(body, "revoked") {
			t.Fatalf("after: %d %s", status, body)
		}
	})
	t.Run("revoking by issuer and jti", func(t *testing.T) {
		tok := apiIdP.Mint(map[string]any{"sub": "u", "jti": "jti-123"})
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 200 {
			t.Fatalf("before: %d", status)
		}
		resp, body := f.call(t, "POST", "/keymanagers/revoke", map[string]any{"issuer": apiIdP.Issuer, "jti": "jti-123"}, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 401 {
			t.Fatalf("after: %d", status)
		}
	})
	t.Run("a new tenant can be created through the API", func(t *testing.T) {
		other := newTestIdP(t, jwa.RS256, "o-1")
		resp, body := f.call(t, "POST", "/keymanagers/newco/", kmDef("newco-idp", other), nil)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if status, body := f.gw(t, "/dyn/x", other.Mint(map[string]any{"sub": "n"}), "newco"); status != 200 || body != "ok newco newco-idp" {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("parallel PUTs with one If-Match: exactly one wins", func(t *testing.T) {
		resp, _ := f.call(t, "GET", "/keymanagers/acme/from-api", nil, nil)
		cur := resp.Header.Get("ETag")
		const n = 8
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				def := kmDef("from-api", apiIdP)
				def["description"] = fmt.Sprintf("writer %d", i)
				r, _ := f.call(t, "PUT", "/keymanagers/acme/from-api", def, map[string]string{"If-Match": cur})
				codes[i] = r.StatusCode
			}(i)
		}
		wg.Wait()
		wins, lost := 0, 0
		for _, c := range codes {
			switch c {
			case 200:
				wins++
			case 412:
				lost++
			}
		}
		if wins != 1 || lost != n-1 {
			t.Fatalf("codes %v: want exactly one 200 and %d 412", codes, n-1)
		}
	})
	t.Run("applications: create, use, replace, delete", func(t *testing.T) {
		tok := f.cfgIdP.Mint(map[string]any{"sub": "batch-app", "azp": "batch-app", "scope": "orders:read"})
		if status, body := f.gw(t, "/sub/x", tok, ""); status != 403 || !strings.Contains(body, "900908") {
			t.Fatalf("before the application exists: %d %s", status, body)
		}
		app := map[string]any{"id": "batch", "key_manager": "from-config", "client_id": "batch-app",
			"scopes": []string{"reports:admin"}, "subscriptions": []string{"orders"}}
		resp, body := f.call(t, "POST", "/keymanagers/acme/applications/", app, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		etag := resp.Header.Get("ETag")
		if status, body := f.gw(t, "/sub/x", tok, ""); status != 200 || body != "ok orders:read reports:admin" {
			t.Fatalf("after: %d %q", status, body)
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
			hdr                map[string]string
			status             int
			want               string
		}{
			{"duplicate is 409", "POST", "/keymanagers/acme/applications/", app, nil, 409, "already exists"},
			{"missing client_id is 400", "POST", "/keymanagers/acme/applications/", map[string]any{"id": "x", "key_manager": "from-config"}, nil, 400, "client_id"},
			{"unknown key manager is 409", "POST", "/keymanagers/acme/applications/", map[string]any{"id": "y", "key_manager": "nope", "client_id": "c"}, nil, 409, "not visible"},
			{"stale If-Match is 412", "PUT", "/keymanagers/acme/applications/batch", app, map[string]string{"If-Match": `"stale"`}, 412, ""},
			{"unknown application is 404", "GET", "/keymanagers/acme/applications/nope", nil, nil, 404, ""},
			{"deleting a KM an application uses is 409", "DELETE", "/keymanagers/acme/from-api", nil, nil, 409, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "deleting a KM an application uses is 409" {
					app2 := map[string]any{"id": "uses-api", "key_manager": "from-api", "client_id": "c2"}
					if r, b := f.call(t, "POST", "/keymanagers/acme/applications/", app2, nil); r.StatusCode != 201 {
						t.Fatalf("%d %s", r.StatusCode, b)
					}
					defer f.call(t, "DELETE", "/keymanagers/acme/applications/uses-api", nil, nil)
				}
				resp, body := f.call(t, tc.method, tc.path, tc.body, tc.hdr)
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
					t.Fatalf("%d %s, want %d containing %q", resp.StatusCode, body, tc.status, tc.want)
				}
			})
		}
		app["subscriptions"] = []string{"billing"}
		resp, body = f.call(t, "PUT", "/keymanagers/acme/applications/batch", app, map[string]string{"If-Match": etag})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if status, _ := f.gw(t, "/sub/x", tok, ""); status != 403 {
			t.Fatalf("after unsubscribing: %d", status)
		}
		resp, body = f.call(t, "DELETE", "/keymanagers/acme/applications/batch", nil, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if resp, _ := f.call(t, "GET", "/keymanagers/acme/applications/batch", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("after delete: %d", resp.StatusCode)
		}
	})
	t.Run("placeholders in API-made definitions are not expanded", func(t *testing.T) {
		t.Setenv("KMGATE_ADMIN_PLACEHOLDER_TEST", "host-secret-value")
		var gotSecret atomic.Value
		intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pass, _ := r.BasicAuth()
			pass, _ = url.QueryUnescape(pass) // RFC 6749 2.3.1 form-encodes it
			gotSecret.Store(pass)
			_, _ = w.Write([]byte(`{"active":true,"client_id":"c","sub":"s"}`))
		}))
		defer intro.Close()
		def := map[string]any{"name": "intro", "issuer": "https://intro.test", "introspection_url": intro.URL,
			"client_id": "c", "client_secret": "{env.KMGATE_ADMIN_PLACEHOLDER_TEST}"}
		if resp, body := f.call(t, "POST", "/keymanagers/placeholders/", def, nil); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		defer f.call(t, "DELETE", "/keymanagers/placeholders/intro", nil, nil)
		if status, body := f.gw(t, "/dyn/x", "some-opaque-token", "placeholders"); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		if got, _ := gotSecret.Load().(string); got != "{env.KMGATE_ADMIN_PLACEHOLDER_TEST}" {
			t.Fatalf("the introspection endpoint received %q: an API definition's placeholder was expanded", got)
		}
	})
	t.Run("a placeholder shared_secret from the API is held to the 32-byte minimum", func(t *testing.T) {
		// Before: any secret with a '{' skipped the check, though API-made
		// definitions are never expanded ("{env.X}" is a 7-byte HMAC key).
		t.Setenv("KMGATE_ADMIN_HMAC_TEST", strings.Repeat("k", 48))
		def := map[string]any{"name": "hmac", "issuer": "https://hmac.test", "shared_secret": "{env.KMGATE_ADMIN_HMAC_TEST}"}
		resp, body := f.call(t, "POST", "/keymanagers/placeholders/", def, nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "shared_secret") {
			t.Fatalf("%d %s; want 400 naming shared_secret", resp.StatusCode, body)
		}
	})
	t.Run("a stored Key Manager that conflicts with the config is ignored and blocks nothing", func(t *testing.T) {
		// As if another instance (with another config) had stored it: the
		// same issuer as this instance's config Key Manager.
		dir := filepath.Join(f.storage, "keymanagers", "tenants", "acme")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		clash := fmt.Sprintf(`{"definition":{"name":"clash","issuer":%q,"jwks_url":%q},"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}`,
			f.cfgIdP.Issuer, f.cfgIdP.Srv.URL+"/jwks")
		if err := os.WriteFile(filepath.Join(dir, "clash.json"), []byte(clash), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(dir, "clash.json"))
		tok := f.cfgIdP.Mint(map[string]any{"sub": "later-revoked"})
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 200 {
			t.Fatal("config Key Manager token refused")
		}
		// A revocation stored by "another instance" must still arrive.
		rv := fmt.Sprintf(`{"token_hash":%q,"expires_at":%q}`, keymanagers.TokenHash(tok), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		rdir := filepath.Join(f.storage, "keymanagers", "revocations")
		_ = os.MkdirAll(rdir, 0o755)
		if err := os.WriteFile(filepath.Join(rdir, "t-other-instance.json"), []byte(rv), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, _ := f.gw(t, "/acme/x", tok, "")
			if status == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the revocation from storage was not applied (status %d)", status)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if status, body := f.gw(t, "/acme/x", f.cfgIdP.Mint(map[string]any{"sub": "other"}), ""); status != 200 || body != "ok from-config" {
			t.Fatalf("config Key Manager after the clash: %d %q", status, body)
		}
		if _, body := f.call(t, "GET", "/keymanagers/acme/", nil, nil); strings.Contains(string(body), `"clash"`) {
			t.Fatal("the conflicting stored Key Manager was loaded")
		}
	})
	t.Run("API Key Managers survive a config reload", func(t *testing.T) {
		f.tester.InitServer(f.cfg, "caddyfile")
		tok := apiIdP.Mint(map[string]any{"sub": "after-reload"})
		if status, body := f.gw(t, "/acme/x", tok, ""); status != 200 || body != "ok from-api" {
			t.Fatalf("%d %q", status, body)
		}
	})
	t.Run("DELETE refuses the Key Manager's tokens at once, cached ones included", func(t *testing.T) {
		tok := apiIdP.Mint(map[string]any{"sub": "cached"})
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 200 {
			t.Fatal("not accepted before delete")
		}
		resp, body := f.call(t, "DELETE", "/keymanagers/acme/from-api", nil, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if status, _ := f.gw(t, "/acme/x", tok, ""); status != 401 {
			t.Fatalf("after delete: %d", status)
		}
		if _, err := os.Stat(filepath.Join(f.storage, "keymanagers", "tenants", "acme", "from-api.json")); !os.IsNotExist(err) {
			t.Fatalf("still in storage: %v", err)
		}
	})
	t.Run("DELETE /keymanagers/cache purges results", func(t *testing.T) {
		resp, body := f.call(t, "DELETE", "/keymanagers/cache", nil, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}
