package connectors

import (
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Keycloak is Keycloak / Red Hat build of Keycloak (type keycloak).
//
// Derived: issuer {base}[/auth]/realms/{realm}, discovery
// {issuer}/.well-known/openid-configuration, JWKS
// {issuer}/protocol/openid-connect/certs, introspection
// {issuer}/protocol/openid-connect/token/introspect (with client_id; a
// confidential client, HTTP Basic), token endpoint
// {issuer}/protocol/openid-connect/token, consumer key claim azp (the
// calling client; aud is often "account" or absent), scopes from the scope
// string.
type Keycloak struct {
	// BaseURL is the server's origin, for example https://sso.example.com.
	BaseURL string `json:"base_url,omitempty"`
	// Realm is the realm name.
	Realm string `json:"realm,omitempty"`
	// LegacyAuthPath adds the /auth context path of Keycloak before 17
	// (WildFly distribution) or of servers run with
	// --http-relative-path=/auth.
	LegacyAuthPath Bool `json:"legacy_auth_path,omitempty"`
}

// Derive implements keymanagers.Connector.
func (c *Keycloak) Derive(def *keymanagers.Definition) error {
	base, err := baseURL("base_url", c.BaseURL)
	if err != nil {
		return err
	}
	realm, err := pathSegment("realm", c.Realm)
	if err != nil {
		return err
	}
	if c.LegacyAuthPath {
		base += "/auth"
	}
	issuer := base + "/realms/" + realm
	derived{
		issuer:        issuer,
		wellKnown:     issuer + "/.well-known/openid-configuration",
		jwks:          issuer + "/protocol/openid-connect/certs",
		introspection: issuer + "/protocol/openid-connect/token/introspect",
		tokenURL:      issuer + "/protocol/openid-connect/token",
		consumerKey:   "azp",
		scopes:        "scope",
	}.apply(def)
	return nil
}

// Interface guards
var _ keymanagers.Connector = (*Keycloak)(nil)
