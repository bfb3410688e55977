// Package acmeidp is an example third-party connector: it teaches
// caddy-keymanager the layout and token quirks of "Acme IdP", a fictional
// proprietary authorization server, and registers it as the Caddy module
// keymanagers.connectors.acmeidp.
//
// Build it into Caddy next to the plugin:
//
//	xcaddy build \
//		--with github.com/kmgate/caddy-keymanager@v0.0.0=. \
//		--with github.com/kmgate/caddy-keymanager/examples/acmeidp@v0.0.0=./examples/acmeidp
//
// and use it in a Key Manager block:
//
//	key_manager acme {
//		type acmeidp
//		server_url https://idp.acme.example
//		directory employees
//		audience https://api.acme.example
//	}
//
// See docs/custom-connector.md.
package acmeidp

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

func init() {
	caddy.RegisterModule(Connector{})
}

// Connector is the Acme IdP connector. Its exported fields are the
// connection fields users write in the Key Manager block (one per line in
// the Caddyfile, snake_case in JSON); keep them plain strings, booleans or
// string lists so the Caddyfile can set them.
type Connector struct {
	// ServerURL is the Acme IdP origin, for example https://idp.acme.example.
	ServerURL string `json:"server_url,omitempty"`
	// Directory is the user directory whose tokens the Key Manager
	// accepts (default "default").
	Directory string `json:"directory,omitempty"`
}

// CaddyModule returns the Caddy module information. The ID must be in the
// keymanagers.connectors namespace; its last label is the connector type.
func (Connector) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "keymanagers.connectors.acmeidp",
		New: func() caddy.Module { return new(Connector) },
	}
}

// Derive fills what Acme IdP's connection fields imply into the empty
// fields of def. It must not do I/O, and must leave every value the user
// set alone.
func (c *Connector) Derive(def *keymanagers.Definition) error {
	u, err := url.Parse(c.ServerURL)
	if c.ServerURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("server_url: %q is not an absolute http(s) URL", c.ServerURL)
	}
	dir := c.Directory
	if dir == "" {
		dir = "default"
	}
	if strings.ContainsAny(dir, "/?#") {
		return fmt.Errorf("directory: %q must not contain '/', '?' or '#'", dir)
	}
	issuer := strings.TrimRight(c.ServerURL, "/") + "/idp/" + url.PathEscape(dir)
	if def.Issuer == "" {
		def.Issuer = issuer
	}
	if def.JWKSURL == "" && def.CertificatePEM == "" {
		def.JWKSURL = issuer + "/keys.json"
	}
	// Introspection needs credentials: only with client_id.
	if def.IntrospectionURL == "" && def.ClientID != "" {
		def.IntrospectionURL = issuer + "/token-info"
	}
	claims := keymanagers.ClaimMapping{}
	if def.Claims != nil {
		claims = *def.Claims // copy: never write through the caller's pointer
	}
	if claims.ConsumerKey == "" {
		claims.ConsumerKey = "acme_client"
	}
	if claims.Scopes == "" {
		claims.Scopes = "acme_perms"
	}
	def.Claims = &claims
	return nil
}

// CheckClaims refuses Acme IdP tokens that are not access tokens: the
// server signs its session and refresh tokens with the same key and marks
// them in acme_kind. It runs after the signature and the standard claims
// were verified.
func (c *Connector) CheckClaims(claims keymanagers.Claims) error {
	if kind, ok := claims.String("acme_kind"); ok && kind != "access" {
		return keymanagers.NewError(keymanagers.KindInvalid, "The token is an Acme IdP "+safeKind(kind)+" token, not an access token.")
	}
	return nil
}

// MapPrincipal makes the directory-qualified user the subject: Acme IdP
// puts the bare user name in sub and the directory in acme_dir.
func (c *Connector) MapPrincipal(claims keymanagers.Claims, p *keymanagers.PrincipalFields) {
	if dir, ok := claims.String("acme_dir"); ok && dir != "" && p.Subject != "" {
		p.Subject = dir + "\\" + p.Subject
	}
}

// safeKind keeps a claim value out of a client-facing description unless
// it is one of the known kinds.
func safeKind(kind string) string {
	switch kind {
	case "session", "refresh", "id":
		return kind
	}
	return "unknown"
}

// Interface guards
var (
	_ caddy.Module                = (*Connector)(nil)
	_ keymanagers.Connector       = (*Connector)(nil)
	_ keymanagers.ClaimsChecker   = (*Connector)(nil)
	_ keymanagers.PrincipalMapper = (*Connector)(nil)
)
