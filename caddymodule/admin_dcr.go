package caddymodule

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers/catalog"
)

// Developer keys on the admin API: POST .../applications/{id}/token
// obtains a client-credentials token for an application the gateway
// registered (the create with register: true is in admin_apps.go). The
// portal mounts the same handlers.

// dcrTimeout bounds one developer-key call to a Key Manager (each of its
// requests is bounded by the Key Manager's own timeout too).
const dcrTimeout = 30 * time.Second

// tokenRequest is the body of a token generation request.
type tokenRequest struct {
	Scopes []string `json:"scopes,omitempty"`
}

// serveApplicationToken handles POST /keymanagers/{tenant}/applications/{id}/token.
func (a *adminAPI) serveApplicationToken(w http.ResponseWriter, r *http.Request, tenant, id string) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r, "POST")
	}
	var req tokenRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req, "token request"); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), dcrTimeout)
	defer cancel()
	tok, err := a.app.catalog.ApplicationToken(ctx, tenant, id, req.Scopes)
	if err != nil {
		return err
	}
	a.audit(r, tenant, "application "+id, "generate_token")
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, tok)
}

// deleteOptions reads ?force=true on an application delete: delete it
// here even when the Key Manager refuses to delete its client.
func deleteOptions(r *http.Request) (catalog.DeleteOptions, error) {
	var opts catalog.DeleteOptions
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return opts, apiErr(http.StatusBadRequest, "force: %q is not true or false", v)
		}
		opts.Force = b
	}
	return opts, nil
}
