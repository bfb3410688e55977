package connectors

import (
	"strings"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// PingFederate is PingFederate (type pingfederate).
//
// Derived: issuer {base} (a JWT access token carries iss only when its
// access token manager sets "Issuer Claim Value": set it to the base URL,
// or set issuer to the value it has), JWKS {base}/pf/JWKS (the centralized
// signing key) or {base}/ext{jwks_path} for an access token manager that
// publishes its own keys, introspection {base}/as/introspect.oauth2 (with
// client_id; the client needs the "Access Token Validation" grant), token
// endpoint {base}/as/token.oauth2, consumer key claim client_id (the access
// token manager's "Client ID Claim Name"), scopes from the scope claim
// ("Scope Claim Name"), a JSON array or a space-separated string, and the
// discovery URL {base}/.well-known/openid-configuration (its issuer is
// {base}; only the issuer is checked against it, the keys and endpoints
// above are used whatever it lists).
type PingFederate struct {
	// BaseURL is the runtime engine's origin, for example
	// https://pf.example.com:9031.
	BaseURL string `json:"base_url,omitempty"`
	// JWKSPath is the access token manager's "JWKS Endpoint Path" (for
	// example /oauth/jwks), served under /ext; a path already starting with
	// /ext/ is taken as is. Empty: the centralized key set /pf/JWKS.
	JWKSPath string `json:"jwks_path,omitempty"`
}

// Derive implements keymanagers.Connector.
func (c *PingFederate) Derive(def *keymanagers.Definition) error {
	base, err := baseURL("base_url", c.BaseURL)
	if err != nil {
		return err
	}
	jwks := base + "/pf/JWKS"
	if p := c.JWKSPath; p != "" {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t") || strings.Contains(p, "..") {
			return errorf("jwks_path: %q is not an absolute URL path such as /oauth/jwks", p)
		}
		if !strings.HasPrefix(p, "/ext/") {
			p = "/ext" + p
		}
		jwks = base + p
	}
	derived{
		issuer:        base,
		wellKnown:     base + "/.well-known/openid-configuration",
		jwks:          jwks,
		introspection: base + "/as/introspect.oauth2",
		tokenURL:      base + "/as/token.oauth2",
		consumerKey:   "client_id",
		scopes:        "scope",
	}.apply(def)
	return nil
}

// Interface guards
var _ keymanagers.Connector = (*PingFederate)(nil)
