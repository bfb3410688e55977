package connectors

import (
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// WSO2UUIDPattern matches WSO2 Identity Server's opaque access tokens
// (UUIDs). It is the default REFERENCE token handling rule of the WSO2
// connectors, so that a tenant's other Key Managers are not asked about
// them and WSO2 is not asked about theirs.
const WSO2UUIDPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$`

// WSO2IS is WSO2 Identity Server 5.x and 6.x (type wso2is).
//
// Derived: issuer {base}/oauth2/token ({base}/t/{tenant}/oauth2/token with
// tenant_qualified_urls), discovery {base}[/t/{tenant}]/oauth2/token/.well-known/openid-configuration,
// JWKS {base}[/t/{tenant}]/oauth2/jwks, introspection
// {base}[/t/{tenant}]/oauth2/introspect (with client_id), token endpoint
// {base}[/t/{tenant}]/oauth2/token, consumer key claim azp, scopes from
// the scope string, and a REFERENCE rule electing UUID opaque tokens.
//
// JWTs that are refresh tokens (WSO2's non-persistent token mode signs
// refresh tokens like access tokens and marks them token_type
// refresh_token) are refused.
type WSO2IS struct {
	// BaseURL is the server's origin plus any context path, for example
	// https://is.example.com:9443.
	BaseURL string `json:"base_url,omitempty"`
	// Tenant is the tenant domain for a tenant other than the super
	// tenant; its endpoints are under /t/{tenant}.
	Tenant string `json:"tenant,omitempty"`
	// TenantQualifiedURLs says the server issues tenant-qualified issuers
	// ({base}/t/{tenant}/oauth2/token). Without it every tenant of one
	// server shares the issuer {base}/oauth2/token (WSO2's default).
	TenantQualifiedURLs Bool `json:"tenant_qualified_urls,omitempty"`
}

// Derive implements keymanagers.Connector.
func (c *WSO2IS) Derive(def *keymanagers.Definition) error {
	base, err := baseURL("base_url", c.BaseURL)
	if err != nil {
		return err
	}
	endpoints := base
	if c.Tenant != "" {
		t, err := pathSegment("tenant", c.Tenant)
		if err != nil {
			return err
		}
		endpoints = base + "/t/" + t
	} else if c.TenantQualifiedURLs {
		return errorf("tenant_qualified_urls: needs tenant")
	}
	issuer := base + "/oauth2/token"
	if c.TenantQualifiedURLs {
		issuer = endpoints + "/oauth2/token"
	}
	derived{
		issuer:        issuer,
		wellKnown:     endpoints + "/oauth2/token/.well-known/openid-configuration",
		jwks:          endpoints + "/oauth2/jwks",
		introspection: endpoints + "/oauth2/introspect",
		tokenURL:      endpoints + "/oauth2/token",
		consumerKey:   "azp",
		scopes:        "scope",
		rules:         []keymanagers.TokenHandlingRule{{Type: "reference", Pattern: WSO2UUIDPattern}},
	}.apply(def)
	return nil
}

// CheckClaims implements keymanagers.ClaimsChecker: a JWT refresh token is
// not an access token.
func (c *WSO2IS) CheckClaims(claims keymanagers.Claims) error {
	return refuseWSO2Refresh(claims)
}

func refuseWSO2Refresh(claims keymanagers.Claims) error {
	if tt, ok := claims.String("token_type"); ok && keymanagers.IsRefreshTokenType(tt) {
		return keymanagers.ErrRefreshToken
	}
	return nil
}

// WSO2IS7 is WSO2 Identity Server 7 (type wso2is7). It derives what
// wso2is derives; IS 7 sets both client_id and azp to the client id. Its
// introspection answers token_type Refresh for refresh tokens, which the
// gateway refuses, and JWT refresh tokens are refused as with wso2is.
type WSO2IS7 struct {
	WSO2IS
}

// Interface guards
var (
	_ keymanagers.Connector     = (*WSO2IS)(nil)
	_ keymanagers.ClaimsChecker = (*WSO2IS)(nil)
	_ keymanagers.Connector     = (*WSO2IS7)(nil)
	_ keymanagers.ClaimsChecker = (*WSO2IS7)(nil)
)
