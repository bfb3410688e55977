package connectors

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

func strp(s string) *string { return &s }

func boolp(b bool) *Bool { v := Bool(b); return &v }

// want is the part of a definition a Derive case checks; nil slices and
// empty strings must be empty in the result too.
type want struct {
	issuer            string
	additionalIssuers []string
	wellKnown         string
	jwks              string
	introspection     string
	tokenURL          string
	consumerKey       string
	scopes            string
	validation        string
	audiences         []string
	rules             []keymanagers.TokenHandlingRule
}

func (w want) check(t *testing.T, def keymanagers.Definition) {
	t.Helper()
	eq := func(field, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	eq("issuer", def.Issuer, w.issuer)
	eq("well_known_url", def.WellKnownURL, w.wellKnown)
	eq("jwks_url", def.JWKSURL, w.jwks)
	eq("introspection_url", def.IntrospectionURL, w.introspection)
	eq("token_url", def.TokenURL, w.tokenURL)
	eq("token_validation", def.TokenValidation, w.validation)
	var ck, sc string
	if def.Claims != nil {
		ck, sc = def.Claims.ConsumerKey, def.Claims.Scopes
	}
	eq("claims.consumer_key", ck, w.consumerKey)
	eq("claims.scopes", sc, w.scopes)
	if !reflect.DeepEqual(def.AdditionalIssuers, w.additionalIssuers) {
		t.Errorf("additional_issuers = %q, want %q", def.AdditionalIssuers, w.additionalIssuers)
	}
	if !reflect.DeepEqual(def.Audiences, w.audiences) {
		t.Errorf("audiences = %q, want %q", def.Audiences, w.audiences)
	}
	if !reflect.DeepEqual(def.TokenHandling, w.rules) {
		t.Errorf("token_handling = %+v, want %+v", def.TokenHandling, w.rules)
	}
}

var uuidRule = []keymanagers.TokenHandlingRule{{Type: "reference", Pattern: WSO2UUIDPattern}}

const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// TestDerive: connection fields in, derived endpoints and claim mapping
// out; every derived value then passes the package's validation.
func TestDerive(t *testing.T) {
	withClient := keymanagers.Definition{ClientID: "gw", ClientSecret: "s3cret"}
	withAud := func(a ...string) keymanagers.Definition { return keymanagers.Definition{Audiences: a} }
	cases := []struct {
		name string
		conn keymanagers.Connector
		def  keymanagers.Definition
		want want
	}{
		{"wso2is/super-tenant", &WSO2IS{BaseURL: "https://is.example.com:9443/"}, withClient, want{
			issuer:        "https://is.example.com:9443/oauth2/token",
			wellKnown:     "https://is.example.com:9443/oauth2/token/.well-known/openid-configuration",
			jwks:          "https://is.example.com:9443/oauth2/jwks",
			introspection: "https://is.example.com:9443/oauth2/introspect",
			tokenURL:      "https://is.example.com:9443/oauth2/token",
			consumerKey:   "azp", scopes: "scope", rules: uuidRule,
		}},
		{"wso2is/tenant-shares-issuer", &WSO2IS{BaseURL: "https://is.example.com:9443", Tenant: "acme.com"}, keymanagers.Definition{}, want{
			issuer:    "https://is.example.com:9443/oauth2/token",
			wellKnown: "https://is.example.com:9443/t/acme.com/oauth2/token/.well-known/openid-configuration",
			jwks:      "https://is.example.com:9443/t/acme.com/oauth2/jwks",
			tokenURL:  "https://is.example.com:9443/t/acme.com/oauth2/token",
			// no client_id: no introspection endpoint
			consumerKey: "azp", scopes: "scope", rules: uuidRule,
		}},
		{"wso2is/tenant-qualified", &WSO2IS{BaseURL: "https://api.asgardeo.io", Tenant: "acme", TenantQualifiedURLs: true}, withClient, want{
			issuer:        "https://api.asgardeo.io/t/acme/oauth2/token",
			wellKnown:     "https://api.asgardeo.io/t/acme/oauth2/token/.well-known/openid-configuration",
			jwks:          "https://api.asgardeo.io/t/acme/oauth2/jwks",
			introspection: "https://api.asgardeo.io/t/acme/oauth2/introspect",
			tokenURL:      "https://api.asgardeo.io/t/acme/oauth2/token",
			consumerKey:   "azp", scopes: "scope", rules: uuidRule,
		}},
		{"wso2is7", &WSO2IS7{WSO2IS{BaseURL: "https://is7.example.com"}}, withClient, want{
			issuer:        "https://is7.example.com/oauth2/token",
			wellKnown:     "https://is7.example.com/oauth2/token/.well-known/openid-configuration",
			jwks:          "https://is7.example.com/oauth2/jwks",
			introspection: "https://is7.example.com/oauth2/introspect",
			tokenURL:      "https://is7.example.com/oauth2/token",
			consumerKey:   "azp", scopes: "scope", rules: uuidRule,
		}},
		{"keycloak", &Keycloak{BaseURL: "https://sso.example.com", Realm: "orders"}, withClient, want{
			issuer:        "https://sso.example.com/realms/orders",
			wellKnown:     "https://sso.example.com/realms/orders/.well-known/openid-configuration",
			jwks:          "https://sso.example.com/realms/orders/protocol/openid-connect/certs",
			introspection: "https://sso.example.com/realms/orders/protocol/openid-connect/token/introspect",
			tokenURL:      "https://sso.example.com/realms/orders/protocol/openid-connect/token",
			consumerKey:   "azp", scopes: "scope",
		}},
		{"keycloak/legacy-auth-path", &Keycloak{BaseURL: "http://kc:8080", Realm: "my realm", LegacyAuthPath: true}, keymanagers.Definition{}, want{
			issuer:      "http://kc:8080/auth/realms/my%20realm",
			wellKnown:   "http://kc:8080/auth/realms/my%20realm/.well-known/openid-configuration",
			jwks:        "http://kc:8080/auth/realms/my%20realm/protocol/openid-connect/certs",
			tokenURL:    "http://kc:8080/auth/realms/my%20realm/protocol/openid-connect/token",
			consumerKey: "azp", scopes: "scope",
		}},
		{"okta/default-server", &Okta{Domain: "dev-1.okta.com"}, withClient, want{
			issuer:        "https://dev-1.okta.com/oauth2/default",
			wellKnown:     "https://dev-1.okta.com/oauth2/default/.well-known/oauth-authorization-server",
			jwks:          "https://dev-1.okta.com/oauth2/default/v1/keys",
			introspection: "https://dev-1.okta.com/oauth2/default/v1/introspect",
			tokenURL:      "https://dev-1.okta.com/oauth2/default/v1/token",
			consumerKey:   "cid", scopes: "scp", audiences: []string{"api://default"},
		}},
		{"okta/custom-server", &Okta{Domain: "https://login.example.com/", AuthorizationServer: strp("aus1abc")}, keymanagers.Definition{Audiences: []string{"api://orders"}}, want{
			issuer:      "https://login.example.com/oauth2/aus1abc",
			wellKnown:   "https://login.example.com/oauth2/aus1abc/.well-known/oauth-authorization-server",
			jwks:        "https://login.example.com/oauth2/aus1abc/v1/keys",
			tokenURL:    "https://login.example.com/oauth2/aus1abc/v1/token",
			consumerKey: "cid", scopes: "scp", audiences: []string{"api://orders"},
		}},
		{"okta/org-server", &Okta{Domain: "dev-1.okta.com", AuthorizationServer: strp("")}, withClient, want{
			issuer:        "https://dev-1.okta.com",
			wellKnown:     "https://dev-1.okta.com/.well-known/openid-configuration",
			jwks:          "https://dev-1.okta.com/oauth2/v1/keys",
			introspection: "https://dev-1.okta.com/oauth2/v1/introspect",
			tokenURL:      "https://dev-1.okta.com/oauth2/v1/token",
			consumerKey:   "cid", scopes: "scp",
		}},
		{"auth0", &Auth0{Domain: "acme.eu.auth0.com"}, withAud("https://api.acme.test"), want{
			issuer:      "https://acme.eu.auth0.com/",
			wellKnown:   "https://acme.eu.auth0.com/.well-known/openid-configuration",
			jwks:        "https://acme.eu.auth0.com/.well-known/jwks.json",
			tokenURL:    "https://acme.eu.auth0.com/oauth/token",
			consumerKey: "azp", scopes: "scope", validation: "jwt", audiences: []string{"https://api.acme.test"},
		}},
		{"azuread/both", &AzureAD{TenantID: strings.ToUpper(tid)}, withAud("api://orders"), want{
			issuer:            "https://login.microsoftonline.com/" + tid + "/v2.0",
			additionalIssuers: []string{"https://sts.windows.net/" + tid + "/"},
			wellKnown:         "https://login.microsoftonline.com/" + tid + "/v2.0/.well-known/openid-configuration",
			jwks:              "https://login.microsoftonline.com/" + tid + "/discovery/v2.0/keys",
			consumerKey:       "azp", scopes: "scp", validation: "jwt", audiences: []string{"api://orders"},
		}},
		{"azuread/v2-national-cloud", &AzureAD{TenantID: tid, TokenVersion: "v2", BaseURL: "https://login.microsoftonline.us"}, withAud("api://orders"), want{
			issuer:      "https://login.microsoftonline.us/" + tid + "/v2.0",
			wellKnown:   "https://login.microsoftonline.us/" + tid + "/v2.0/.well-known/openid-configuration",
			jwks:        "https://login.microsoftonline.us/" + tid + "/discovery/v2.0/keys",
			consumerKey: "azp", scopes: "scp", validation: "jwt", audiences: []string{"api://orders"},
		}},
		{"azuread/v1", &AzureAD{TenantID: tid, TokenVersion: "v1"}, withAud("api://orders"), want{
			issuer:      "https://sts.windows.net/" + tid + "/",
			wellKnown:   "https://login.microsoftonline.com/" + tid + "/.well-known/openid-configuration",
			jwks:        "https://login.microsoftonline.com/" + tid + "/discovery/keys",
			consumerKey: "azp", scopes: "scp", validation: "jwt", audiences: []string{"api://orders"},
		}},
		{"pingfederate/central-keys", &PingFederate{BaseURL: "https://pf.example.com:9031"}, withClient, want{
			issuer:        "https://pf.example.com:9031",
			wellKnown:     "https://pf.example.com:9031/.well-known/openid-configuration",
			jwks:          "https://pf.example.com:9031/pf/JWKS",
			introspection: "https://pf.example.com:9031/as/introspect.oauth2",
			tokenURL:      "https://pf.example.com:9031/as/token.oauth2",
			consumerKey:   "client_id", scopes: "scope",
		}},
		{"pingfederate/atm-jwks-path", &PingFederate{BaseURL: "https://pf.example.com:9031", JWKSPath: "/oauth/jwks"}, keymanagers.Definition{}, want{
			issuer:      "https://pf.example.com:9031",
			wellKnown:   "https://pf.example.com:9031/.well-known/openid-configuration",
			jwks:        "https://pf.example.com:9031/ext/oauth/jwks",
			tokenURL:    "https://pf.example.com:9031/as/token.oauth2",
			consumerKey: "client_id", scopes: "scope",
		}},
		{"pingfederate/ext-path-kept", &PingFederate{BaseURL: "https://pf.example.com", JWKSPath: "/ext/atm2/jwks"}, keymanagers.Definition{}, want{
			issuer:      "https://pf.example.com",
			wellKnown:   "https://pf.example.com/.well-known/openid-configuration",
			jwks:        "https://pf.example.com/ext/atm2/jwks",
			tokenURL:    "https://pf.example.com/as/token.oauth2",
			consumerKey: "client_id", scopes: "scope",
		}},
		{"forgerock/root", &ForgeRock{BaseURL: "https://am.example.com/am"}, withClient, want{
			issuer:        "https://am.example.com/am/oauth2",
			wellKnown:     "https://am.example.com/am/oauth2/.well-known/openid-configuration",
			jwks:          "https://am.example.com/am/oauth2/connect/jwk_uri",
			introspection: "https://am.example.com/am/oauth2/introspect",
			tokenURL:      "https://am.example.com/am/oauth2/access_token",
			consumerKey:   "client_id", scopes: "scope",
		}},
		{"forgerock/subrealm", &ForgeRock{BaseURL: "https://am.example.com/am", Realm: "/alpha"}, keymanagers.Definition{}, want{
			issuer:      "https://am.example.com/am/oauth2/realms/root/realms/alpha",
			wellKnown:   "https://am.example.com/am/oauth2/realms/root/realms/alpha/.well-known/openid-configuration",
			jwks:        "https://am.example.com/am/oauth2/realms/root/realms/alpha/connect/jwk_uri",
			tokenURL:    "https://am.example.com/am/oauth2/realms/root/realms/alpha/access_token",
			consumerKey: "client_id", scopes: "scope",
		}},
		{"forgerock/nested-realm", &ForgeRock{BaseURL: "https://am.example.com/am", Realm: "parent/child"}, keymanagers.Definition{}, want{
			issuer:      "https://am.example.com/am/oauth2/realms/root/realms/parent/realms/child",
			wellKnown:   "https://am.example.com/am/oauth2/realms/root/realms/parent/realms/child/.well-known/openid-configuration",
			jwks:        "https://am.example.com/am/oauth2/realms/root/realms/parent/realms/child/connect/jwk_uri",
			tokenURL:    "https://am.example.com/am/oauth2/realms/root/realms/parent/realms/child/access_token",
			consumerKey: "client_id", scopes: "scope",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			def := tc.def
			def.Name = "km"
			if err := tc.conn.Derive(&def); err != nil {
				t.Fatalf("Derive: %v", err)
			}
			tc.want.check(t, def)
			// The derived definition is a valid one.
			pd := tc.def
			pd.Name = "km"
			if _, err := keymanagers.Prepare(pd, tc.conn); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
		})
	}
}

// TestDeriveKeepsOverrides: every value the user set survives Derive.
func TestDeriveKeepsOverrides(t *testing.T) {
	user := keymanagers.Definition{
		Name:              "km",
		Issuer:            "https://issuer.example.com:443/custom",
		AdditionalIssuers: []string{"https://other.example.com/"},
		WellKnownURL:      "https://meta.example.com/.well-known/openid-configuration",
		JWKSURL:           "https://keys.example.com/jwks",
		IntrospectionURL:  "https://intro.example.com/introspect",
		TokenURL:          "https://token.example.com/token",
		ClientID:          "gw",
		ClientSecret:      "s",
		TokenValidation:   keymanagers.ValidationAuto,
		Audiences:         []string{"api://mine"},
		Claims:            &keymanagers.ClaimMapping{Subject: "uid", ConsumerKey: "my_client", Scopes: "my_scopes"},
		TokenHandling:     []keymanagers.TokenHandlingRule{{Type: "reference", Pattern: "^ref-"}},
	}
	conns := map[string]keymanagers.Connector{
		"wso2is":       &WSO2IS{BaseURL: "https://is.example.com"},
		"wso2is7":      &WSO2IS7{WSO2IS{BaseURL: "https://is.example.com"}},
		"keycloak":     &Keycloak{BaseURL: "https://kc.example.com", Realm: "r"},
		"okta":         &Okta{Domain: "dev-1.okta.com"},
		"okta-org":     &Okta{Domain: "dev-1.okta.com", AuthorizationServer: strp("")},
		"auth0":        &Auth0{Domain: "acme.auth0.com"},
		"azuread":      &AzureAD{TenantID: tid},
		"pingfederate": &PingFederate{BaseURL: "https://pf.example.com", JWKSPath: "/oauth/jwks"},
		"forgerock":    &ForgeRock{BaseURL: "https://am.example.com/am", Realm: "alpha"},
	}
	for name, conn := range conns {
		t.Run(name, func(t *testing.T) {
			def := user
			def.AdditionalIssuers = append([]string(nil), user.AdditionalIssuers...)
			claims := *user.Claims
			def.Claims = &claims
			if err := conn.Derive(&def); err != nil {
				t.Fatalf("Derive: %v", err)
			}
			if !reflect.DeepEqual(def, func() keymanagers.Definition { d := user; d.Claims = &claims; return d }()) {
				t.Fatalf("Derive changed user values:\n got %+v\nwant %+v", def, user)
			}
			if *user.Claims != claims {
				t.Fatalf("Derive wrote through the caller's claims: %+v", *user.Claims)
			}
		})
	}

	// A partial claims block keeps the user's part and gets the rest.
	def := keymanagers.Definition{Name: "km", Claims: &keymanagers.ClaimMapping{Scopes: "roles"}}
	orig := def.Claims
	if err := (&Okta{Domain: "dev-1.okta.com"}).Derive(&def); err != nil {
		t.Fatal(err)
	}
	if def.Claims.Scopes != "roles" || def.Claims.ConsumerKey != "cid" {
		t.Fatalf("claims = %+v, want scopes roles (user) and consumer_key cid (derived)", *def.Claims)
	}
	if orig.ConsumerKey != "" {
		t.Fatal("Derive wrote through the caller's claims pointer")
	}

	// A user-set issuer suppresses the derived discovery URL (a discovery
	// document must name the configured issuer).
	def = keymanagers.Definition{Name: "km", Issuer: "https://kc.example.com:443/realms/r"}
	if err := (&Keycloak{BaseURL: "https://kc.example.com", Realm: "r"}).Derive(&def); err != nil {
		t.Fatal(err)
	}
	if def.WellKnownURL != "" || def.JWKSURL != "https://kc.example.com/realms/r/protocol/openid-connect/certs" {
		t.Fatalf("with a user issuer: well_known_url %q (want none), jwks_url %q", def.WellKnownURL, def.JWKSURL)
	}

	// A pinned certificate replaces the derived JWKS.
	def = keymanagers.Definition{Name: "km", CertificatePEM: "pinned"}
	if err := (&Keycloak{BaseURL: "https://kc.example.com", Realm: "r"}).Derive(&def); err != nil {
		t.Fatal(err)
	}
	if def.JWKSURL != "" {
		t.Fatalf("jwks_url %q derived next to a pinned certificate", def.JWKSURL)
	}

	// introspection_auth none derives the endpoint without client_id.
	def = keymanagers.Definition{Name: "km", IntrospectionAuth: keymanagers.AuthNone}
	if err := (&ForgeRock{BaseURL: "https://am.example.com/am"}).Derive(&def); err != nil {
		t.Fatal(err)
	}
	if def.IntrospectionURL != "https://am.example.com/am/oauth2/introspect" {
		t.Fatalf("introspection_url = %q", def.IntrospectionURL)
	}

	// Azure: a user issuer equal to the v1 issuer is not repeated in
	// additional_issuers.
	def = keymanagers.Definition{Name: "km", Issuer: "https://sts.windows.net/" + tid + "/", Audiences: []string{"x"}}
	if _, err := keymanagers.Prepare(def, &AzureAD{TenantID: tid}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
}

// TestDeriveErrors: a missing or malformed connection field is refused by
// name, and Prepare reports it as a connector field error.
func TestDeriveErrors(t *testing.T) {
	cases := []struct {
		name  string
		conn  keymanagers.Connector
		def   keymanagers.Definition
		field string // the message starts with "field:"
		has   string
	}{
		{"wso2is/no-base", &WSO2IS{}, keymanagers.Definition{}, "base_url", "required"},
		{"wso2is/bad-base", &WSO2IS{BaseURL: "is.example.com:9443"}, keymanagers.Definition{}, "base_url", "not an absolute"},
		{"wso2is/base-query", &WSO2IS{BaseURL: "https://is.example.com/?x=1"}, keymanagers.Definition{}, "base_url", "query"},
		{"wso2is/base-credentials", &WSO2IS{BaseURL: "https://u:p@is.example.com"}, keymanagers.Definition{}, "base_url", "credentials"},
		{"wso2is/bad-tenant", &WSO2IS{BaseURL: "https://is.example.com", Tenant: "a/b"}, keymanagers.Definition{}, "tenant", "not a valid name"},
		{"wso2is/qualified-without-tenant", &WSO2IS{BaseURL: "https://is.example.com", TenantQualifiedURLs: true}, keymanagers.Definition{}, "tenant_qualified_urls", "needs tenant"},
		{"wso2is7/no-base", &WSO2IS7{}, keymanagers.Definition{}, "base_url", "required"},
		{"keycloak/no-base", &Keycloak{Realm: "r"}, keymanagers.Definition{}, "base_url", "required"},
		{"keycloak/no-realm", &Keycloak{BaseURL: "https://kc.example.com"}, keymanagers.Definition{}, "realm", "required"},
		{"keycloak/realm-slash", &Keycloak{BaseURL: "https://kc.example.com", Realm: "a/b"}, keymanagers.Definition{}, "realm", "not a valid name"},
		{"okta/no-domain", &Okta{}, keymanagers.Definition{}, "domain", "required"},
		{"okta/domain-path", &Okta{Domain: "dev-1.okta.com/oauth2"}, keymanagers.Definition{}, "domain", "not a host name"},
		{"okta/domain-http", &Okta{Domain: "http://dev-1.okta.com"}, keymanagers.Definition{}, "domain", "not a host name"},
		{"okta/bad-server", &Okta{Domain: "dev-1.okta.com", AuthorizationServer: strp("a/b")}, keymanagers.Definition{}, "authorization_server", "not a valid name"},
		{"auth0/no-domain", &Auth0{}, keymanagers.Definition{}, "domain", "required"},
		{"azuread/no-tenant", &AzureAD{}, keymanagers.Definition{Audiences: []string{"x"}}, "tenant_id", "required"},
		{"azuread/common", &AzureAD{TenantID: "common"}, keymanagers.Definition{Audiences: []string{"x"}}, "tenant_id", "GUID"},
		{"azuread/no-audience", &AzureAD{TenantID: tid}, keymanagers.Definition{}, "audiences", "audience"},
		{"azuread/bad-version", &AzureAD{TenantID: tid, TokenVersion: "3"}, keymanagers.Definition{Audiences: []string{"x"}}, "token_version", "v1, v2, both"},
		{"azuread/bad-base", &AzureAD{TenantID: tid, BaseURL: "login.microsoftonline.us"}, keymanagers.Definition{Audiences: []string{"x"}}, "base_url", "not an absolute"},
		{"pingfederate/no-base", &PingFederate{}, keymanagers.Definition{}, "base_url", "required"},
		{"pingfederate/relative-jwks-path", &PingFederate{BaseURL: "https://pf.example.com", JWKSPath: "oauth/jwks"}, keymanagers.Definition{}, "jwks_path", "absolute URL path"},
		{"forgerock/no-base", &ForgeRock{}, keymanagers.Definition{}, "base_url", "required"},
		{"forgerock/bad-realm", &ForgeRock{BaseURL: "https://am.example.com/am", Realm: "a//b"}, keymanagers.Definition{}, "realm", "not a realm path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			def := tc.def
			def.Name = "km"
			err := tc.conn.Derive(&def)
			if err == nil {
				t.Fatal("Derive accepted it")
			}
			if !strings.HasPrefix(err.Error(), tc.field+":") || !strings.Contains(err.Error(), tc.has) {
				t.Fatalf("error %q, want it to start with %q and mention %q", err, tc.field+":", tc.has)
			}
			def = tc.def
			def.Name = "km"
			_, err = keymanagers.Prepare(def, tc.conn)
			var fe keymanagers.FieldErrors
			if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != "connector" || !strings.HasPrefix(fe[0].Message, tc.field+":") {
				t.Fatalf("Prepare error %v, want one connector field error naming %s", err, tc.field)
			}
		})
	}
}

func TestBoolReadsJSONAndCaddyfileForms(t *testing.T) {
	for in, want := range map[string]bool{`true`: true, `false`: false, `"true"`: true, `"false"`: false, `"1"`: true, `"0"`: false} {
		var b Bool
		if err := json.Unmarshal([]byte(in), &b); err != nil || bool(b) != want {
			t.Errorf("%s: got %v, %v; want %v", in, b, err, want)
		}
	}
	for _, in := range []string{`"yes please"`, `1`, `null`, `["true"]`} {
		var b Bool
		if in == "null" {
			continue // JSON null leaves the zero value, as for any bool
		}
		if err := json.Unmarshal([]byte(in), &b); err == nil {
			t.Errorf("%s accepted as %v", in, b)
		}
	}
	var k Keycloak
	if err := json.Unmarshal([]byte(`{"base_url":"https://kc","realm":"r","legacy_auth_path":"true"}`), &k); err != nil || !bool(k.LegacyAuthPath) {
		t.Fatalf("legacy_auth_path string form: %v %v", k.LegacyAuthPath, err)
	}
}

func claimsOf(t *testing.T, v map[string]any) keymanagers.Claims {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var c keymanagers.Claims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func kindOf(err error) keymanagers.Kind { return keymanagers.Classify(err).Kind }

func TestOktaOrgServerTokensRefused(t *testing.T) {
	org := &Okta{Domain: "dev-1.okta.com", AuthorizationServer: strp("")}
	err := org.CheckHeader(keymanagers.TokenHeader{Alg: "RS256"}, claimsOf(t, map[string]any{"iss": "https://dev-1.okta.com"}))
	if err == nil || kindOf(err) != keymanagers.KindInvalid || !strings.Contains(err.Error(), "org authorization server") {
		t.Fatalf("org server token: %v", err)
	}
	custom := &Okta{Domain: "dev-1.okta.com"}
	if err := custom.CheckHeader(keymanagers.TokenHeader{Alg: "RS256"}, claimsOf(t, map[string]any{"iss": "https://dev-1.okta.com/oauth2/default"})); err != nil {
		t.Fatalf("custom server token refused: %v", err)
	}
}

func TestAuth0Quirks(t *testing.T) {
	c := &Auth0{Domain: "login.acme.test"}
	def := keymanagers.Definition{Name: "km", Audiences: []string{"https://api.acme.test"}}
	if err := c.Derive(&def); err != nil {
		t.Fatal(err)
	}
	h := keymanagers.TokenHeader{Alg: "RS256"}
	for _, aud := range []any{
		"https://login.acme.test/api/v2/",
		[]string{"https://login.acme.test/api/v2/", "https://login.acme.test/userinfo"},
		"https://acme.eu.auth0.com/api/v2/", // custom domain tenant: canonical Management API
	} {
		err := c.CheckHeader(h, claimsOf(t, map[string]any{"aud": aud}))
		if err == nil || kindOf(err) != keymanagers.KindInvalid || !strings.Contains(err.Error(), "Management API") {
			t.Errorf("aud %v: %v, want the Management API refusal", aud, err)
		}
	}
	for _, aud := range []any{"https://api.acme.test", []string{"https://api.acme.test", "https://login.acme.test/userinfo"}, "https://api.acme.test/api/v2/"} {
		if err := c.CheckHeader(h, claimsOf(t, map[string]any{"aud": aud})); err != nil {
			t.Errorf("aud %v refused: %v", aud, err)
		}
	}
	// The Management API configured as an audience: accepted.
	m := &Auth0{Domain: "login.acme.test"}
	def = keymanagers.Definition{Name: "km", Audiences: []string{"https://login.acme.test/api/v2/"}}
	if err := m.Derive(&def); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckHeader(h, claimsOf(t, map[string]any{"aud": "https://login.acme.test/api/v2/"})); err != nil {
		t.Fatalf("configured Management API audience refused: %v", err)
	}

	err := c.RefuseOpaque()
	if kindOf(err) != keymanagers.KindInvalid || !strings.Contains(err.Error(), "no audience is requested") || !strings.Contains(err.Error(), "introspection") {
		t.Fatalf("RefuseOpaque: %v", err)
	}

	claims := claimsOf(t, map[string]any{"scope": "read:orders", "permissions": []string{"read:orders", "write:orders", "bad scope", ""}})
	p := keymanagers.PrincipalFields{Scopes: []string{"read:orders"}}
	c.MapPrincipal(claims, &p)
	if !reflect.DeepEqual(p.Scopes, []string{"read:orders"}) {
		t.Fatalf("permissions used as scopes by default: %v", p.Scopes)
	}
	c.PermissionsAsScopes = true
	c.MapPrincipal(claims, &p)
	if !reflect.DeepEqual(p.Scopes, []string{"read:orders", "write:orders"}) {
		t.Fatalf("scopes with permissions_as_scopes = %v", p.Scopes)
	}
}

func TestAzureADQuirks(t *testing.T) {
	c := &AzureAD{TenantID: tid}
	err := c.CheckHeader(keymanagers.TokenHeader{Alg: "RS256", HasNonce: true}, nil)
	if err == nil || kindOf(err) != keymanagers.KindInvalid || !strings.Contains(err.Error(), "audience is Microsoft Graph") {
		t.Fatalf("nonce header: %v", err)
	}
	if err := c.CheckHeader(keymanagers.TokenHeader{Alg: "RS256"}, nil); err != nil {
		t.Fatalf("ordinary header refused: %v", err)
	}
	if err := c.RefuseOpaque(); kindOf(err) != keymanagers.KindInvalid || !strings.Contains(err.Error(), "no introspection") {
		t.Fatalf("RefuseOpaque: %v", err)
	}

	// v1: the client is appid (the domain found no azp nor client_id).
	v1 := claimsOf(t, map[string]any{"ver": "1.0", "appid": "app-v1", "scp": "user.read", "roles": []string{"Orders.Read"}})
	p := keymanagers.PrincipalFields{Scopes: []string{"user.read"}}
	c.MapPrincipal(v1, &p)
	if p.ClientID != "app-v1" || !reflect.DeepEqual(p.Scopes, []string{"user.read", "Orders.Read"}) {
		t.Fatalf("v1 principal = %+v", p)
	}
	// v2: azp already read by the domain stays.
	v2 := claimsOf(t, map[string]any{"ver": "2.0", "azp": "app-v2", "appid": "ignored", "roles": []string{"Orders.Write"}})
	p = keymanagers.PrincipalFields{ClientID: "app-v2"}
	c.MapPrincipal(v2, &p)
	if p.ClientID != "app-v2" || !reflect.DeepEqual(p.Scopes, []string{"Orders.Write"}) {
		t.Fatalf("v2 principal = %+v", p)
	}
	// roles_as_scopes false.
	c.RolesAsScopes = boolp(false)
	p = keymanagers.PrincipalFields{ClientID: "app-v2"}
	c.MapPrincipal(v2, &p)
	if len(p.Scopes) != 0 {
		t.Fatalf("roles used as scopes with roles_as_scopes false: %v", p.Scopes)
	}
}

func TestRefreshTokensRefused(t *testing.T) {
	wso2 := []keymanagers.ClaimsChecker{&WSO2IS{}, &WSO2IS7{}}
	for _, c := range wso2 {
		err := c.CheckClaims(claimsOf(t, map[string]any{"token_type": "refresh_token", "azp": "app"}))
		if !errors.Is(err, keymanagers.ErrRefreshToken) {
			t.Errorf("%T: JWT refresh token: %v", c, err)
		}
		if err := c.CheckClaims(claimsOf(t, map[string]any{"azp": "app", "scope": "a"})); err != nil {
			t.Errorf("%T: access token refused: %v", c, err)
		}
	}
	fr := &ForgeRock{}
	for _, tc := range []struct {
		claims map[string]any
		want   error // nil: accepted
		other  bool  // refused, not as a refresh token
	}{
		{map[string]any{"tokenName": "access_token", "token_type": "Bearer"}, nil, false},
		{map[string]any{"sub": "u"}, nil, false}, // no tokenName (not AM-issued shape): accepted
		{map[string]any{"tokenName": "refresh_token", "token_type": "Bearer"}, keymanagers.ErrRefreshToken, false},
		{map[string]any{"token_type": "refresh_token"}, keymanagers.ErrRefreshToken, false},
		{map[string]any{"tokenName": "id_token"}, nil, true},
	} {
		err := fr.CheckClaims(claimsOf(t, tc.claims))
		switch {
		case tc.other:
			if err == nil || errors.Is(err, keymanagers.ErrRefreshToken) || kindOf(err) != keymanagers.KindInvalid {
				t.Errorf("%v: %v, want a not-an-access-token refusal", tc.claims, err)
			}
		case tc.want == nil && err != nil:
			t.Errorf("%v refused: %v", tc.claims, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%v: %v, want %v", tc.claims, err, tc.want)
		}
	}
}

func TestForgeRockClientFromAudience(t *testing.T) {
	fr := &ForgeRock{}
	p := keymanagers.PrincipalFields{}
	fr.MapPrincipal(claimsOf(t, map[string]any{"aud": []string{"orders-app", "api.example.com"}}), &p)
	if p.ClientID != "orders-app" {
		t.Fatalf("client id = %q, want the first aud", p.ClientID)
	}
	p = keymanagers.PrincipalFields{}
	fr.MapPrincipal(claimsOf(t, map[string]any{"aud": "single-app"}), &p)
	if p.ClientID != "single-app" {
		t.Fatalf("client id = %q, want aud", p.ClientID)
	}
	p = keymanagers.PrincipalFields{ClientID: "from-client-id"}
	fr.MapPrincipal(claimsOf(t, map[string]any{"aud": "other"}), &p)
	if p.ClientID != "from-client-id" {
		t.Fatalf("client id = %q, client_id must win over aud", p.ClientID)
	}
}

func TestWSO2UUIDRule(t *testing.T) {
	def := keymanagers.Definition{Name: "km", ClientID: "admin", ClientSecret: "admin"}
	if err := (&WSO2IS{BaseURL: "https://is.example.com"}).Derive(&def); err != nil {
		t.Fatal(err)
	}
	if len(def.TokenHandling) != 1 {
		t.Fatalf("token_handling = %+v", def.TokenHandling)
	}
	re := def.TokenHandling[0].Pattern
	for tok, want := range map[string]bool{
		"c8a1b3f2-6d2e-4f1a-9b7c-0e5d4c3b2a19":  true,
		"C8A1B3F2-6D2E-4F1A-9B7C-0E5D4C3B2A19":  true,
		"c8a1b3f2-6d2e-7f1a-9b7c-0e5d4c3b2a19":  false, // version 7 is not issued by WSO2
		"c8a1b3f2-6d2e-4f1a-cb7c-0e5d4c3b2a19":  false, // not the RFC 4122 variant
		"ory_at_abc":                            false,
		"c8a1b3f2-6d2e-4f1a-9b7c-0e5d4c3b2a19x": false,
	} {
		if got := mustMatch(t, re, tok); got != want {
			t.Errorf("%s: matched %v, want %v", tok, got, want)
		}
	}
}

func mustMatch(t *testing.T, pattern, s string) bool {
	t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return re.MatchString(s)
}
