package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// edgeResponse is how one kind of failure looks at the edge.
type edgeResponse struct {
	status  int
	code    int // WSO2-compatible error code; 0: none
	message string
	bearer  string // RFC 6750 error; "" for none
}

var edge = map[keymanagers.Kind]edgeResponse{
	keymanagers.KindMissing:           {http.StatusUnauthorized, 900902, "Missing Credentials", ""},
	keymanagers.KindInvalid:           {http.StatusUnauthorized, 900901, "Invalid Credentials", "invalid_token"},
	keymanagers.KindExpired:           {http.StatusUnauthorized, 900903, "Access Token Expired", "invalid_token"},
	keymanagers.KindInsufficientScope: {http.StatusForbidden, 900910, "The access token does not allow you to access the requested resource", "insufficient_scope"},
	keymanagers.KindForbidden:         {http.StatusForbidden, 900908, "Resource forbidden", ""},
	keymanagers.KindUnknownTenant:     {http.StatusNotFound, 0, "Not Found", ""},
	keymanagers.KindUnavailable:       {http.StatusServiceUnavailable, 900900, "Unclassified Authentication Failure", ""},
	keymanagers.KindInternal:          {http.StatusInternalServerError, 900900, "Unclassified Authentication Failure", ""},
	keymanagers.KindBadRequest:        {http.StatusBadRequest, 0, "Bad Request", ""},
	keymanagers.KindInvalidProof:      {http.StatusUnauthorized, 900901, "Invalid Credentials", "invalid_dpop_proof"},
	keymanagers.KindNonceRequired:     {http.StatusUnauthorized, 900901, "Invalid Credentials", "use_dpop_nonce"},
}

// errorBody is the WSO2-compatible JSON error body.
type errorBody struct {
	Code        int    `json:"code,omitempty"`
	Message     string `json:"message"`
	Description string `json:"description"`
}

// deny answers a failed authentication. With handle_errors routes on the
// server it returns a Caddy handler error (so those routes decide the
// body); otherwise it writes the WSO2-compatible JSON body itself. Either
// way the status and WWW-Authenticate header are the same.
//
// An insufficient-scope denial names the scopes that would satisfy the
// resource in its challenge and body.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, tenant string, err error) error {
	e := keymanagers.Classify(err)
	required := keymanagers.RequiredScopes(err)
	resp := edge[e.Kind]
	h.logDenial(r, tenant, err, e)

	realm := h.Realm
	if realm == "" {
		realm = tenant
	}
	switch {
	case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden && resp.bearer != "":
		h.writeChallenges(w, r, e, resp, realm, required) // dpop.go
	case resp.status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	if repl != nil {
		repl.Set("keymanager.error.code", resp.code)
		repl.Set("keymanager.error.reason", e.Reason)
		repl.Set("keymanager.error.message", resp.message)
		repl.Set("keymanager.error.description", e.Description)
	}
	if hasErrorRoutes(r) {
		return caddyhttp.Error(resp.status, err)
	}
	desc := e.Description
	if len(required) > 0 {
		desc += " Required (any of): " + strings.Join(required, ", ") + "."
	}
	body, _ := json.Marshal(errorBody{Code: resp.code, Message: resp.message, Description: desc})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
	return nil
}

// hasErrorRoutes reports whether the server has handle_errors routes.
func hasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return ok && srv != nil && srv.Errors != nil && len(srv.Errors.Routes) > 0
}

// quote makes an RFC 7230 quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// drop control characters
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
