package caddymodule

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// CSRF protection of the portal's writes (POST, PUT, PATCH, DELETE), two
// checks that must both pass:
//
//  1. same origin: Sec-Fetch-Site, when sent, must be "same-origin", and
//     Origin, when sent, must name the request's own host; a write with
//     neither header is refused (every browser sends at least one);
//  2. double submit: the X-CSRF-Token header must equal the kmportal_csrf
//     cookie (SameSite=Strict), which the page and every API read hand out.
const (
	csrfCookie = "kmportal_csrf"
	csrfHeader = "X-CSRF-Token"
	// csrfTokenLen is the length of a token: 32 random bytes, base64url.
	csrfTokenLen = 43
)

// issueCSRFToken sets the CSRF cookie unless the request already carries a
// well-formed one.
func issueCSRFToken(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == csrfTokenLen {
		return
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	http.SetCookie(w, &http.Cookie{
		Name:     csrfCookie,
		Value:    base64.RawURLEncoding.EncodeToString(b),
		Path:     portalCookiePath(r),
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil,
		// Not HttpOnly: the page reads it to send it back in X-CSRF-Token.
	})
}

// portalCookiePath is the path the portal is mounted at: the original
// request path minus the part handle_path left to the handler.
func portalCookiePath(r *http.Request) string {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil {
		return "/"
	}
	prefix, ok := strings.CutSuffix(orig.URL.Path, r.URL.Path)
	if !ok {
		return "/"
	}
	return strings.TrimSuffix(prefix, "/") + "/"
}

// checkCSRF returns why a write is refused, or "" when it passes.
func checkCSRF(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site == "" && origin == "" {
		return "write refused: the request has neither an Origin nor a Sec-Fetch-Site header; the portal accepts writes only from its own page in a browser"
	}
	if site != "" && site != "same-origin" {
		return fmt.Sprintf("cross-site write refused: Sec-Fetch-Site is %q; the portal accepts writes only from its own page (same-origin)", site)
	}
	if origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("cross-origin write refused: Origin %q is not this portal's origin (host %q)", origin, r.Host)
		}
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return "CSRF token missing: the " + csrfCookie + " cookie is not set; reload the portal page"
	}
	h := r.Header.Get(csrfHeader)
	if h == "" {
		return "CSRF token missing: send the " + csrfCookie + " cookie's value in the " + csrfHeader + " header"
	}
	if subtle.ConstantTimeCompare([]byte(h), []byte(c.Value)) != 1 {
		return "CSRF token mismatch: the " + csrfHeader + " header does not match the " + csrfCookie + " cookie; reload the portal page"
	}
	return ""
}
