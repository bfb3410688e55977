package connectors

import (
	"slices"
	"strings"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Auth0 is Auth0 (type auth0).
//
// Derived: issuer https://{domain}/ (with the trailing slash), discovery
// https://{domain}/.well-known/openid-configuration, JWKS
// https://{domain}/.well-known/jwks.json, token_validation jwt (Auth0 has
// no introspection endpoint), consumer key claim azp (client_id with the
// RFC 9068 token profile, read as a fallback), scopes from the scope
// string, plus the permissions array when permissions_as_scopes is set.
//
// Opaque tokens are refused with a description that says why: Auth0 issues
// them when the client asked for no audience. Tokens for the Auth0
// Management API (aud https://{domain}/api/v2/, or that of the tenant's
// canonical *.auth0.com domain) are refused unless that audience is
// configured.
type Auth0 struct {
	// Domain is the tenant's domain (tenant.region.auth0.com) or its
	// custom domain.
	Domain string `json:"domain,omitempty"`
	// PermissionsAsScopes adds the RBAC permissions claim (enable "Add
	// Permissions in the Access Token" on the API) to the token's scopes.
	// Off by default: permissions are what the user may do, scopes what
	// the client was granted.
	PermissionsAsScopes Bool `json:"permissions_as_scopes,omitempty"`

	// Set by Derive (see the package documentation): the normalized domain,
	// and whether a Management API audience is configured.
	host              string
	managementAllowed bool
}

// Derive implements keymanagers.Connector.
func (c *Auth0) Derive(def *keymanagers.Definition) error {
	host, err := hostPort("domain", c.Domain)
	if err != nil {
		return err
	}
	origin := "https://" + host
	derived{
		issuer:      origin + "/",
		wellKnown:   origin + "/.well-known/openid-configuration",
		jwks:        origin + "/.well-known/jwks.json",
		tokenURL:    origin + "/oauth/token",
		consumerKey: "azp",
		scopes:      "scope",
		validation:  keymanagers.ValidationJWT,
	}.apply(def)
	c.host = host
	c.managementAllowed = slices.ContainsFunc(def.Audiences, c.isManagementAPI)
	return nil
}

// isManagementAPI reports an audience of an Auth0 Management API: the
// configured domain's, or any *.auth0.com tenant domain's (a custom domain
// tenant's Management API keeps the canonical domain).
func (c *Auth0) isManagementAPI(aud string) bool {
	rest, ok := strings.CutPrefix(aud, "https://")
	if !ok {
		return false
	}
	host, ok := strings.CutSuffix(rest, "/api/v2/")
	if !ok || host == "" || strings.Contains(host, "/") {
		return false
	}
	if c.host != "" && strings.EqualFold(host, c.host) {
		return true
	}
	return strings.HasSuffix(strings.ToLower(host), ".auth0.com")
}

// CheckHeader implements keymanagers.HeaderChecker. It reads the (not yet
// verified) audience only to refuse with a clear description.
func (c *Auth0) CheckHeader(_ keymanagers.TokenHeader, claims keymanagers.Claims) error {
	if c.managementAllowed {
		return nil
	}
	auds, _ := claims.Strings("aud", false)
	for _, a := range auds {
		if c.isManagementAPI(a) {
			return refused("The access token is for the Auth0 Management API, not for this API. " +
				"Request the token with this API's identifier as the audience.")
		}
	}
	return nil
}

// MapPrincipal implements keymanagers.PrincipalMapper.
func (c *Auth0) MapPrincipal(claims keymanagers.Claims, p *keymanagers.PrincipalFields) {
	if c.PermissionsAsScopes {
		p.Scopes = appendScopes(p.Scopes, claims, "permissions")
	}
}

// RefuseOpaque implements keymanagers.OpaqueRefuser.
func (c *Auth0) RefuseOpaque() error {
	return refused("The access token is opaque, and Auth0 has no introspection endpoint to validate it. " +
		"Auth0 issues opaque access tokens when no audience is requested: request the token with this API's identifier as the audience to get a JWT.")
}

// Interface guards
var (
	_ keymanagers.Connector       = (*Auth0)(nil)
	_ keymanagers.HeaderChecker   = (*Auth0)(nil)
	_ keymanagers.PrincipalMapper = (*Auth0)(nil)
	_ keymanagers.OpaqueRefuser   = (*Auth0)(nil)
)
