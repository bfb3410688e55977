package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/keymanagers/catalog"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// adminAPI serves /keymanagers/ on Caddy's admin endpoint. It keeps no
// state of its own: Caddy builds a new one on every config load, and every
// change goes to the keymanagers app (and its storage).
type adminAPI struct {
	app *App
	log *zap.Logger
	// via names the front door in audit lines: "" (admin) or "portal".
	via string
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.keymanagers",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision finds the keymanagers app, if configured.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger(a) //nolint:staticcheck // admin modules are not yet first-class (caddy#5032)
	app, err := ctx.AppIfConfigured("keymanagers")
	if err == nil {
		a.app = app.(*App)
	}
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/keymanagers/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// resourcePath is the path of a created resource as the caller sees it:
// under /keymanagers/ on the admin endpoint; in the portal, under the
// portal's own api/ (before handle_path stripped its prefix), since the
// admin endpoint is not the browser's to reach.
func (a *adminAPI) resourcePath(r *http.Request, rest string) string {
	if a.via == "portal" {
		return portalAPIBase(r) + rest
	}
	return "/keymanagers/" + rest
}

func apiErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func methodNotAllowed(r *http.Request, allowed ...string) error {
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed,
		Err: fmt.Errorf("method %s not allowed here (allowed: %s)", r.Method, strings.Join(allowed, ", "))}
}

// serve dispatches /keymanagers/... requests.
func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	return a.dispatch(w, r, strings.TrimPrefix(r.URL.Path, "/keymanagers/"))
}

// dispatch is the one router over the catalog, for the admin endpoint
// (rest is the path after /keymanagers/) and the portal's JSON API (rest
// is the path after {portal}/api/) alike. Field errors are written here;
// every other failure is returned as a caddy.APIError.
func (a *adminAPI) dispatch(w http.ResponseWriter, r *http.Request, rest string) error {
	if a.app == nil {
		return apiErr(http.StatusNotFound, "the keymanagers app is not configured")
	}
	err := a.route(w, r, rest)
	if isFieldErr(err) {
		return writeFieldErrors(w, err)
	}
	return apiError(err)
}

func (a *adminAPI) route(w http.ResponseWriter, r *http.Request, rest string) error {
	cat := a.app.catalog
	parts := strings.Split(rest, "/")
	switch {
	case rest == "":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return writeJSON(w, http.StatusOK, cat.KeyManagers(""))
	case rest == "connectors" || rest == "status":
		return a.serveOverview(w, r, rest)
	case rest == "discover":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		return a.discover(w, r)
	case rest == "cache":
		if r.Method != http.MethodDelete {
			return methodNotAllowed(r, "DELETE")
		}
		if err := a.app.gateway.Cache().Purge(); err != nil {
			return apiErr(http.StatusInternalServerError, "purging the cache: %v", err)
		}
		a.audit(r, "", "", "purge_cache")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case rest == "backend-jwks":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		return writeJSON(w, http.StatusOK, a.app.backendJWTStatus())
	case rest == "revoke":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		return a.revoke(w, r)
	case len(parts) == 3 && parts[1] == "applications":
		return a.serveApplications(w, r, parts[0], parts[2])
	case len(parts) == 4 && parts[1] == "applications" && parts[3] == "token":
		return a.serveApplicationToken(w, r, parts[0], parts[2])
	case len(parts) == 2 && parts[1] == "":
		tenant := parts[0]
		switch r.Method {
		case http.MethodGet:
			list := cat.KeyManagers(tenant)
			if len(list) == 0 && !cat.TenantExists(tenant) {
				return apiErr(http.StatusNotFound, "tenant %q not found", tenant)
			}
			return writeJSON(w, http.StatusOK, list)
		case http.MethodPost:
			return a.create(w, r, tenant)
		}
		return methodNotAllowed(r, "GET", "POST")
	case len(parts) == 2:
		tenant, name := parts[0], parts[1]
		switch r.Method {
		case http.MethodGet:
			v, err := cat.KeyManager(tenant, name)
			if err != nil {
				return err
			}
			w.Header().Set("ETag", v.ETag)
			return writeJSON(w, http.StatusOK, v)
		case http.MethodPut:
			return a.replace(w, r, tenant, name)
		case http.MethodDelete:
			if err := cat.DeleteKeyManager(r.Context(), tenant, name, r.Header.Get("If-Match")); err != nil {
				return err
			}
			a.audit(r, tenant, name, "delete")
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return methodNotAllowed(r, "GET", "PUT", "DELETE")
	case len(parts) == 3 && parts[2] == "status":
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, "GET")
		}
		km := cat.Runtime(parts[0], parts[1])
		if km == nil {
			return apiErr(http.StatusNotFound, "key manager %q of tenant %q not found", parts[1], parts[0])
		}
		return writeJSON(w, http.StatusOK, map[string]any{"key_manager": km.Status(), "cache": a.cacheStatus()})
	case len(parts) == 3 && parts[2] == "refresh":
		if r.Method != http.MethodPost {
			return methodNotAllowed(r, "POST")
		}
		km := cat.Runtime(parts[0], parts[1])
		if km == nil {
			return apiErr(http.StatusNotFound, "key manager %q of tenant %q not found", parts[1], parts[0])
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		a.audit(r, parts[0], parts[1], "refresh")
		if err := km.RefreshNow(ctx); err != nil {
			return writeJSON(w, http.StatusBadGateway, map[string]any{"error": "refresh failed: " + km.Status().LastError, "key_manager": km.Status()})
		}
		return writeJSON(w, http.StatusOK, map[string]any{"key_manager": km.Status()})
	}
	return apiErr(http.StatusNotFound, "no such resource: %s", r.URL.Path)
}

