package connectors

import (
	"net/url"
	"strings"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// ForgeRock is ForgeRock Access Management / PingAM, and ForgeRock Identity
// Cloud / PingOne Advanced Identity Cloud (type forgerock).
//
// Derived: issuer {base}/oauth2 for the root realm, else
// {base}/oauth2/realms/root/realms/{realm} (a nested realm a/b gives
// .../realms/a/realms/b); discovery {issuer}/.well-known/openid-configuration,
// JWKS {issuer}/connect/jwk_uri, introspection {issuer}/introspect (with
// client_id), token endpoint {issuer}/access_token, consumer key claim
// client_id, else the first aud (older AM names the client only in aud),
// scopes from the scope claim (a JSON array in JWTs, a string in
// introspection).
//
// AM builds its issuer from the request or its Base URL Source, so a realm
// DNS alias (https://am.example.com/am/oauth2/alpha) or an explicit :443
// gives another issuer: set issuer verbatim then. JWTs that are not access
// tokens (tokenName refresh_token, id_token, ...) are refused.
type ForgeRock struct {
	// BaseURL is AM's origin and deployment path, for example
	// https://am.example.com/am.
	BaseURL string `json:"base_url,omitempty"`
	// Realm is the realm (default the root realm), for example alpha or
	// /parent/child.
	Realm string `json:"realm,omitempty"`
}

// Derive implements keymanagers.Connector.
func (c *ForgeRock) Derive(def *keymanagers.Definition) error {
	base, err := baseURL("base_url", c.BaseURL)
	if err != nil {
		return err
	}
	issuer := base + "/oauth2"
	realm := strings.Trim(c.Realm, "/")
	if realm != "" && realm != "root" {
		issuer += "/realms/root"
		for _, seg := range strings.Split(realm, "/") {
			if seg == "" || strings.TrimSpace(seg) != seg || strings.ContainsAny(seg, "?#") || seg == "." || seg == ".." {
				return errorf("realm: %q is not a realm path such as alpha or /parent/child", c.Realm)
			}
			issuer += "/realms/" + url.PathEscape(seg)
		}
	}
	derived{
		issuer:        issuer,
		wellKnown:     issuer + "/.well-known/openid-configuration",
		jwks:          issuer + "/connect/jwk_uri",
		introspection: issuer + "/introspect",
		tokenURL:      issuer + "/access_token",
		consumerKey:   "client_id",
		scopes:        "scope",
	}.apply(def)
	return nil
}

// CheckClaims implements keymanagers.ClaimsChecker: AM names each JWT's
// kind in tokenName.
func (c *ForgeRock) CheckClaims(claims keymanagers.Claims) error {
	name, ok := claims.String("tokenName")
	if !ok {
		if tt, ok := claims.String("token_type"); ok && keymanagers.IsRefreshTokenType(tt) {
			return keymanagers.ErrRefreshToken
		}
		return nil
	}
	switch {
	case name == "access_token":
		return nil
	case keymanagers.IsRefreshTokenType(name):
		return keymanagers.ErrRefreshToken
	}
	return refused("The token is not an access token (ForgeRock names it otherwise in tokenName).")
}

// MapPrincipal implements keymanagers.PrincipalMapper: without client_id
// (or azp), the client is the first audience.
func (c *ForgeRock) MapPrincipal(claims keymanagers.Claims, p *keymanagers.PrincipalFields) {
	if p.ClientID != "" {
		return
	}
	if auds, ok := claims.Strings("aud", false); ok && len(auds) > 0 {
		p.ClientID = auds[0]
	}
}

// Interface guards
var (
	_ keymanagers.Connector       = (*ForgeRock)(nil)
	_ keymanagers.ClaimsChecker   = (*ForgeRock)(nil)
	_ keymanagers.PrincipalMapper = (*ForgeRock)(nil)
)
