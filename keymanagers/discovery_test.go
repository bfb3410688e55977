package keymanagers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckMetadata_BindsTheIssuerAndRefusesDowngradedEndpoints(t *testing.T) {
	const oidc = "https://idp.example.test/realms/orders/.well-known/openid-configuration"
	const rfc8414 = "https://idp.example.test/.well-known/oauth-authorization-server/oauth2/default"
	md := func(issuer, jwks string) *Metadata { return &Metadata{Issuer: issuer, JWKSURI: jwks} }
	for _, tc := range []struct {
		name       string
		wellKnown  string
		md         *Metadata
		configured string
		insecure   bool
		wantErr    string // "" means accepted
	}{
		{"OIDC suffix form binds the issuer", oidc, md("https://idp.example.test/realms/orders", "https://idp.example.test/certs"), "", false, ""},
		{"a trailing slash on the issuer is the same issuer (Auth0)", "https://t.auth0.test/.well-known/openid-configuration", md("https://t.auth0.test/", "https://t.auth0.test/jwks"), "", false, ""},
		{"RFC 8414 insertion form binds the issuer", rfc8414, md("https://idp.example.test/oauth2/default", "https://idp.example.test/keys"), "", false, ""},
		{"OAuth suffix form binds the issuer (Okta custom server)", "https://dev.okta.test/oauth2/default/.well-known/oauth-authorization-server", md("https://dev.okta.test/oauth2/default", "https://dev.okta.test/oauth2/default/v1/keys"), "", false, ""},
		{"an issuer of another host is refused", oidc, md("https://evil.example.test/realms/orders", "https://idp.example.test/certs"), "", false, "not the issuer its URL"},
		{"an issuer of another path on the same host is refused", oidc, md("https://idp.example.test/realms/admin", "https://idp.example.test/certs"), "", false, "not the issuer its URL"},
		{"an issuer that only prefixes the derived one is refused", oidc, md("https://idp.example.test/realms", "https://idp.example.test/certs"), "", false, "not the issuer its URL"},
		{"a URL with a query binds no issuer", oidc + "?x=1", md("https://idp.example.test/realms/orders", "https://idp.example.test/certs"), "", false, "not the issuer its URL"},
		{"insecure_discovery accepts an unbound issuer", oidc, md("https://idp.example.test/realms/admin", "https://idp.example.test/certs"), "", true, ""},
		{"a configured issuer is the anchor even if unbound (WSO2 IS 5.x)", "https://is.example.test/oauth2/token/.well-known/openid-configuration", md("https://is.example.test:9443/oauth2/token", "https://is.example.test/oauth2/jwks"), "https://is.example.test:9443/oauth2/token", false, ""},
		{"a configured issuer must match exactly", oidc, md("https://idp.example.test/realms/orders", "https://idp.example.test/certs"), "https://idp.example.test/realms/other", false, "differs from the configured issuer"},
		{"insecure_discovery never waives the configured issuer", oidc, md("https://idp.example.test/realms/orders", "https://idp.example.test/certs"), "https://idp.example.test/realms/other", true, "differs from the configured issuer"},
		{"an http jwks_uri from an https document is refused", oidc, md("https://idp.example.test/realms/orders", "http://idp.example.test/certs"), "", false, "http:// jwks_uri"},
		{"an http introspection_endpoint from an https document is refused", oidc, &Metadata{Issuer: "https://idp.example.test/realms/orders", IntrospectionEndpoint: "http://idp.example.test/introspect"}, "", false, "http:// introspection_endpoint"},
		{"an http token_endpoint from an https document is refused", oidc, &Metadata{Issuer: "https://idp.example.test/realms/orders", JWKSURI: "https://idp.example.test/certs", TokenEndpoint: "http://idp.example.test/token"}, "", false, "http:// token_endpoint"},
		{"insecure_discovery accepts an http jwks_uri", oidc, md("https://idp.example.test/realms/orders", "http://idp.example.test/certs"), "", true, ""},
		{"an http document may name http endpoints", "http://127.0.0.1:8080/.well-known/openid-configuration", md("http://127.0.0.1:8080", "http://127.0.0.1:8080/jwks"), "", false, ""},
		{"a relative jwks_uri is refused", oidc, md("https://idp.example.test/realms/orders", "/certs"), "", false, "not an absolute http(s) URL"},
		{"a file jwks_uri is refused even when insecure", oidc, md("https://idp.example.test/realms/orders", "file:///etc/passwd"), "", true, "not an absolute http(s) URL"},
		{"a jwks_uri with credentials is refused", oidc, md("https://idp.example.test/realms/orders", "https://u:p@idp.example.test/certs"), "", false, "without credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMetadata(tc.wellKnown, tc.md, tc.configured, tc.insecure)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

// A discovery document that names an issuer of its choosing is refused
// before any key it points at is trusted, on the admin discover path too.
func TestDiscoverMetadata_RefusesADocumentClaimingAnotherIssuer(t *testing.T) {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": "http://" + r.Host + "/jwks"})
	}))
	defer srv.Close()
	def := Definition{Name: "d", WellKnownURL: srv.URL + "/realms/a/.well-known/openid-configuration"}

	issuer = srv.URL + "/realms/a"
	if _, err := DiscoverMetadata(context.Background(), def); err != nil {
		t.Fatalf("bound issuer refused: %v", err)
	}
	issuer = "https://login.other.test/realms/a"
	if _, err := DiscoverMetadata(context.Background(), def); err == nil || !strings.Contains(err.Error(), "not the issuer its URL") {
		t.Fatalf("foreign issuer: err = %v", err)
	}
	def.InsecureDiscovery = true
	if _, err := DiscoverMetadata(context.Background(), def); err != nil {
		t.Fatalf("insecure_discovery: %v", err)
	}
}

func TestRestoreMaskedSecrets_RefusesTheMaskWhenTrustIsLoosened(t *testing.T) {
	prev := Definition{Name: "k", Issuer: "https://idp.test", JWKSURL: "https://idp.test/jwks", ClientID: "c", ClientSecret: "s3cret",
		TLS: &TLSConfig{CAPEM: "pem-a"}}
	for _, tc := range []struct {
		name      string
		edit      func(*Definition)
		wantField string // "" means the mask is restored
	}{
		{"unchanged endpoints restore the secret", func(*Definition) {}, ""},
		{"turning insecure_discovery on", func(d *Definition) { d.InsecureDiscovery = true }, "insecure_discovery"},
		{"another CA", func(d *Definition) { d.TLS = &TLSConfig{CAPEM: "pem-b"} }, "tls"},
		{"dropping the tls block", func(d *Definition) { d.TLS = nil }, "tls"},
		{"skipping verification", func(d *Definition) { d.TLS = &TLSConfig{CAPEM: "pem-a", InsecureSkipVerify: true} }, "tls"},
		{"another jwks_url", func(d *Definition) { d.JWKSURL = "https://evil.test/jwks" }, "jwks_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := prev
			d.TLS = &TLSConfig{CAPEM: "pem-a"}
			d.ClientSecret = Mask
			tc.edit(&d)
			got, err := d.RestoreMaskedSecrets(prev)
			if tc.wantField == "" {
				if err != nil || got.ClientSecret != "s3cret" {
					t.Fatalf("err %v, secret restored = %v", err, got.ClientSecret == "s3cret")
				}
				return
			}
			var fe FieldErrors
			if !errors.As(err, &fe) || len(fe) == 0 || fe[0].Field != tc.wantField {
				t.Fatalf("err = %v, want a field error on %s", err, tc.wantField)
			}
		})
	}
}
