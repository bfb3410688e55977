//go:build unix

package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmgate/caddy-keymanager/internal/browsertest"
	"github.com/kmgate/caddy-keymanager/internal/testidp"
)

// portalBrowser is the browser-test harness of the portal: the gateway
// with the portal (adminFixture: Caddy on :9080, admin on :2999, routes
// /acme/* guarded by tenant acme, the portal under /portal/), a headless
// Chromium on it, and the screenshot directory. PORTAL_SCREENSHOTS=1
// writes the screenshots to docs/portal/ (committed); otherwise to a temp
// dir.
type portalBrowser struct {
	*browsertest.Browser
	gw *adminFixture
}

func startPortalBrowser(t *testing.T) *portalBrowser {
	t.Helper()
	p := &portalBrowser{gw: startAdminFixture(t)}
	p.Browser = browsertest.Start(t)
	if os.Getenv("PORTAL_SCREENSHOTS") == "1" {
		p.ScreenshotDir = filepath.Join(testidp.ModuleRoot(t), "docs", "portal")
	}
	t.Cleanup(p.CheckPageErrors)
	return p
}

// in returns the harness reporting to t (a subtest).
func (p *portalBrowser) in(t *testing.T) *portalBrowser {
	return &portalBrowser{Browser: p.With(t), gw: p.gw}
}

// goTo opens a portal screen by its hash route ("#/km/new") and waits for it.
func (p *portalBrowser) goTo(hash, waitSel string) {
	p.Open(portalBase + hash)
	p.WaitVisible(waitSel)
}

// definition reads a Key Manager through the admin API.
func (p *portalBrowser) definition(t *testing.T, tenant, name string) (int, map[string]any, string) {
	t.Helper()
	resp, body := p.gw.call(t, "GET", "/keymanagers/"+tenant+"/"+name, nil, nil)
	var v struct {
		Definition map[string]any `json:"definition"`
	}
	_ = json.Unmarshal(body, &v)
	return resp.StatusCode, v.Definition, resp.Header.Get("ETag")
}

