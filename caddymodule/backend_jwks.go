package caddymodule

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

func init() {
	caddy.RegisterModule(BackendJWKS{})
}

// BackendJWKS is the `keymanager_backend_jwks` handler: it answers GET
// with the JWK Set (RFC 7517) of the backend JWT signing keys, the next,
// current and retired ones, so that upstreams can verify the gateway's
// JWTs with any JWT library. Place it on a route of its own, e.g.
//
//	handle /.well-known/backend-jwks.json {
//		keymanager_backend_jwks
//	}
//
// Cache-Control max-age is a quarter of the time a new key is published
// before it signs (at most an hour).
type BackendJWKS struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (BackendJWKS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.keymanager_backend_jwks",
		New: func() caddy.Module { return new(BackendJWKS) },
	}
}

// Provision finds the keymanagers app.
func (j *BackendJWKS) Provision(ctx caddy.Context) error {
	appIface, err := ctx.AppIfConfigured("keymanagers")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return errors.New("keymanager_backend_jwks needs the keymanagers app: add a `keymanagers { ... }` global option")
		}
		return err
	}
	j.app = appIface.(*App)
	return nil
}

// ServeHTTP writes the JWK Set.
func (j *BackendJWKS) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("the backend JWKS answers GET only"))
	}
	body, maxAge, err := backendjwt.JWKS(r.Context(), j.app.backendJWTStores()...)
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	if maxAge > 0 {
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds())))
	} else {
		h.Set("Cache-Control", "no-store") // no key set in use yet
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// UnmarshalCaddyfile parses `keymanager_backend_jwks` (no arguments).
func (j *BackendJWKS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("keymanager_backend_jwks: takes no options (got %q)", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*BackendJWKS)(nil)
	_ caddyhttp.MiddlewareHandler = (*BackendJWKS)(nil)
	_ caddyfile.Unmarshaler       = (*BackendJWKS)(nil)
)
