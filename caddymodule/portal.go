package caddymodule

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Portal{})
}

// portalFiles is the single-page admin portal: plain HTML, CSS and
// JavaScript modules, no build step and no external resource.
//
//go:embed portal
var portalFiles embed.FS

// portalCSP is the Content-Security-Policy of every portal response: the
// page loads its own scripts and styles only (no inline code), talks to its
// own origin only, and cannot be framed.
const portalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Portal is the admin portal (http.handlers.keymanager_portal): a web page
// over the Key Manager catalog and its JSON API, served under whatever
// path the route gives it (use handle_path, which strips the prefix). The
// API is the admin API's own router (adminAPI.dispatch) behind a CSRF
// check; the portal has no authentication of its own: put basic_auth,
// forward_auth or a keymanager handler with an admin scope in front.
type Portal struct {
	api adminAPI
}

// CaddyModule returns the Caddy module information.
func (Portal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.keymanager_portal",
		New: func() caddy.Module { return new(Portal) },
	}
}

// Provision finds the keymanagers app.
func (p *Portal) Provision(ctx caddy.Context) error {
	appIface, err := ctx.AppIfConfigured("keymanagers")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return errors.New("the keymanager_portal handler needs the keymanagers app: add a `keymanagers { ... }` global option (Caddyfile) or apps.keymanagers (JSON)")
		}
		return err
	}
	p.api = adminAPI{app: appIface.(*App), log: ctx.Logger(), via: "portal"}
	return nil
}

// ServeHTTP serves the page, its assets and, under api/, the JSON API.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h := w.Header()
	h.Set("Content-Security-Policy", portalCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/"); ok {
		return p.serveAPI(w, r, rest)
	}
	return p.serveAsset(w, r)
}

// serveAPI answers the portal's JSON API: writes pass the CSRF check
// first, then every call goes to the admin API's router.
func (p *Portal) serveAPI(w http.ResponseWriter, r *http.Request, rest string) error {
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		issueCSRFToken(w, r)
	default:
		if msg := checkCSRF(r); msg != "" {
			return writeJSON(w, http.StatusForbidden, map[string]any{"error": msg, "code": "csrf"})
		}
	}
	err := p.api.dispatch(w, r, rest)
	if err == nil {
		return nil
	}
	var ae caddy.APIError
	if !errors.As(err, &ae) {
		ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	msg := ae.Message
	if msg == "" && ae.Err != nil {
		msg = ae.Err.Error()
	}
	if ae.HTTPStatus == 0 {
		ae.HTTPStatus = http.StatusInternalServerError
	}
	return writeJSON(w, ae.HTTPStatus, map[string]any{"error": msg})
}

// serveAsset serves the embedded files; "/" is the page itself, and
// hands out the CSRF cookie.
func (p *Portal) serveAsset(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on portal files", r.Method))
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no portal file %q", r.URL.Path))
	}
	body, err := portalFiles.ReadFile("portal/" + name)
	if err != nil {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no portal file %q", r.URL.Path))
	}
	if name == "index.html" {
		issueCSRFToken(w, r)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// portalAPIBase is the path of the portal's JSON API as the browser sees
// it ("/portal/api/"): the original request's path, less what remains
// after handle_path stripped the route's prefix, plus "/api/". When the
// path was rewritten some other way (the remainder is not a suffix of the
// original), no prefix can be told apart and "/api/" is all it says.
func portalAPIBase(r *http.Request) string {
	prefix := ""
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		if p, cut := strings.CutSuffix(orig.URL.Path, r.URL.Path); cut {
			prefix = p
		}
	}
	return prefix + "/api/"
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Portal)(nil)
	_ caddyhttp.MiddlewareHandler = (*Portal)(nil)
)
