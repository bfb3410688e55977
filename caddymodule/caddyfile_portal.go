package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("keymanager_portal", parsePortalDirective)
	httpcaddyfile.RegisterDirectiveOrder("keymanager_portal", httpcaddyfile.Before, "file_server")
}

// parsePortalDirective parses the portal directive, which takes no
// arguments and no block:
//
//	handle_path /portal/* {
//		basic_auth {
//			admin $2a$14$...
//		}
//		keymanager_portal
//	}
func parsePortalDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // the directive name
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	if h.NextBlock(0) {
		return nil, h.Errf("keymanager_portal takes no block (unknown subdirective %q)", h.Val())
	}
	return new(Portal), nil
}