// TestPortalInBrowserManagesAKeyManagerEndToEnd drives the portal in
// headless Chromium against a real oidc-provider and a real Hydra: the
// config's Key Managers are listed, a Key Manager is added with Import from
// the provider's well-known URL (after a field error for a bad value),
// edited (and a concurrent change is shown, not overwritten), its token
// passes the gateway, it is disabled and enabled, an application is created
// and edited; a Key Manager for Hydra with developer keys is added, an
// application registered there by DCR shows its secret once and gets a
// token the gateway accepts, and deleting it deletes the client at Hydra;
// a token is revoked, the cache purged, and the Key Manager is deleted
// after a confirmation, after which its tokens are refused.
func TestPortalInBrowserManagesAKeyManagerEndToEnd(t *testing.T) {
	p := startPortalBrowser(t)
	o := testidp.StartOIDCProvider(t)
	tokenOK := func(t *testing.T, want int, wantBody string) string {
		t.Helper()
		tok := o.Token(t, "read", testidp.OIDCResourceJWT)
		code, body := p.gw.gw(t, "/acme/orders", tok, "")
		if code != want || !strings.Contains(body, wantBody) {
			t.Fatalf("gateway answered %d %q, want %d %q", code, body, want, wantBody)
		}
		return tok
	}
	// Each step needs the ones before it: stop at the first failure.
	step := func(name string, fn func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("lists the Key Managers of the config", func(t *testing.T) {
		p := p.in(t)
		p.goTo("", `[data-testid="km-row-acme-from-config"]`)
		row := p.Text(`[data-testid="km-row-acme-from-config"]`)
		for _, want := range []string{"from-config", "custom", "config", "enabled"} {
			if !strings.Contains(row, want) {
				t.Errorf("the row %q lacks %q", row, want)
			}
		}
	})

	step("a bad value shows a field error next to the field", func(t *testing.T) {
		p := p.in(t)
		p.Click("#add-km")
		p.WaitVisible("#km-form")
		p.Fill("#km-tenant", "acme")
		p.Fill("#km-name", "oidc")
		// The connector picker shows each connector's own fields.
		p.Fill("#km-connector-type", "keycloak")
		p.WaitVisible("#km-connector-realm")
		p.WaitVisible("#km-connector-legacy_auth_path")
		p.Fill("#km-connector-type", "custom")
		p.WaitGone("#km-connector-realm")
		p.Fill("#km-well_known_url", o.WellKnownURL())
		p.Click("#km-import")
		p.WaitValue("#km-issuer", o.Issuer())
		p.WaitValue("#km-jwks_url", o.JWKSURL())
		p.Screenshot("add-key-manager")
		p.Fill("#km-allowed_algorithms", "none")
		p.Click("#km-save")
		p.WaitText(`[data-error-for="allowed_algorithms"]`, `"none" is never allowed`)
		p.Screenshot("field-error")
		if code, _, _ := p.definition(t, "acme", "oidc"); code != http.StatusNotFound {
			t.Fatalf("the refused Key Manager exists (%d)", code)
		}
	})

	step("the corrected form creates it", func(t *testing.T) {
		p := p.in(t)
		p.Fill("#km-allowed_algorithms", "ES256 RS256")
		p.Fill("#km-client_id", testidp.OIDCIntrospectClientID)
		p.Fill("#km-client_secret", testidp.OIDCIntrospectSecret)
		p.Click("#km-save")
		p.WaitText("h2", "Key Manager acme / oidc")
		p.WaitVisible("#km-status")
		code, def, _ := p.definition(t, "acme", "oidc")
		if code != http.StatusOK || def["issuer"] != o.Issuer() || def["well_known_url"] != o.WellKnownURL() {
			t.Fatalf("stored definition %d %v", code, def)
		}
		if v := p.Value("#km-client_secret"); v != "" {
			t.Fatalf("the secret was sent back to the browser: %q", v)
		}
	})

	step("its token passes the gateway", func(t *testing.T) {
		tokenOK(t, http.StatusOK, "ok oidc")
	})

	step("an edit is saved", func(t *testing.T) {
		p := p.in(t)
		p.Fill("#km-display_name", "oidc-provider (edited in the portal)")
		p.Click("#km-save")
		p.WaitText("#notice", "Saved oidc")
		_, def, _ := p.definition(t, "acme", "oidc")
		if def["display_name"] != "oidc-provider (edited in the portal)" || def["client_secret"] != "********" {
			t.Fatalf("after the edit: %v (want the new display name and the secret kept)", def)
		}
		tokenOK(t, http.StatusOK, "ok oidc")
		p.Click("#km-refresh")
		p.WaitText("#notice", "Keys of oidc refreshed")
		p.WaitFor("key ids", `document.querySelector('[data-testid="km-key-ids"]')?.textContent !== 'none'`)
		p.Screenshot("edit-key-manager")
	})

	step("a concurrent change is shown, not overwritten", func(t *testing.T) {
		p := p.in(t)
		_, def, etag := p.definition(t, "acme", "oidc")
		def["display_name"] = "changed by someone else"
		def["client_secret"] = testidp.OIDCIntrospectSecret
		if resp, body := p.gw.call(t, "PUT", "/keymanagers/acme/oidc", def, map[string]string{"If-Match": etag}); resp.StatusCode != http.StatusOK {
			t.Fatalf("concurrent PUT: %d %s", resp.StatusCode, body)
		}
		p.Fill("#km-display_name", "mine")
		p.Click("#km-save")
		p.WaitVisible("#km-conflict")
		p.Screenshot("conflict")
		_, def, _ = p.definition(t, "acme", "oidc")
		if def["display_name"] != "changed by someone else" {
			t.Fatalf("the concurrent change was overwritten: %v", def["display_name"])
		}
		p.Click("#km-reload")
		p.WaitValue("#km-display_name", "changed by someone else")
	})

	step("disable refuses its tokens, enable accepts them again", func(t *testing.T) {
		p := p.in(t)
		p.Click("#km-toggle")
		p.WaitText(`[data-testid="km-enabled-badge"]`, "disabled")
		tokenOK(t, http.StatusUnauthorized, "")
		p.Click("#km-toggle")
		p.WaitText(`[data-testid="km-enabled-badge"]`, "enabled")
		tokenOK(t, http.StatusOK, "ok oidc")
	})

	step("the list shows health and validations", func(t *testing.T) {
		p := p.in(t)
		p.goTo("", `[data-testid="km-row-acme-oidc"]`)
		p.WaitText(`[data-testid="km-row-acme-oidc"] [data-testid="km-validations"]`, "ok: ")
		health := p.Text(`[data-testid="km-row-acme-oidc"] [data-testid="km-health"]`)
		if !strings.Contains(health, "key") || !strings.Contains(health, "JWKS age") {
			t.Errorf("health %q lacks the keys and their age", health)
		}
		p.Screenshot("key-managers")
	})

	step("an application is created, edited and deleted", func(t *testing.T) {
		p := p.in(t)
		p.goTo("#/apps/acme", "#add-app")
		p.Click("#add-app")
		p.WaitVisible("#app-form")
		// "Register at the Key Manager" swaps the client id for the DCR fields.
		p.SetChecked("#app-register", true)
		p.WaitVisible("#app-client_name")
		p.WaitFor("client id disabled", `document.querySelector('#app-client_id').disabled`)
		p.SetChecked("#app-register", false)
		p.WaitFor("DCR fields hidden", `!document.querySelector('#app-client_name').checkVisibility()`)
		p.Fill("#app-id", "shop")
		p.Fill("#app-key_manager", "oidc")
		p.Fill("#app-client_id", testidp.OIDCClientID)
		p.Fill("#app-scopes", "read")
		p.Click("#app-save")
		p.WaitText("h2", "Application acme / shop")
		p.Fill("#app-subscriptions", "orders inventory")
		p.Fill("#app-deny_scopes", "write")
		p.Click("#app-save")
		p.WaitText("#notice", "Saved application shop")
		// The gateway did not register this client: no token to generate.
		p.Click("#app-token-generate")
		p.WaitVisible("#app-token-error")
		resp, body := p.gw.call(t, "GET", "/keymanagers/acme/applications/shop", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"inventory"`) || !strings.Contains(string(body), `"write"`) {
			t.Fatalf("stored application: %d %s", resp.StatusCode, body)
		}
		p.goTo("#/apps/acme", `[data-testid="app-row-shop"]`)
		p.Screenshot("applications")
		p.Click(`[data-testid="app-link-shop"]`)
		p.Click("#app-delete")
		p.WaitVisible("#confirm-dialog")
		p.Click("#confirm-yes")
		p.WaitVisible("#add-app")
		p.WaitGone(`[data-testid="app-row-shop"]`)
	})

	step("an application registered by DCR at Hydra gets a token the gateway accepts", func(t *testing.T) {
		p := p.in(t)
		hydra := testidp.StartHydraDCR(t)
		// A Key Manager for Hydra with developer keys: Import fills the
		// token endpoint; Hydra's discovery has no registration_endpoint,
		// so it is set by hand.
		p.goTo("", "#add-km")
		p.Click("#add-km")
		p.WaitVisible("#km-form")
		p.Fill("#km-tenant", "acme")
		p.Fill("#km-name", "hydra")
		p.Fill("#km-well_known_url", hydra.WellKnownURL())
		p.SetChecked("#km-enable_oauth_app_creation", true)
		p.SetChecked("#km-enable_token_generation", true)
		p.Click("#km-import")
		p.WaitValue("#km-issuer", hydra.Issuer())
		p.WaitValue("#km-token_url", hydra.TokenURL())
		p.Fill("#km-registration_endpoint", hydra.RegistrationURL())
		p.Click("#km-save")
		p.WaitText("h2", "Key Manager acme / hydra")
		if code, def, _ := p.definition(t, "acme", "hydra"); code != http.StatusOK || def["registration_endpoint"] != hydra.RegistrationURL() ||
			def["enable_oauth_app_creation"] != true || def["enable_token_generation"] != true {
			t.Fatalf("stored definition %d %v", code, def)
		}

		p.goTo("#/apps/acme", "#add-app")
		p.Click("#add-app")
		p.WaitVisible("#app-form")
		p.Fill("#app-id", "dev-keys")
		p.Fill("#app-key_manager", "hydra")
		p.SetChecked("#app-register", true)
		p.WaitVisible("#app-client_name")
		p.Fill("#app-client_name", "Shop (portal)")
		p.Fill("#app-grant_types", "client_credentials")
		p.Fill("#app-registration_scopes", "read write")
		p.Click("#app-save")
		p.WaitVisible("#app-secret")
		clientID, secret := p.Text("#app-client-id-once"), p.Text("#app-secret")
		if clientID == "" || len(secret) < 8 || secret == "********" {
			t.Fatalf("the created application shows client_id %q and secret %q", clientID, secret)
		}
		p.Screenshot("developer-keys-secret")
		// The secret was shown once: the application's own screen and
		// every later answer mask it.
		p.Click("#app-continue")
		p.WaitText("h2", "Application acme / dev-keys")
		p.WaitVisible("#app-token-generate")
		var page string
		p.Eval(`document.body.innerText`, &page)
		if strings.Contains(page, secret) {
			t.Fatal("the application's screen shows the client secret again")
		}
		resp, body := p.gw.call(t, "GET", "/keymanagers/acme/applications/dev-keys", nil, nil)
		var stored appAnswer
		_ = json.Unmarshal(body, &stored)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), secret) || !stored.Application.Registered || stored.Application.ClientID != clientID {
			t.Fatalf("stored application: %d %s", resp.StatusCode, body)
		}

		p.Fill("#app-token-scopes", "read")
		p.Click("#app-token-generate")
		p.WaitVisible("#app-access-token")
		tok := p.Text("#app-access-token")
		p.Screenshot("developer-keys-token")
		if code, body := p.gw.gw(t, "/acme/orders", tok, ""); code != http.StatusOK || body != "ok hydra" {
			t.Fatalf("the generated token: gateway answered %d %q, want 200 \"ok hydra\"", code, body)
		}

		// Delete removes the client at Hydra (RFC 7592): its secret is refused there.
		p.Click("#app-delete")
		p.WaitVisible("#confirm-dialog")
		p.Click("#confirm-yes")
		p.WaitVisible("#add-app")
		p.WaitGone(`[data-testid="app-row-dev-keys"]`)
		oldSecretRefused(t, hydra.TokenURL(), clientID, secret)
	})

	step("a revoked token is refused", func(t *testing.T) {
		p := p.in(t)
		tok := tokenOK(t, http.StatusOK, "ok oidc")
		p.goTo("#/revoke", "#revoke-token")
		p.Fill("#revoke-token", tok)
		p.Click("#revoke-submit")
		p.WaitText("#revoke-result", "token_hash")
		p.Screenshot("revoke")
		if code, _ := p.gw.gw(t, "/acme/orders", tok, ""); code != http.StatusUnauthorized {
			t.Fatalf("the revoked token got %d", code)
		}
	})

	step("purge the cache after a confirmation", func(t *testing.T) {
		p := p.in(t)
		p.goTo("", "#purge-cache")
		p.Click("#purge-cache")
		p.WaitVisible("#confirm-dialog")
		p.Click("#confirm-yes")
		p.WaitText("#notice", "Cache purged")
	})

	step("delete after a confirmation refuses its tokens", func(t *testing.T) {
		p := p.in(t)
		tok := tokenOK(t, http.StatusOK, "ok oidc")
		p.Click(`[data-testid="km-link-acme-oidc"]`)
		p.Click("#km-delete")
		p.WaitVisible("#confirm-dialog")
		p.Screenshot("delete-confirm")
		p.Click("#confirm-no")
		if code, _, _ := p.definition(t, "acme", "oidc"); code != http.StatusOK {
			t.Fatalf("cancel deleted it (%d)", code)
		}
		p.Click("#km-delete")
		p.Click("#confirm-yes")
		p.WaitVisible(`[data-testid="km-row-acme-from-config"]`)
		p.WaitGone(`[data-testid="km-row-acme-oidc"]`)
		if code, _, _ := p.definition(t, "acme", "oidc"); code != http.StatusNotFound {
			t.Fatalf("after delete: %d, want 404", code)
		}
		if code, _ := p.gw.gw(t, "/acme/orders", tok, ""); code != http.StatusUnauthorized {
			t.Fatalf("a token of the deleted Key Manager got %d", code)
		}
	})
}
