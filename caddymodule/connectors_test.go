package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

var connectorTypes = []string{"auth0", "azuread", "custom", "forgerock", "keycloak", "okta", "pingfederate", "wso2is", "wso2is7"}

// TestConnectorModulesRegistered: the nine built-in connector types are
// Caddy modules in the keymanagers.connectors namespace (so `caddy
// list-modules` shows them), each a keymanagers.Connector.
func TestConnectorModulesRegistered(t *testing.T) {
	var got []string
	for _, m := range caddy.GetModules("keymanagers.connectors") {
		got = append(got, m.ID.Name())
		if m.ID.Namespace() != "keymanagers.connectors" {
			t.Errorf("%s: namespace %q", m.ID, m.ID.Namespace())
		}
		mod := m.New()
		if _, ok := mod.(keymanagers.Connector); !ok {
			t.Errorf("%s: %T is not a keymanagers.Connector", m.ID, mod)
		}
		if mod.CaddyModule().ID != m.ID {
			t.Errorf("%s: New() returns a module with ID %s", m.ID, mod.CaddyModule().ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, connectorTypes) {
		t.Fatalf("registered connectors %v, want %v", got, connectorTypes)
	}
}

// adaptKM adapts a Caddyfile whose keymanagers option holds one tenant
// with the given Key Manager block body.
func adaptKM(body string) (map[string]any, error) {
	src := "{\n\tkeymanagers {\n\t\ttenant t {\n\t\t\tkey_manager km {\n" + body + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps struct {
			Keymanagers struct {
				Tenants map[string]struct {
					KeyManagers []map[string]any `json:"key_managers"`
				} `json:"tenants"`
			} `json:"keymanagers"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return nil, err
	}
	kms := cfg.Apps.Keymanagers.Tenants["t"].KeyManagers
	if len(kms) != 1 {
		return nil, fmt.Errorf("adapted config has %d key managers", len(kms))
	}
	return kms[0], nil
}

// TestConnectorCaddyfile: each connector's fields are plain subdirectives
// of the Key Manager block, land in the connector object, and are checked
// at parse time (unknown field, missing field) with file and line.
func TestConnectorCaddyfile(t *testing.T) {
	ok := []struct {
		name string
		body string
		want map[string]any
	}{
		{"wso2is", "type wso2is\nbase_url https://is.example.com:9443\ntenant acme.com\nclient_id admin\nclient_secret admin",
			map[string]any{"type": "wso2is", "base_url": "https://is.example.com:9443", "tenant": "acme.com"}},
		{"wso2is7", "type wso2is7\nbase_url https://is.example.com:9443\ntenant_qualified_urls\ntenant acme.com",
			map[string]any{"type": "wso2is7", "base_url": "https://is.example.com:9443", "tenant": "acme.com", "tenant_qualified_urls": true}},
		{"keycloak legacy flag alone", "type keycloak\nbase_url http://kc:8080\nrealm orders\nlegacy_auth_path",
			map[string]any{"type": "keycloak", "base_url": "http://kc:8080", "realm": "orders", "legacy_auth_path": true}},
		{"keycloak legacy flag false", "type keycloak\nbase_url http://kc:8080\nrealm orders\nlegacy_auth_path false",
			map[string]any{"type": "keycloak", "base_url": "http://kc:8080", "realm": "orders", "legacy_auth_path": "false"}},
		{"okta", "type okta\ndomain dev-1.okta.com\nauthorization_server aus1abc\naudience api://orders",
			map[string]any{"type": "okta", "domain": "dev-1.okta.com", "authorization_server": "aus1abc"}},
		{"okta org server", "type okta\ndomain dev-1.okta.com\nauthorization_server \"\"",
			map[string]any{"type": "okta", "domain": "dev-1.okta.com", "authorization_server": ""}},
		{"auth0", "type auth0\ndomain acme.eu.auth0.com\npermissions_as_scopes\naudience https://api.acme.test",
			map[string]any{"type": "auth0", "domain": "acme.eu.auth0.com", "permissions_as_scopes": true}},
		{"azuread", "type azuread\ntenant_id 72f988bf-86f1-41af-91ab-2d7cd011db47\ntoken_version v2\naudience api://orders",
			map[string]any{"type": "azuread", "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "token_version": "v2"}},
		{"pingfederate", "type pingfederate\nbase_url https://pf.example.com:9031\njwks_path /ext/oauth/jwks\nissuer https://pf.example.com:9031",
			map[string]any{"type": "pingfederate", "base_url": "https://pf.example.com:9031", "jwks_path": "/ext/oauth/jwks"}},
		{"forgerock", "type forgerock\nbase_url https://am.example.com/am\nrealm alpha",
			map[string]any{"type": "forgerock", "base_url": "https://am.example.com/am", "realm": "alpha"}},
		{"custom", "type custom\nissuer https://idp.example.com\njwks_url https://idp.example.com/jwks",
			map[string]any{"type": "custom"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			km, err := adaptKM(tc.body)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			got, _ := km["connector"].(map[string]any)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("connector = %v, want %v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name, body string
		has        []string
	}{
		{"unknown field named with its line", "type keycloak\nbase_url https://kc.example.com\nrealm r\nrelm r",
			[]string{"Caddyfile:8", `"relm"`}},
		{"missing realm", "type keycloak\nbase_url https://kc.example.com", []string{"realm: required"}},
		{"unknown type", "type oktaa\ndomain dev-1.okta.com", []string{`unknown connector type "oktaa"`, "okta"}},
		{"bad flag", "type keycloak\nbase_url https://kc.example.com\nrealm r\nlegacy_auth_path maybe", []string{"legacy_auth_path", "maybe"}},
		{"azure needs an audience", "type azuread\ntenant_id 72f988bf-86f1-41af-91ab-2d7cd011db47", []string{"audiences: set audience"}},
		{"azure tenant GUID", "type azuread\ntenant_id common\naudience api://x", []string{"tenant_id", "GUID"}},
		{"okta domain with path", "type okta\ndomain dev-1.okta.com/oauth2/default", []string{"domain", "not a host name"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptKM(tc.body)
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, h := range tc.has {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q does not mention %q", err, h)
				}
			}
		})
	}
}

// TestConnectorJSONLoad: the keymanagers app loads the connector guest
// module from a definition's JSON strictly and applies it (caddy.Validate
// provisions the app without starting it).
func TestConnectorJSONLoad(t *testing.T) {
	load := func(connector string, extra string) error {
		cfg := `{"admin":{"disabled":true},"apps":{"keymanagers":{"tenants":{"t":{"key_managers":[{"name":"km","connector":` + connector + extra + `}]}}}}}`
		var c caddy.Config
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&c)
	}
	if err := load(`{"type":"keycloak","base_url":"https://kc.example.com","realm":"r"}`, ""); err != nil {
		t.Fatalf("keycloak: %v", err)
	}
	if err := load(`{"type":"forgerock","base_url":"https://am.example.com/am","realm":"alpha"}`, `,"client_id":"gw","client_secret":"s"`); err != nil {
		t.Fatalf("forgerock with introspection: %v", err)
	}
	if err := load(`{"type":"okta","domain":"dev-1.okta.com","authorization_server":""}`, ""); err != nil {
		t.Fatalf("okta org server: %v", err)
	}
	err := load(`{"type":"keycloak","base_url":"https://kc.example.com","realm":"r","bogus":1}`, "")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("unknown field: %v", err)
	}
	err = load(`{"type":"auth0"}`, "")
	if err == nil || !strings.Contains(err.Error(), "domain: required") {
		t.Fatalf("auth0 without domain: %v", err)
	}
	err = load(`{"type":"nope"}`, "")
	if err == nil || !strings.Contains(err.Error(), "keymanagers.connectors.nope") {
		t.Fatalf("unknown type: %v", err)
	}
}

// TestConnectorDocsExamplesParse: every Key Manager example in
// docs/connectors.md is a valid Caddyfile block.
func TestConnectorDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/connectors.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(doc), "```caddyfile\n")[1:] {
		block = block[:strings.Index(block, "```")]
		lines := strings.Split(strings.TrimSpace(block), "\n")
		head := strings.Fields(lines[0])
		if len(head) != 3 || (head[0] != "key_manager" && head[0] != "global") || lines[len(lines)-1] != "}" {
			t.Fatalf("unexpected example in docs/connectors.md:\n%s", block)
		}
		t.Run(head[1], func(t *testing.T) {
			if _, err := adaptKM(strings.Join(lines[1:len(lines)-1], "\n")); err != nil {
				t.Fatalf("%v\n%s", err, block)
			}
		})
		n++
	}
	if n < 8 {
		t.Fatalf("found %d examples, want one per connector at least", n)
	}
}
