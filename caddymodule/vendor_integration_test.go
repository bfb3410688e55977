package caddymodule_test

// Every built-in connector through a real in-process Caddy, against a
// fixture server with its vendor's URL layout, discovery documents, claim
// shapes and introspection (see vendor_fixture_test.go). Each Key Manager
// is configured with its connection fields only (testdata/vendors/<type>/
// key_manager.caddyfile); the connector derives the rest.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// vendorKM is one Key Manager of a test gateway.
type vendorKM struct {
	tenant, name, body string
}

// vendorGateway loads a Caddy config with the given Key Managers (grouped
// by tenant, in order) and a /who route that answers with the principal.
func vendorGateway(t *testing.T, kms []vendorKM) *caddytest.Tester {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
`)
	var tenants []string
	for _, km := range kms {
		if !slices.Contains(tenants, km.tenant) {
			tenants = append(tenants, km.tenant)
		}
	}
	for _, tn := range tenants {
		fmt.Fprintf(&b, "\t\ttenant %s {\n", tn)
		for _, km := range kms {
			if km.tenant != tn {
				continue
			}
			fmt.Fprintf(&b, "\t\t\tkey_manager %s {\n", km.name)
			for _, line := range strings.Split(strings.TrimSpace(km.body), "\n") {
				b.WriteString("\t\t\t\t" + line + "\n")
			}
			b.WriteString("\t\t\t}\n")
		}
		b.WriteString("\t\t}\n")
	}
	b.WriteString(`	}
}
http://localhost:9080 {
	route /who {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		respond "{keymanager.key_manager}|{keymanager.client_id}|{keymanager.scopes}"
	}
}
`)
	tester := caddytest.NewTester(t)
	tester.InitServer(b.String(), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// gatewayAnswer is what the gateway said to one request.
type gatewayAnswer struct {
	status      int
	body        string
	code        int
	description string
}

func (a gatewayAnswer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

func ask(t *testing.T, tester *caddytest.Tester, tenant, token string) gatewayAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://localhost:9080/who", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Tenant", tenant)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := gatewayAnswer{status: resp.StatusCode, body: string(body)}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(body, &e)
		a.code, a.description = e.Code, e.Description
	}
	return a
}

func wantOK(t *testing.T, a gatewayAnswer, body string) {
	t.Helper()
	if a.status != http.StatusOK || a.body != body {
		t.Fatalf("got %s, want 200 %s", a, body)
	}
}

func wantDenied(t *testing.T, a gatewayAnswer, code int, descriptionHas string) {
	t.Helper()
	if a.status != http.StatusUnauthorized || a.code != code || !strings.Contains(a.description, descriptionHas) {
		t.Fatalf("got %s, want 401 code %d with a description mentioning %q", a, code, descriptionHas)
	}
}

const (
	codeInvalid = 900901
	codeExpired = 900903
)

// contractCase is one connector in the contract table.
type contractCase struct {
	typ        string
	layout     vendorLayout
	client     string // introspection credentials the fixture requires
	secret     string
	typHeader  string
	token      string // valid token shape
	wantClient string
	wantScopes string
	// Introspection (vendors that have it).
	opaque            string // introspection answer shape; "" when none
	uuid              bool
	wantOpaqueClient  string
	wantOpaqueScopes  string
	wrongAudienceOver any
}

var contract = []contractCase{
	{typ: "wso2is", layout: wso2isLayout, client: "introspector", secret: "introspector-pass", typHeader: "at+jwt",
		token: "access_token.json", wantClient: "kGW6z8nYLQ2vRb1cXnM3pT0aHf4a", wantScopes: "orders:read orders:write",
		opaque: "introspection.json", uuid: true, wantOpaqueClient: "kGW6z8nYLQ2vRb1cXnM3pT0aHf4a", wantOpaqueScopes: "orders:read"},
	{typ: "wso2is7", layout: wso2is7Layout, client: "introspector", secret: "introspector-pass", typHeader: "at+jwt",
		token: "access_token.json", wantClient: "Qp4mT9xWbN2rLk7vHs1cYd8eFg3a", wantScopes: "orders:read orders:write",
		opaque: "introspection.json", uuid: true, wantOpaqueClient: "Qp4mT9xWbN2rLk7vHs1cYd8eFg3a", wantOpaqueScopes: "orders:read orders:write"},
	{typ: "keycloak", layout: keycloakLayout, client: "gateway", secret: "gateway-secret-1",
		token: "access_token.json", wantClient: "orders-web", wantScopes: "openid profile email orders:read",
		opaque: "introspection.json", wantOpaqueClient: "orders-web", wantOpaqueScopes: "openid orders:read orders:write"},
	{typ: "okta", layout: oktaLayout, client: "0oa9gateway8introspect7", secret: "okta-gateway-secret",
		token: "access_token.json", wantClient: "0oa1b2c3d4E5f6g7h8i9", wantScopes: "orders:read openid",
		opaque: "introspection.json", wantOpaqueClient: "0oa1b2c3d4E5f6g7h8i9", wantOpaqueScopes: "orders:read openid"},
	{typ: "auth0", layout: auth0Layout,
		token: "access_token.json", wantClient: "Zq8Xw7Vc6Bn5Mm4Ll3Kk2Jj1Hh0Gg9Ff", wantScopes: "read:orders write:orders"},
	{typ: "azuread", layout: azureLayout,
		token: "access_token_v2.json", wantClient: "b5c3e1a7-2d4f-4a6b-8c9d-0e1f2a3b4c5d", wantScopes: "Orders.Read Orders.Write"},
	{typ: "pingfederate", layout: pingFederateLayout, client: "rs-validator", secret: "rs-validator-secret",
		token: "access_token.json", wantClient: "orders-app", wantScopes: "orders:read orders:write",
		opaque: "introspection.json", wantOpaqueClient: "orders-app", wantOpaqueScopes: "orders:read orders:write"},
	{typ: "forgerock", layout: forgeRockLayout, client: "gateway-rs", secret: "gateway-rs-secret",
		token: "access_token.json", wantClient: "orders-app", wantScopes: "openid orders:read",
		opaque: "introspection.json", wantOpaqueClient: "orders-app", wantOpaqueScopes: "openid orders:read"},
}

// TestVendorContract runs the same contract against every connector: a
// valid token is accepted with the right client id and scopes, an expired
// one gets 900903, a wrong issuer or audience 900901, and an opaque token
// is introspected with the client authentication the vendor needs.
func TestVendorContract(t *testing.T) {
	pki := newTestPKI(t)
	servers := map[string]*vendorServer{}
	var kms []vendorKM
	for i, c := range contract {
		v := startVendor(t, pki, c.layout, i, c.client, c.secret)
		if c.typHeader != "" {
			v.typ = c.typHeader
		}
		servers[c.typ] = v
		kms = append(kms, vendorKM{tenant: c.typ, name: c.typ, body: v.keyManagerBlock(pki)})
	}
	tester := vendorGateway(t, kms)

	for _, c := range contract {
		v := servers[c.typ]
		t.Run(c.typ, func(t *testing.T) {
			t.Run("valid", func(t *testing.T) {
				wantOK(t, ask(t, tester, c.typ, v.mint(c.token, nil)), c.typ+"|"+c.wantClient+"|"+c.wantScopes)
			})
			t.Run("expired", func(t *testing.T) {
				past := time.Now().Add(-2 * time.Hour).Unix()
				tok := v.mint(c.token, map[string]any{"exp": past + 3600, "iat": past, "nbf": past, "auth_time": past})
				wantDenied(t, ask(t, tester, c.typ, tok), codeExpired, "expired")
			})
			t.Run("wrong issuer", func(t *testing.T) {
				tok := v.mint(c.token, map[string]any{"iss": "https://evil.example.test/"})
				wantDenied(t, ask(t, tester, c.typ, tok), codeInvalid, "issuer")
			})
			t.Run("wrong audience", func(t *testing.T) {
				tok := v.mint(c.token, map[string]any{"aud": "https://wrong.example.test"})
				wantDenied(t, ask(t, tester, c.typ, tok), codeInvalid, "audience")
			})
			t.Run("forged signature", func(t *testing.T) {
				claims := v.claims(c.token, nil)
				tok := v.sign(claims, fixtureRSAKey(t, keyAttacker), v.kid, nil)
				wantDenied(t, ask(t, tester, c.typ, tok), codeInvalid, "signature")
			})
			t.Run("introspection", func(t *testing.T) {
				if c.opaque == "" {
					// No introspection at this vendor: an opaque token is refused.
					a := ask(t, tester, c.typ, "opq.4f1b9e0c2d7a")
					if a.status != http.StatusUnauthorized || a.code != codeInvalid {
						t.Fatalf("opaque token at %s: %s, want 401 900901", c.typ, a)
					}
					return
				}
				tok := v.issueOpaque(c.opaque, nil, c.uuid)
				wantOK(t, ask(t, tester, c.typ, tok), c.typ+"|"+c.wantOpaqueClient+"|"+c.wantOpaqueScopes)
				calls := v.introspections()
				if len(calls) != 1 {
					t.Fatalf("%d introspection calls, want 1: %+v", len(calls), calls)
				}
				if got := calls[0]; got.auth != "basic:"+c.client || got.badCreds || got.token != tok || got.hint != "access_token" {
					t.Fatalf("introspection call %+v, want HTTP Basic as %s with the token and hint access_token", got, c.client)
				}
				// An unknown opaque token is inactive.
				wantDenied(t, ask(t, tester, c.typ, newOpaque(c.uuid)), codeInvalid, "not active")
			})
		})
	}
}

// TestVendorDiscoveryMatchesDerivation: what each connector derives from
// its connection fields is what the vendor's discovery document advertises
// (issuer, keys, introspection and token endpoints).
func TestVendorDiscoveryMatchesDerivation(t *testing.T) {
	pki := newTestPKI(t)
	for i, c := range contract {
		t.Run(c.typ, func(t *testing.T) {
			v := startVendor(t, pki, c.layout, i, c.client, c.secret)
			def := prepareBlock(t, v.keyManagerBlock(pki))
			for path, file := range c.layout.docs {
				var md struct {
					Issuer        string `json:"issuer"`
					JWKS          string `json:"jwks_uri"`
					Introspection string `json:"introspection_endpoint"`
					Token         string `json:"token_endpoint"`
				}
				resp, err := httpsClient(pki).Get(v.base + path)
				if err != nil {
					t.Fatal(err)
				}
				err = json.NewDecoder(resp.Body).Decode(&md)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
				}
				issuers := append([]string{def.Issuer}, def.AdditionalIssuers...)
				if !slices.Contains(issuers, md.Issuer) {
					t.Errorf("%s: issuer %q not among the derived %q", file, md.Issuer, issuers)
				}
				if md.Issuer != def.Issuer {
					continue // the v1 document of Azure AD: issuer checked above
				}
				if def.WellKnownURL != "" && def.WellKnownURL != v.base+path {
					t.Errorf("well_known_url %q, the vendor serves its document at %q", def.WellKnownURL, v.base+path)
				}
				if md.JWKS != def.JWKSURL {
					t.Errorf("jwks_url %q, %s advertises %q", def.JWKSURL, file, md.JWKS)
				}
				if md.Introspection != def.IntrospectionURL {
					t.Errorf("introspection_url %q, %s advertises %q", def.IntrospectionURL, file, md.Introspection)
				}
				if md.Token != "" && def.TokenURL != "" && md.Token != def.TokenURL {
					t.Errorf("token_url %q, %s advertises %q", def.TokenURL, file, md.Token)
				}
			}
		})
	}
}

// prepareBlock adapts a key_manager block and prepares its definition the
// way the keymanagers app does (connector module, strict decode, Prepare).
func prepareBlock(t *testing.T, body string) keymanagers.Definition {
	t.Helper()
	raw, err := adaptKM(body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(raw)
	var def keymanagers.Definition
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(def.Connector, &fields); err != nil {
		t.Fatal(err)
	}
	var typ string
	_ = json.Unmarshal(fields["type"], &typ)
	delete(fields, "type")
	info, err := caddy.GetModule("keymanagers.connectors." + typ)
	if err != nil {
		t.Fatal(err)
	}
	mod := info.New()
	fb, _ := json.Marshal(fields)
	if err := caddy.StrictUnmarshalJSON(fb, mod); err != nil {
		t.Fatal(err)
	}
	prepared, err := keymanagers.Prepare(def, mod.(keymanagers.Connector))
	if err != nil {
		t.Fatal(err)
	}
	return prepared
}

// TestVendorQuirkOkta: the client id is cid and the scopes the scp array;
// the default server's audience api://default is derived; tokens of the
// org authorization server are refused with a description that says why.
func TestVendorQuirkOkta(t *testing.T) {
	pki := newTestPKI(t)
	// One Okta org serves its custom "default" server and its org server,
	// each with its own keys.
	layout := vendorLayout{dir: "okta",
		docs: map[string]string{
			"/oauth2/default/.well-known/oauth-authorization-server": "oauth-authorization-server.json",
			"/.well-known/openid-configuration":                      "openid-configuration.json",
		},
		jwks: []string{"/oauth2/default/v1/keys"}}
	v := startVendor(t, pki, layout, 3, "", "")
	v.addKeySet("/oauth2/v1/keys", fixtureRSAKey(t, keyOther), "okta-org-key")
	tls := "tls {\n\tca_file " + pki.caFile + "\n}"
	tester := vendorGateway(t, []vendorKM{
		{"okta", "okta", "type okta\ndomain " + v.host() + "\n" + tls},
		{"okta-org", "okta-org", "type okta\ndomain " + v.host() + "\nauthorization_server \"\"\n" + tls},
	})

	wantOK(t, ask(t, tester, "okta", v.mint("access_token.json", nil)), "okta|0oa1b2c3d4E5f6g7h8i9|orders:read openid")
	// cid wins over a client_id claim; scp is read even as an array of one.
	wantOK(t, ask(t, tester, "okta", v.mint("access_token.json", map[string]any{"client_id": "not-this", "scp": []string{"orders:write"}})),
		"okta|0oa1b2c3d4E5f6g7h8i9|orders:write")
	// The derived audience of the default server.
	wantDenied(t, ask(t, tester, "okta", v.mint("access_token.json", map[string]any{"aud": "api://other"})), codeInvalid, "audience")

	org := v.sign(v.claims("org_access_token.json", nil), fixtureRSAKey(t, keyOther), "okta-org-key", nil)
	wantDenied(t, ask(t, tester, "okta-org", org), codeInvalid, "org authorization server")
	// The custom server's Key Manager does not know the org issuer.
	wantDenied(t, ask(t, tester, "okta", org), codeInvalid, "issuer")
}

// TestVendorQuirkAuth0: the issuer's trailing slash matters; permissions
// become scopes only when asked; an opaque token and a Management API
// token are refused with descriptions that say why.
func TestVendorQuirkAuth0(t *testing.T) {
	pki := newTestPKI(t)
	v := startVendor(t, pki, auth0Layout, 4, "", "")
	block := v.keyManagerBlock(pki)
	tester := vendorGateway(t, []vendorKM{
		{"auth0", "auth0", block},
		{"auth0-rbac", "auth0-rbac", block + "\npermissions_as_scopes"},
	})

	wantOK(t, ask(t, tester, "auth0", v.mint("access_token.json", nil)), "auth0|Zq8Xw7Vc6Bn5Mm4Ll3Kk2Jj1Hh0Gg9Ff|read:orders write:orders")
	noSlash := v.mint("access_token.json", map[string]any{"iss": v.origin})
	wantDenied(t, ask(t, tester, "auth0", noSlash), codeInvalid, "issuer")

	// A user token: aud is an array with /userinfo; permissions are not
	// scopes unless permissions_as_scopes is set.
	user := v.mint("user_access_token.json", nil)
	wantOK(t, ask(t, tester, "auth0", user), "auth0|Sp4Aa5Bb6Cc7Dd8Ee9Ff0Gg1Hh2Ii3Jj|openid profile read:orders")
	wantOK(t, ask(t, tester, "auth0-rbac", user), "auth0-rbac|Sp4Aa5Bb6Cc7Dd8Ee9Ff0Gg1Hh2Ii3Jj|openid profile read:orders delete:orders")
	// RFC 9068 profile: client_id instead of azp.
	rfc9068 := v.mint("access_token.json", map[string]any{"azp": nil, "client_id": "Rf9Cc0Ll1Ii2Ee3Nn4Tt5Ii6Dd7Xx8Yy"})
	wantOK(t, ask(t, tester, "auth0", rfc9068), "auth0|Rf9Cc0Ll1Ii2Ee3Nn4Tt5Ii6Dd7Xx8Yy|read:orders write:orders")

	wantDenied(t, ask(t, tester, "auth0", "m3yPq0aWx8bT1vJ5kN2r7sL4oZ9uC6eH"), codeInvalid, "no audience is requested")
	wantDenied(t, ask(t, tester, "auth0", v.mint("management_api_token.json", nil)), codeInvalid, "Management API")
}

// TestVendorQuirkAzureAD: one Key Manager accepts v1 and v2 tokens (client
// id from appid and azp), app permissions (roles) are scopes, Microsoft
// Graph tokens (nonce header) are refused saying their audience is Graph,
// and opaque tokens are refused with a reason; token_version v2 refuses v1
// tokens.
func TestVendorQuirkAzureAD(t *testing.T) {
	pki := newTestPKI(t)
	v := startVendor(t, pki, azureLayout, 5, "", "")
	block := v.keyManagerBlock(pki)
	tester := vendorGateway(t, []vendorKM{
		{"azure", "azure", block},
		{"azure-v2", "azure-v2", block + "\ntoken_version v2"},
	})
	// Entra ID headers carry x5t next to kid; the kid picks the key.
	x5t := map[string]any{"x5t": v.kid}

	v2 := v.sign(v.claims("access_token_v2.json", nil), v.key, v.kid, x5t)
	wantOK(t, ask(t, tester, "azure", v2), "azure|b5c3e1a7-2d4f-4a6b-8c9d-0e1f2a3b4c5d|Orders.Read Orders.Write")
	v1 := v.sign(v.claims("access_token_v1.json", nil), v.key, v.kid, x5t)
	wantOK(t, ask(t, tester, "azure", v1), "azure|d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a|Orders.Read")
	app := v.mint("app_token_v2.json", nil)
	wantOK(t, ask(t, tester, "azure", app), "azure|9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d|Orders.ReadWrite.All Reports.Read.All")

	graph := v.sign(v.claims("graph_token_v1.json", nil), v.key, v.kid, map[string]any{"nonce": "mS7Gh2Kd9Lp4Qx1Vz8Bn3Wc6Yt0Ra5Fe"})
	wantDenied(t, ask(t, tester, "azure", graph), codeInvalid, "audience is Microsoft Graph")
	wantDenied(t, ask(t, tester, "azure", "EwBwA8l6BAAUkj1oNj7mJ2d4e8f0a2b4c6d8e0f2"), codeInvalid, "no introspection endpoint")

	wantOK(t, ask(t, tester, "azure-v2", v2), "azure-v2|b5c3e1a7-2d4f-4a6b-8c9d-0e1f2a3b4c5d|Orders.Read Orders.Write")
	wantDenied(t, ask(t, tester, "azure-v2", v1), codeInvalid, "issuer")
}

// TestVendorQuirkKeycloak: the realm layout with the old /auth context
// path; the client is azp (aud lists other clients, or only "account").
func TestVendorQuirkKeycloak(t *testing.T) {
	pki := newTestPKI(t)
	legacy := keycloakLayout
	legacy.context = "/auth"
	v := startVendor(t, pki, legacy, 2, "", "")
	tester := vendorGateway(t, []vendorKM{
		{"kc", "kc-legacy", "type keycloak\nbase_url " + v.origin + "\nrealm orders\nlegacy_auth_path\naudience orders-api\ntls {\n\tca_file " + pki.caFile + "\n}"},
		{"kc-noaud", "kc-noaud", "type keycloak\nbase_url " + v.origin + "\nrealm orders\nlegacy_auth_path true\ntls {\n\tca_file " + pki.caFile + "\n}"},
	})
	if !strings.HasSuffix(v.base, "/auth") {
		t.Fatalf("fixture base %q", v.base)
	}
	wantOK(t, ask(t, tester, "kc", v.mint("access_token.json", nil)), "kc-legacy|orders-web|openid profile email orders:read")
	// Without /auth in the issuer the token is not this realm's.
	modern := v.mint("access_token.json", map[string]any{"iss": v.origin + "/realms/orders"})
	wantDenied(t, ask(t, tester, "kc", modern), codeInvalid, "issuer")
	// aud "account" only (the Audience Resolve mapper): not for this API.
	wantDenied(t, ask(t, tester, "kc", v.mint("access_token.json", map[string]any{"aud": "account"})), codeInvalid, "audience")
	// Without an audience configured, a token with no aud at all is
	// accepted, and the client is still azp.
	wantOK(t, ask(t, tester, "kc-noaud", v.mint("access_token.json", map[string]any{"aud": nil, "azp": "cli-tool"})), "kc-noaud|cli-tool|openid profile email orders:read")
}

// TestVendorQuirkWSO2OpaqueElection: the REFERENCE rule of the WSO2
// connectors elects WSO2 for UUID opaque tokens only, ahead of another Key
// Manager that would introspect anything.
func TestVendorQuirkWSO2OpaqueElection(t *testing.T) {
	pki := newTestPKI(t)
	is := startVendor(t, pki, wso2isLayout, 0, "introspector", "introspector-pass")
	kc := startVendor(t, pki, keycloakLayout, 2, "gateway", "gateway-secret-1")
	tester := vendorGateway(t, []vendorKM{
		{"mixed", "is", is.keyManagerBlock(pki)},
		{"mixed", "kc", kc.keyManagerBlock(pki)},
		{"is-only", "is-only", is.keyManagerBlock(pki)},
	})

	uuid := is.issueOpaque("introspection.json", nil, true)
	wantOK(t, ask(t, tester, "mixed", uuid), "is|kGW6z8nYLQ2vRb1cXnM3pT0aHf4a|orders:read")
	other := kc.issueOpaque("introspection.json", nil, false)
	wantOK(t, ask(t, tester, "mixed", other), "kc|orders-web|openid orders:read orders:write")
	if calls := is.introspections(); len(calls) != 1 || calls[0].token != uuid {
		t.Fatalf("WSO2 introspected %+v, want only the UUID token", calls)
	}
	if calls := kc.introspections(); len(calls) != 1 || calls[0].token != other {
		t.Fatalf("Keycloak introspected %+v, want only the non-UUID token", calls)
	}
	// Alone, WSO2 does not claim a non-UUID opaque token at all.
	a := ask(t, tester, "is-only", newOpaque(false))
	if a.status != http.StatusUnauthorized || a.code != codeInvalid {
		t.Fatalf("non-UUID opaque token: %s, want 401 900901", a)
	}
	if n := len(is.introspections()); n != 1 {
		t.Fatalf("WSO2 got %d introspection calls, want still 1", n)
	}
}

// TestVendorQuirkRefreshTokensRefused: WSO2 IS 7 (introspection answering
// token_type Refresh, and JWT refresh tokens of its non-persistent token
// mode) and ForgeRock (tokenName refresh_token) refresh tokens are not
// access tokens.
func TestVendorQuirkRefreshTokensRefused(t *testing.T) {
	pki := newTestPKI(t)
	is := startVendor(t, pki, wso2is7Layout, 1, "introspector", "introspector-pass")
	is.typ = "at+jwt"
	fr := startVendor(t, pki, forgeRockLayout, 7, "", "")
	tlsBlock := "tls {\n\tca_file " + pki.caFile + "\n}"
	tester := vendorGateway(t, []vendorKM{
		// No audience: the refusal must come from the connector, not from
		// an audience mismatch (WSO2 refresh JWTs carry no aud).
		{"is7", "is7", "type wso2is7\nbase_url " + is.base + "\nclient_id introspector\nclient_secret introspector-pass\n" + tlsBlock},
		{"am", "am", "type forgerock\nbase_url " + fr.base + "\nrealm alpha\n" + tlsBlock},
	})

	wantOK(t, ask(t, tester, "is7", is.mint("access_token.json", nil)), "is7|Qp4mT9xWbN2rLk7vHs1cYd8eFg3a|orders:read orders:write")
	wantDenied(t, ask(t, tester, "is7", is.mint("refresh_token_jwt.json", nil)), codeInvalid, "refresh token")
	wantOK(t, ask(t, tester, "is7", is.issueOpaque("introspection.json", nil, true)), "is7|Qp4mT9xWbN2rLk7vHs1cYd8eFg3a|orders:read orders:write")
	wantDenied(t, ask(t, tester, "is7", is.issueOpaque("introspection_refresh.json", nil, true)), codeInvalid, "refresh token")

	wantOK(t, ask(t, tester, "am", fr.mint("access_token.json", nil)), "am|orders-app|openid orders:read")
	wantDenied(t, ask(t, tester, "am", fr.mint("refresh_token.json", nil)), codeInvalid, "refresh token")
	wantDenied(t, ask(t, tester, "am", fr.mint("access_token.json", map[string]any{"tokenName": "id_token"})), codeInvalid, "not an access token")
}

// TestVendorQuirkForgeRockClientID: the client is client_id (AM 7 /
// Identity Cloud), else the first aud (older AM names it only there).
func TestVendorQuirkForgeRockClientID(t *testing.T) {
	pki := newTestPKI(t)
	fr := startVendor(t, pki, forgeRockLayout, 7, "", "")
	tester := vendorGateway(t, []vendorKM{
		{"am", "am", "type forgerock\nbase_url " + fr.base + "\nrealm /alpha\ntls {\n\tca_file " + pki.caFile + "\n}"},
	})
	wantOK(t, ask(t, tester, "am", fr.mint("access_token.json", map[string]any{"aud": "other-client"})), "am|orders-app|openid orders:read")
	wantOK(t, ask(t, tester, "am", fr.mint("access_token_am6.json", nil)), "am|legacy-app|orders:write orders:read")
	wantOK(t, ask(t, tester, "am", fr.mint("access_token_am6.json", map[string]any{"aud": "solo-app"})), "am|solo-app|orders:write orders:read")
}

// TestVendorQuirkPingFederateJWKSPath: an access token manager with its own
// keys publishes them under /ext/{JWKS Endpoint Path}; jwks_path points the
// Key Manager there, and only there. Scopes may be an array or, with "Space
// Delimit Scope Values", a string.
func TestVendorQuirkPingFederateJWKSPath(t *testing.T) {
	pki := newTestPKI(t)
	pf := startVendor(t, pki, pingFederateLayout, 6, "", "")
	pf.addKeySet("/ext/oauth/jwks", fixtureRSAKey(t, keyOther), "atm-jwt-1")
	tlsBlock := "tls {\n\tca_file " + pki.caFile + "\n}"
	tester := vendorGateway(t, []vendorKM{
		{"atm", "atm", "type pingfederate\nbase_url " + pf.base + "\njwks_path /oauth/jwks\naudience https://api.orders.test\n" + tlsBlock},
		{"central", "central", "type pingfederate\nbase_url " + pf.base + "\naudience https://api.orders.test\n" + tlsBlock},
	})
	atmTok := pf.sign(pf.claims("access_token.json", nil), fixtureRSAKey(t, keyOther), "atm-jwt-1", nil)
	centralTok := pf.mint("access_token.json", nil)

	wantOK(t, ask(t, tester, "atm", atmTok), "atm|orders-app|orders:read orders:write")
	wantDenied(t, ask(t, tester, "atm", centralTok), codeInvalid, "key")
	wantOK(t, ask(t, tester, "central", centralTok), "central|orders-app|orders:read orders:write")
	wantDenied(t, ask(t, tester, "central", atmTok), codeInvalid, "key")

	spaced := pf.sign(pf.claims("access_token.json", map[string]any{"scope": "orders:read orders:write"}), fixtureRSAKey(t, keyOther), "atm-jwt-1", nil)
	wantOK(t, ask(t, tester, "atm", spaced), "atm|orders-app|orders:read orders:write")
}