// apiError turns the catalog's typed failures into admin API errors:
// field errors 400, ErrInvalid 400, ErrNotFound 404, ErrConflict 409,
// ErrPrecondition 412, ErrUnavailable 503, ErrUpstream 502, anything
// else 500. Errors that
// are already API errors pass unchanged.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ae caddy.APIError
	if errors.As(err, &ae) {
		return err
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, catalog.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, catalog.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, catalog.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, catalog.ErrPrecondition):
		status = http.StatusPreconditionFailed
	case errors.Is(err, catalog.ErrUnavailable):
		status = http.StatusServiceUnavailable
	case errors.Is(err, catalog.ErrUpstream):
		status = http.StatusBadGateway
	}
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return apiErr(http.StatusInternalServerError, "encoding the response: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// writeFieldErrors answers 400 with every field problem.
func writeFieldErrors(w http.ResponseWriter, err error) error {
	var fe keymanagers.FieldErrors
	if errors.As(err, &fe) {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid key manager definition", "fields": fe})
	}
	return writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
}

func (a *adminAPI) audit(r *http.Request, tenant, name, action string) {
	via := a.via
	if via == "" {
		via = "admin"
	}
	a.app.logger.Info("keymanagers admin change", zap.String("via", via),
		zap.String("action", action), zap.String("tenant", tenant), zap.String("key_manager", name),
		zap.String("remote_addr", r.RemoteAddr))
}

// decodeBody reads a strict JSON body (unknown fields refused) of at most
// maxAdminBody bytes into v; what names the body in errors.
func decodeBody(r *http.Request, v any, what string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiErr(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(body) > maxAdminBody {
		return apiErr(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", maxAdminBody)
	}
	if err := caddy.StrictUnmarshalJSON(body, v); err != nil {
		return apiErr(http.StatusBadRequest, "invalid JSON %s: %v", what, err)
	}
	return nil
}

// decodeDefinition reads a strict JSON definition from the body.
func decodeDefinition(r *http.Request) (keymanagers.Definition, error) {
	var def keymanagers.Definition
	err := decodeBody(r, &def, "definition")
	return def, err
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request, tenant string) error {
	def, err := decodeDefinition(r)
	if err != nil {
		return err
	}
	v, err := a.app.catalog.CreateKeyManager(r.Context(), tenant, def)
	if err != nil {
		return err
	}
	a.audit(r, tenant, def.Name, "create")
	w.Header().Set("ETag", v.ETag)
	w.Header().Set("Location", a.resourcePath(r, tenant+"/"+def.Name))
	return writeJSON(w, http.StatusCreated, v)
}

func (a *adminAPI) replace(w http.ResponseWriter, r *http.Request, tenant, name string) error {
	def, err := decodeDefinition(r)
	if err != nil {
		return err
	}
	if def.Name == "" {
		def.Name = name
	}
	if def.Name != name {
		return apiErr(http.StatusBadRequest, "the body names %q but the path names %q; a Key Manager cannot be renamed", def.Name, name)
	}
	v, err := a.app.catalog.ReplaceKeyManager(r.Context(), tenant, def, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	a.audit(r, tenant, name, "replace")
	w.Header().Set("ETag", v.ETag)
	return writeJSON(w, http.StatusOK, v)
}

func isFieldErr(err error) bool {
	var fe keymanagers.FieldErrors
	return errors.As(err, &fe)
}

// discover fills a definition from a well-known URL or connector fields.
func (a *adminAPI) discover(w http.ResponseWriter, r *http.Request) error {
	def, err := decodeDefinition(r)
	if err != nil {
		return err
	}
	if def.Name == "" {
		def.Name = "discovered"
	}
	conn, err := connectorFor(&def)
	if err != nil {
		return writeFieldErrors(w, keymanagers.FieldErrors{{Field: "connector", Message: err.Error()}})
	}
	if err := conn.Derive(&def); err != nil {
		return writeFieldErrors(w, keymanagers.FieldErrors{{Field: "connector", Message: err.Error()}})
	}
	if def.WellKnownURL == "" {
		return writeFieldErrors(w, keymanagers.FieldErrors{{Field: "well_known_url", Message: "give well_known_url, or connector fields from which it follows"}})
	}
	timeout := time.Duration(def.Timeout)
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = keymanagers.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	md, err := keymanagers.DiscoverMetadata(ctx, def)
	if err != nil {
		return writeJSON(w, http.StatusBadGateway, map[string]any{"error": fmt.Sprintf("discovery at %s failed: %v", def.WellKnownURL, err)})
	}
	if def.Issuer == "" {
		def.Issuer = md.Issuer
	}
	if def.JWKSURL == "" && def.CertificatePEM == "" {
		def.JWKSURL = md.JWKSURI
	}
	if def.IntrospectionURL == "" {
		def.IntrospectionURL = md.IntrospectionEndpoint
	}
	if def.TokenURL == "" && (def.IntrospectionAuth == keymanagers.AuthBearer || def.EnableTokenGeneration) {
		def.TokenURL = md.TokenEndpoint
	}
	if def.RegistrationEndpoint == "" && def.EnableOAuthAppCreation {
		def.RegistrationEndpoint = md.RegistrationEndpoint
	}
	return writeJSON(w, http.StatusOK, def.Redacted())
}

func (a *adminAPI) revoke(w http.ResponseWriter, r *http.Request) error {
	var req catalog.RevokeRequest
	if err := decodeBody(r, &req, "revocation"); err != nil {
		return err
	}
	rv, err := a.app.catalog.Revoke(r.Context(), req)
	if err != nil {
		return err
	}
	a.audit(r, "", "", "revoke")
	return writeJSON(w, http.StatusCreated, rv)
}

// Interface guards
var (
	_ caddy.Provisioner = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)
