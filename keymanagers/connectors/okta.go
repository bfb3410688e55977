package connectors

import (
	"net/url"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// OktaDefaultAudience is the audience of Okta's "default" custom
// authorization server as Okta creates it.
const OktaDefaultAudience = "api://default"

// Okta is Okta (type okta), with a custom authorization server or the org
// authorization server.
//
// Derived for a custom authorization server {as} (default "default"):
// issuer https://{domain}/oauth2/{as}, discovery
// {issuer}/.well-known/oauth-authorization-server, JWKS {issuer}/v1/keys,
// introspection {issuer}/v1/introspect (with client_id), token endpoint
// {issuer}/v1/token, consumer key claim cid, scopes from the scp array,
// and, for the "default" server only, the audience api://default when no
// audience is set.
//
// For the org authorization server (authorization_server ""): issuer
// https://{domain}, discovery https://{domain}/.well-known/openid-configuration,
// JWKS https://{domain}/oauth2/v1/keys, introspection
// https://{domain}/oauth2/v1/introspect. Okta's org server issues access
// tokens for Okta's own APIs only: its JWTs are refused with a description
// that says so.
type Okta struct {
	// Domain is the Okta org's host (dev-123.okta.com) or a custom URL
	// domain, optionally with a port.
	Domain string `json:"domain,omitempty"`
	// AuthorizationServer is the custom authorization server's ID
	// (default "default"); the empty string selects the org authorization
	// server.
	AuthorizationServer *string `json:"authorization_server,omitempty"`
}

// orgServer reports whether the connector points at the org authorization
// server.
func (c *Okta) orgServer() bool { return c.AuthorizationServer != nil && *c.AuthorizationServer == "" }

// Derive implements keymanagers.Connector.
func (c *Okta) Derive(def *keymanagers.Definition) error {
	host, err := hostPort("domain", c.Domain)
	if err != nil {
		return err
	}
	org := "https://" + host
	if c.orgServer() {
		derived{
			issuer:        org,
			wellKnown:     org + "/.well-known/openid-configuration",
			jwks:          org + "/oauth2/v1/keys",
			introspection: org + "/oauth2/v1/introspect",
			tokenURL:      org + "/oauth2/v1/token",
			consumerKey:   "cid",
			scopes:        "scp",
		}.apply(def)
		return nil
	}
	as := "default"
	if c.AuthorizationServer != nil {
		as = *c.AuthorizationServer
	}
	if _, err := pathSegment("authorization_server", as); err != nil {
		return err
	}
	issuer := org + "/oauth2/" + url.PathEscape(as)
	d := derived{
		issuer:        issuer,
		wellKnown:     issuer + "/.well-known/oauth-authorization-server",
		jwks:          issuer + "/v1/keys",
		introspection: issuer + "/v1/introspect",
		tokenURL:      issuer + "/v1/token",
		consumerKey:   "cid",
		scopes:        "scp",
	}
	if as == "default" {
		d.audiences = []string{OktaDefaultAudience}
	}
	d.apply(def)
	return nil
}

// CheckHeader implements keymanagers.HeaderChecker: tokens of the org
// authorization server are only for Okta.
func (c *Okta) CheckHeader(_ keymanagers.TokenHeader, _ keymanagers.Claims) error {
	if c.orgServer() {
		return refused("The access token was issued by Okta's org authorization server; such tokens are meant for Okta's own APIs only. " +
			"Request the token from a custom authorization server of the Okta org (for example \"default\").")
	}
	return nil
}

// Interface guards
var (
	_ keymanagers.Connector     = (*Okta)(nil)
	_ keymanagers.HeaderChecker = (*Okta)(nil)
)
