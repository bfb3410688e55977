// Caddyfile support: the `keymanagers` global option
// (caddyfile_global.go), its Key Manager blocks (caddyfile_keymanager.go)
// and the `keymanager` directive (caddyfile_handler.go). Parsing is pure:
// no I/O and no placeholder expansion; the domain's own checks
// (keymanagers.Prepare, CompileRoute, CheckVisibility) run so a Caddyfile
// that adapts also provisions, with file and line in every error.

package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("keymanagers", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("keymanager", parseHandlerDirective)
	httpcaddyfile.RegisterDirectiveOrder("keymanager", httpcaddyfile.After, "basic_auth")
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	field := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: expected a value", field)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: expected one value, got more", field)
	}
	return v, nil
}
