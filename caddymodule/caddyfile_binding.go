package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Caddyfile parsing of sender-constrained tokens and protected-resource
// metadata: the keymanager handler's dpop, dpop_nonce, external_origin and
// resource subdirectives, and the keymanager_resource_metadata directive.

func init() {
	httpcaddyfile.RegisterHandlerDirective("keymanager_resource_metadata", parseResourceMetadataDirective)
	httpcaddyfile.RegisterDirectiveOrder("keymanager_resource_metadata", httpcaddyfile.Before, "basic_auth")
}

// unmarshalSenderConstraint parses the handler's sender-constraint and
// resource subdirectives; handled is false for any other.
//
//	dpop required|allowed|off
//	dpop_nonce
//	external_origin https://api.example.com
//	resource https://api.example.com/orders
func (h *Handler) unmarshalSenderConstraint(d *caddyfile.Dispenser) (handled bool, err error) {
	switch d.Val() {
	case "dpop":
		v, err := oneArg(d)
		if err != nil {
			return true, err
		}
		switch v {
		case keymanagers.BindingRequired, keymanagers.BindingAllowed, keymanagers.BindingOff:
		default:
			return true, d.Errf("dpop: %q is not one of required, allowed, off", v)
		}
		h.DPoP = v
	case "dpop_nonce":
		if d.NextArg() {
			return true, d.ArgErr()
		}
		h.DPoPNonce = true
	case "external_origin":
		v, err := oneArg(d)
		if err != nil {
			return true, err
		}
		h.ExternalOrigin = v
		if err := (&Handler{ExternalOrigin: v}).validateSenderConstraint(); err != nil {
			return true, d.Err(err.Error())
		}
	case "resource":
		v, err := oneArg(d)
		if err != nil {
			return true, err
		}
		if _, err := metadataURL(v); err != nil {
			return true, d.Errf("resource: %v", err)
		}
		h.Resource = v
	default:
		return false, nil
	}
	return true, nil
}

func parseResourceMetadataDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ResourceMetadata)
	return m, m.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile parses `keymanager_resource_metadata` (no arguments,
// no block): it serves the documents of every keymanager handler of this
// config that names a `resource`.
func (m *ResourceMetadata) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("keymanager_resource_metadata: takes no block (unknown %q)", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*ResourceMetadata)(nil)
)
