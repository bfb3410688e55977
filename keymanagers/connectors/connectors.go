// Package connectors holds the built-in vendor connectors: one type per
// authorization server (WSO2 Identity Server 5.x/6.x and 7, Keycloak, Okta,
// Auth0, Microsoft Entra ID / Azure AD, PingFederate, ForgeRock / PingAM).
//
// Each type implements keymanagers.Connector: Derive turns the vendor's
// connection fields (base_url, realm, domain, tenant_id, ...) into the Key
// Manager's issuer, endpoints, claim mapping and defaults, filling only the
// fields the user left empty and doing no I/O. Types also implement the
// quirk interfaces of package keymanagers (HeaderChecker, ClaimsChecker,
// PrincipalMapper, OpaqueRefuser) where the vendor needs them.
//
// The vendor facts encoded here, with their sources, are listed in
// docs/connectors.md. The Caddy glue (one guest module per type in the
// keymanagers.connectors namespace) lives in package caddymodule; this
// package has no Caddy imports.
//
// Connection fields are plain JSON strings, booleans and string lists with
// snake_case names, so that the Caddyfile can set them one per line. Derive
// may record a derived setting on its receiver (for a check at request
// time), so a connector value belongs to one definition and Derive is called
// on it before the Key Manager starts serving.
package connectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	scopepkg "github.com/kmgate/caddy-keymanager/scopes"
)

// Bool is a connection flag. It reads a JSON boolean or a string such as
// "true" or "false" (the Caddyfile gives `legacy_auth_path` alone as true
// and `legacy_auth_path false` as a string).
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bool) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			// encoding/json names the field in an UnmarshalTypeError.
			return &json.UnmarshalTypeError{Value: fmt.Sprintf("string %q", s), Type: reflect.TypeFor[bool]()}
		}
		*b = Bool(v)
		return nil
	}
	var v bool
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = Bool(v)
	return nil
}

// baseURL checks a server origin (plus any context path): an absolute
// http(s) URL without credentials, query or fragment. It returns it without
// a trailing slash.
func baseURL(field, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("%s: required (the server's URL, for example https://idp.example.com)", field)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s: %q is not an absolute http(s) URL", field, v)
	}
	if u.User != nil {
		return "", fmt.Errorf("%s: must not carry credentials", field)
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(v, "?#") {
		return "", fmt.Errorf("%s: %q must not have a query or a fragment", field, v)
	}
	return strings.TrimRight(v, "/"), nil
}

// hostPort checks a host name with an optional port (a vendor domain such
// as dev-123.okta.com). An https:// prefix and a trailing slash are
// tolerated; any other scheme or a path is refused.
func hostPort(field, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("%s: required (a host name such as dev-123.example.com)", field)
	}
	h := strings.TrimSuffix(strings.TrimPrefix(v, "https://"), "/")
	if h == "" || strings.ContainsAny(h, "/?#@ \t") || strings.Contains(h, "://") {
		return "", fmt.Errorf("%s: %q is not a host name (give it without scheme or path, for example dev-123.example.com)", field, v)
	}
	u, err := url.Parse("https://" + h)
	if err != nil || u.Host != h || u.Hostname() == "" {
		return "", fmt.Errorf("%s: %q is not a host name", field, v)
	}
	return h, nil
}

// pathSegment checks a value that becomes one URL path segment (a realm or
// a tenant name) and returns it escaped.
func pathSegment(field, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("%s: required", field)
	}
	if strings.TrimSpace(v) != v || strings.ContainsAny(v, "/?#") || v == "." || v == ".." {
		return "", fmt.Errorf("%s: %q is not a valid name (no slashes, no surrounding spaces)", field, v)
	}
	return url.PathEscape(v), nil
}

// derived are the values a connector's fields imply. apply fills them into
// the empty fields of a definition.
type derived struct {
	issuer            string
	additionalIssuers []string
	// wellKnown is only applied when the issuer was derived too: a
	// discovery document must name the configured issuer, and a user who
	// sets the issuer by hand knows better than the connector.
	wellKnown     string
	jwks          string
	introspection string
	tokenURL      string
	consumerKey   string
	scopes        string
	validation    string
	audiences     []string
	rules         []keymanagers.TokenHandlingRule
}

func (d derived) apply(def *keymanagers.Definition) {
	issuerDerived := def.Issuer == ""
	if issuerDerived {
		def.Issuer = d.issuer
	}
	if len(def.AdditionalIssuers) == 0 {
		for _, iss := range d.additionalIssuers {
			if iss != def.Issuer {
				def.AdditionalIssuers = append(def.AdditionalIssuers, iss)
			}
		}
	}
	if issuerDerived && def.WellKnownURL == "" {
		def.WellKnownURL = d.wellKnown
	}
	if def.JWKSURL == "" && def.CertificatePEM == "" {
		def.JWKSURL = d.jwks
	}
	// An introspection endpoint needs credentials (unless the user chose
	// introspection_auth none): without client_id the Key Manager
	// validates JWTs only.
	if def.IntrospectionURL == "" && (def.ClientID != "" || def.IntrospectionAuth == keymanagers.AuthNone) {
		def.IntrospectionURL = d.introspection
	}
	if def.TokenURL == "" {
		def.TokenURL = d.tokenURL
	}
	if d.consumerKey != "" || d.scopes != "" {
		if def.Claims == nil {
			def.Claims = &keymanagers.ClaimMapping{}
		} else {
			c := *def.Claims // never write through the caller's pointer
			def.Claims = &c
		}
		if def.Claims.ConsumerKey == "" {
			def.Claims.ConsumerKey = d.consumerKey
		}
		if def.Claims.Scopes == "" {
			def.Claims.Scopes = d.scopes
		}
	}
	if def.TokenValidation == "" {
		def.TokenValidation = d.validation
	}
	if len(def.Audiences) == 0 {
		def.Audiences = slices.Clone(d.audiences)
	}
	if len(def.TokenHandling) == 0 {
		def.TokenHandling = slices.Clone(d.rules)
	}
}

// appendScopes adds the claim's string values to scopes, skipping values
// that cannot be scopes (scopes.ValidToken: empty, or with white space or
// control characters of any kind) and duplicates.
func appendScopes(scopes []string, claims keymanagers.Claims, name string) []string {
	vals, ok := claims.Strings(name, false)
	if !ok {
		return scopes
	}
	for _, v := range vals {
		if !scopepkg.ValidToken(v) || slices.Contains(scopes, v) {
			continue
		}
		scopes = append(scopes, v)
	}
	return scopes
}

// refused builds a 401 refusal whose description is shown to the client.
func refused(description string) error {
	return keymanagers.NewError(keymanagers.KindInvalid, description)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
