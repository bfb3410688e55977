package integration

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestAPIKeyManagerSurvivesRestart: a Key Manager (and its tenant) made
// through the admin API lives in Caddy's storage, so a new process on the
// same config and storage serves its tokens and lists it as source "api";
// a gateway revocation made before the restart still holds.
func TestAPIKeyManagerSurvivesRestart(t *testing.T) {
	cfg := gatewayConfig{ports: newPorts(t), storage: t.TempDir(), cfgIdP: newIdP(t, "cfg-1"), version: "v0"}
	kmIdP := newIdP(t, "k1")
	const tenant, name = "restart-co", "persisted"

	first := startCaddy(t, cfg.caddyfile())
	tok := kmIdP.mint("k1", "alice")
	first.expect(t, tok, tenant, 404, "") // the tenant does not exist yet
	first.mustAdmin(t, 201, "POST", "/keymanagers/"+tenant+"/", kmDef(name, kmIdP))
	first.expect(t, tok, tenant, 200, "ok "+name)
	revoked := kmIdP.mint("k1", "mallory")
	first.expect(t, revoked, tenant, 200, "ok "+name)
	first.mustAdmin(t, 201, "POST", "/keymanagers/revoke", map[string]any{"token": revoked})
	first.expect(t, revoked, tenant, 401, "")

	first.stop()
	select {
	case <-first.exited:
	default:
		t.Fatal("the first process is still running")
	}

	second := startCaddy(t, cfg.caddyfile())
	second.expect(t, tok, tenant, 200, "ok "+name)
	second.expect(t, kmIdP.mint("k1", "bob"), tenant, 200, "ok "+name)
	second.expect(t, revoked, tenant, 401, "") // the revocation is stored too

	list := parseList(t, second.mustAdmin(t, 200, "GET", "/keymanagers/", nil))
	found := false
	for _, v := range list {
		if v.Tenant == tenant && v.Name == name {
			found = true
			if v.Source != "api" {
				t.Fatalf("%s/%s listed with source %q, want api", tenant, name, v.Source)
			}
		}
	}
	if !found {
		t.Fatalf("%s/%s not listed after the restart: %+v", tenant, name, list)
	}
	second.mustAdmin(t, 200, "GET", "/keymanagers/"+tenant+"/"+name, nil)
}

// TestKeyManagerChangeTakesEffectWithoutReload: a PUT through the admin
// API changes how tokens are validated at once, cached results included,
// without a config reload.
func TestKeyManagerChangeTakesEffectWithoutReload(t *testing.T) {
	cfg := gatewayConfig{ports: newPorts(t), storage: t.TempDir(), cfgIdP: newIdP(t, "cfg-1"), version: "v0"}
	kmIdP := newIdP(t, "k1")
	p := startCaddy(t, cfg.caddyfile())

	p.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("live", kmIdP, "api://orders"))
	tok := kmIdP.mint("k1", "alice", "api://orders")
	p.expect(t, tok, "acme", 200, "ok live")
	p.expect(t, tok, "acme", 200, "ok live") // now a cached result

	configBefore := p.mustAdmin(t, 200, "GET", "/config/", nil)
	fetchesBefore := kmIdP.fetches.Load()

	start := time.Now()
	p.mustAdmin(t, 200, "PUT", "/keymanagers/acme/live", kmDef("live", kmIdP, "api://billing"))
	status, body, err := p.get("/api/x", tok, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if status != 401 || !strings.Contains(body, "900901") {
		t.Fatalf("the cached token after the audience change: %d %q, want 401 with code 900901", status, body)
	}
	t.Logf("audience change refused the cached token %v after the PUT was sent", time.Since(start).Round(time.Millisecond))

	// The new definition is the one in force (not merely a broken one).
	p.expect(t, kmIdP.mint("k1", "bob", "api://billing"), "acme", 200, "ok live")

	configAfter := p.mustAdmin(t, 200, "GET", "/config/", nil)
	if !bytes.Equal(configBefore, configAfter) {
		t.Fatalf("the Caddy config changed:\nbefore: %s\nafter:  %s", configBefore, configAfter)
	}
	t.Logf("JWKS fetches for the new definition: %d", kmIdP.fetches.Load()-fetchesBefore)
}
