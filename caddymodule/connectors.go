package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

func init() {
	caddy.RegisterModule(CustomConnector{})
}

// CustomConnector is the generic OAuth2 / OIDC connector
// (keymanagers.connectors.custom): every endpoint and claim is set in the
// definition or discovered.
type CustomConnector struct {
	keymanagers.Custom
}

// CaddyModule returns the Caddy module information.
func (CustomConnector) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "keymanagers.connectors.custom",
		New: func() caddy.Module { return new(CustomConnector) },
	}
}

// Interface guards
var _ keymanagers.Connector = (*CustomConnector)(nil)
