package caddymodule

// ServeHTTP unit tests of the keymanager handler, the way Caddy tests its
// own handlers (caddyauth_test.go): an httptest request carrying Caddy's
// HTTP Replacer, a caddyhttp.HandlerFunc as next that records what it saw,
// and no server. The Key Manager verifies with a pinned certificate, so
// nothing touches the network. Helpers here are prefixed "ht".

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

const (
	htIssuer = "https://idp.handler.test"
	htTenant = "acme"
	htKM     = "pinned"
)

// htEnv is one tenant (acme) with one pinned-certificate Key Manager and
// two applications of it:
//
//	subscribed    client id client-sub    subscribed to orders-api
//	elsewhere     client id client-nosub  subscribed to billing-api
//
// (client ids not listed belong to no application).
type htEnv struct {
	app   *App
	key   fakeidp.Key // signs tokens the Key Manager accepts
	other fakeidp.Key // the same algorithm and kid, another key

	projected []string // claims the handlers built so far project
}

func newHTEnv(t *testing.T) *htEnv {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	def, err := keymanagers.Prepare(keymanagers.Definition{Name: htKM, Issuer: htIssuer,
		CertificatePEM: fakeidp.SelfSignedPEM(t, priv, "handler", false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	km, err := keymanagers.NewKeyManager(htTenant, def, keymanagers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(km.Close)
	reg, err := keymanagers.NewRegistry(map[string][]*keymanagers.KeyManager{htTenant: {km}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err = reg.WithApplications(map[string][]*keymanagers.Application{htTenant: {
		{ID: "subscribed", KeyManager: htKM, ClientID: "client-sub", Subscriptions: []string{"orders-api"}},
		{ID: "elsewhere", KeyManager: htKM, ClientID: "client-nosub", Subscriptions: []string{"billing-api"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := keymanagers.NewResultCache(keymanagers.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	return &htEnv{
		app:   &App{gateway: keymanagers.NewGateway(reg, cache, nil, nil)},
		key:   fakeidp.Key{KID: "k1", Alg: "ES256", Priv: priv},
		other: fakeidp.Key{KID: "k1", Alg: "ES256", Priv: otherPriv},
	}
}

// handler finishes h the way Provision does (route, forwarded headers,
// projected claims, defaults) without a Caddy context.
func (e *htEnv) handler(t *testing.T, h Handler) *Handler {
	t.Helper()
	h.app = e.app
	h.logger = zap.NewNop()
	if h.MaxTokenSize == 0 {
		h.MaxTokenSize = DefaultMaxTokenSize
	}
	route, err := keymanagers.CompileRoute(h.routeConfig())
	if err != nil {
		t.Fatal(err)
	}
	h.route = route
	h.dynTenant = strings.Contains(h.Tenant, "{")
	claims := append([]string(nil), route.NeededClaims()...)
	for _, f := range h.ForwardClaim {
		h.forward = append(h.forward, forwardHeader{claim: f.Claim, header: http.CanonicalHeaderKey(f.Header), folded: foldHeaderName(f.Header)})
		claims = append(claims, f.Claim)
	}
	// As App.addProjectedClaims does: the union over every handler.
	e.projected = append(e.projected, claims...)
	e.app.gateway.SetProjectedClaims(e.projected)
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return &h
}

// mint signs a token of the Key Manager: iss, sub alice, exp in an hour,
// scope orders:read, a fresh jti, then claims on top.
func (e *htEnv) mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	return atkSign(t, e.key, htIssuer, claims)
}

// htResult is what one ServeHTTP did.
type htResult struct {
	err        error
	status     int
	header     http.Header // response headers
	body       []byte
	nextCalled bool
	nextHeader http.Header // request headers as next saw them
	nextUserID string      // {http.auth.user.id} as next saw it
	repl       *caddy.Replacer
}

// placeholder looks name up in the request's Replacer, where a later
// handler (header_up, a log field, handle_errors) finds it; "<unset>"
// when no provider knows it.
func (r htResult) placeholder(name string) string {
	v, ok := r.repl.GetString(name)
	if !ok {
		return "<unset>"
	}
	return v
}

// htServe runs h on req. With srv non-nil, the request context carries it
// as caddyhttp's server does (so handle_errors routes are visible).
func htServe(h *Handler, req *http.Request, srv *caddyhttp.Server) htResult {
	if srv != nil {
		*req = *req.WithContext(context.WithValue(req.Context(), caddyhttp.ServerCtxKey, srv))
	}
	var res htResult
	res.repl = caddyhttp.NewTestReplacer(req)
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.nextCalled = true
		res.nextHeader = r.Header.Clone()
		res.nextUserID, _ = res.repl.GetString("http.auth.user.id")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	res.err = h.ServeHTTP(w, req, next)
	res.status = w.Code
	res.header = w.Header()
	res.body = w.Body.Bytes()
	return res
}

func htRequest(method, path, token string) *http.Request {
	req := httptest.NewRequest(method, "http://api.handler.test"+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// htBody decodes the JSON error body.
func htBody(t *testing.T, res htResult) errorBody {
	t.Helper()
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var b errorBody
	if err := json.Unmarshal(res.body, &b); err != nil {
		t.Fatalf("body %q is not the JSON error body: %v", res.body, err)
	}
	return b
}

func TestServeHTTPForwardsClaimsAndSetsPlaceholders(t *testing.T) {
	e := newHTEnv(t)
	forward := []ForwardClaim{{Claim: "sub", Header: "X-User-Id"}, {Claim: "email", Header: "X-User-Email"}}
	full := map[string]any{"azp": "web-client", "scope": "orders:read orders:write", "email": "alice@acme.test"}
	noEmail := map[string]any{"azp": "web-client", "scope": "orders:read orders:write"}

	cases := []struct {
		name      string
		keepToken bool
		claims    map[string]any
		inbound   map[string][]string // request headers as sent (raw keys)
		want      map[string]string   // headers next must see; "" means absent
		wantGone  []string            // raw header keys next must not see
	}{
		{
			name:   "claim headers are set from the token",
			claims: full,
			want:   map[string]string{"X-User-Id": "alice", "X-User-Email": "alice@acme.test"},
		},
		{
			name:     "spoofed headers and their underscore aliases are replaced or removed",
			claims:   full,
			inbound:  map[string][]string{"X-User-Id": {"mallory"}, "X-User_Id": {"mallory"}, "X-User_email": {"mallory@evil.test"}},
			want:     map[string]string{"X-User-Id": "alice", "X-User-Email": "alice@acme.test"},
			wantGone: []string{"X-User_Id", "X-User_email"},
		},
		{
			name:     "an absent claim leaves its header unset even when the client sent one",
			claims:   noEmail,
			inbound:  map[string][]string{"X-User-Email": {"mallory@evil.test"}, "X-User_Email": {"mallory@evil.test"}},
			want:     map[string]string{"X-User-Id": "alice", "X-User-Email": ""},
			wantGone: []string{"X-User_Email"},
		},
		{
			name:   "the Authorization header is removed by default",
			claims: full,
			want:   map[string]string{"Authorization": ""},
		},
		{
			name:      "keep_token keeps the Authorization header",
			keepToken: true,
			claims:    full,
			want:      map[string]string{"Authorization": "<token>"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := e.handler(t, Handler{Tenant: htTenant, ForwardClaim: forward, KeepToken: tc.keepToken})
			tok := e.mint(t, tc.claims)
			req := htRequest("GET", "/orders/1", tok)
			for k, v := range tc.inbound {
				req.Header[k] = v
			}
			res := htServe(h, req, nil)
			if res.err != nil || res.status != http.StatusOK || !res.nextCalled {
				t.Fatalf("err %v, status %d, next called %v, body %s", res.err, res.status, res.nextCalled, res.body)
			}
			for k, v := range tc.want {
				if v == "<token>" {
					v = "Bearer " + tok
				}
				if got := res.nextHeader.Values(k); v == "" && len(got) != 0 || v != "" && (len(got) != 1 || got[0] != v) {
					t.Errorf("next saw %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.wantGone {
				if v, ok := res.nextHeader[k]; ok {
					t.Errorf("next saw inbound header %s = %q, want it removed", k, v)
				}
			}

			wantPH := map[string]string{
				"keymanager.tenant":      htTenant,
				"keymanager.key_manager": htKM,
				"keymanager.issuer":      htIssuer,
				"keymanager.subject":     "alice",
				"keymanager.client_id":   "web-client",
				"keymanager.scopes":      "orders:read orders:write",
				"keymanager.claims.sub":  "alice",
				"keymanager.claims.nope": "", // an absent claim is empty, not left literal
				"http.auth.user.id":      "alice",
			}
			if email, ok := tc.claims["email"].(string); ok {
				wantPH["keymanager.claims.email"] = email
			} else {
				wantPH["keymanager.claims.email"] = ""
			}
			for name, want := range wantPH {
				if got := res.placeholder(name); got != want {
					t.Errorf("{%s} = %q after next ran, want %q", name, got, want)
				}
			}
			if res.nextUserID != "alice" {
				t.Errorf("{http.auth.user.id} = %q inside next, want alice", res.nextUserID)
			}
		})
	}
}

func TestServeHTTPInsufficientScopeChallenge(t *testing.T) {
	e := newHTEnv(t)
	h := e.handler(t, Handler{Tenant: htTenant, Realm: "orders",
		Scope: []ScopeRule{{Method: "GET", Path: "/orders/{id}", Scopes: []string{"orders:write", "orders:admin"}}}})

	t.Run("a token with a required scope passes", func(t *testing.T) {
		res := htServe(h, htRequest("GET", "/orders/7", e.mint(t, map[string]any{"scope": "orders:read orders:admin"})), nil)
		if res.err != nil || res.status != http.StatusOK || !res.nextCalled {
			t.Fatalf("err %v, status %d, next called %v, body %s", res.err, res.status, res.nextCalled, res.body)
		}
	})

	t.Run("a token lacking the route's scopes gets 403 insufficient_scope naming them", func(t *testing.T) {
		res := htServe(h, htRequest("GET", "/orders/7", e.mint(t, map[string]any{"scope": "orders:read"})), nil)
		if res.err != nil {
			t.Fatalf("returned %v; without handle_errors the handler writes the response", res.err)
		}
		if res.status != http.StatusForbidden || res.nextCalled {
			t.Fatalf("status %d, next called %v, want 403 and no next", res.status, res.nextCalled)
		}
		ch := res.header.Get("WWW-Authenticate")
		const prefix = `Bearer realm="orders", error="insufficient_scope", error_description="`
		if !strings.HasPrefix(ch, prefix) || !strings.HasSuffix(ch, `", scope="orders:write orders:admin"`) || !wwwAuthenticate.MatchString(ch) {
			t.Errorf("WWW-Authenticate = %q, want %s...\", scope=\"orders:write orders:admin\"", ch, prefix)
		}
		if desc := strings.TrimSuffix(strings.TrimPrefix(ch, prefix), `", scope="orders:write orders:admin"`); desc == "" || strings.Contains(desc, `"`) {
			t.Errorf("error_description %q is empty or not one quoted-string", desc)
		}
		b := htBody(t, res)
		if b.Code != 900910 || !strings.Contains(b.Description, "orders:write") || !strings.Contains(b.Description, "orders:admin") {
			t.Errorf("body %+v, want code 900910 with orders:write and orders:admin in the description", b)
		}
		if got := res.placeholder("keymanager.error.code"); got != "900910" {
			t.Errorf("{keymanager.error.code} = %q, want 900910", got)
		}
		if got := res.placeholder("keymanager.error.reason"); got != keymanagers.ReasonScopeMissing {
			t.Errorf("{keymanager.error.reason} = %q, want %s", got, keymanagers.ReasonScopeMissing)
		}
	})
}

func TestServeHTTPSubscriptions(t *testing.T) {
	e := newHTEnv(t)
	h := e.handler(t, Handler{Tenant: htTenant, API: "orders-api", RequireSubscription: true})
	cases := []struct {
		name     string
		clientID string
		status   int
		code     int
		reason   string
	}{
		{"an application subscribed to the API passes", "client-sub", http.StatusOK, 0, ""},
		{"an application not subscribed to the API gets 403", "client-nosub", http.StatusForbidden, 900908, keymanagers.ReasonSubscriptionMissing},
		{"a client id of no application gets 403", "client-unknown", http.StatusForbidden, 900908, keymanagers.ReasonApplicationUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := htServe(h, htRequest("GET", "/orders/1", e.mint(t, map[string]any{"azp": tc.clientID})), nil)
			if res.err != nil || res.status != tc.status {
				t.Fatalf("err %v, status %d, want %d (body %s)", res.err, res.status, tc.status, res.body)
			}
			if res.nextCalled != (tc.status == http.StatusOK) {
				t.Fatalf("next called %v, want %v", res.nextCalled, tc.status == http.StatusOK)
			}
			if tc.status == http.StatusOK {
				return
			}
			if b := htBody(t, res); b.Code != tc.code {
				t.Errorf("body code %d, want %d", b.Code, tc.code)
			}
			if got := res.placeholder("keymanager.error.reason"); got != tc.reason {
				t.Errorf("{keymanager.error.reason} = %q, want %s", got, tc.reason)
			}
		})
	}
}

func TestServeHTTPUnauthenticated(t *testing.T) {
	e := newHTEnv(t)
	static := e.handler(t, Handler{Tenant: htTenant})
	dynamic := e.handler(t, Handler{Tenant: "{http.request.header.X-Tenant}"})
	expired := e.mint(t, map[string]any{jwt.ExpirationKey: time.Now().Add(-time.Hour), jwt.IssuedAtKey: time.Now().Add(-2 * time.Hour)})
	forged := atkSign(t, e.other, htIssuer, nil)

	cases := []struct {
		name      string
		h         *Handler
		token     string
		tenantHdr string
		status    int
		code      int
		challenge string // exact, or a prefix ending in `error="invalid_token"`
		reason    string
	}{
		{name: "no token is 401 missing credentials without an error parameter", h: static,
			status: 401, code: 900902, challenge: `Bearer realm="acme"`, reason: keymanagers.ReasonTokenMissing},
		{name: "an expired token is 401 access token expired", h: static, token: expired,
			status: 401, code: 900903, challenge: `Bearer realm="acme", error="invalid_token"`, reason: keymanagers.ReasonExpired},
		{name: "a token signed with another key is 401 invalid credentials", h: static, token: forged,
			status: 401, code: 900901, challenge: `Bearer realm="acme", error="invalid_token"`, reason: keymanagers.ReasonSignatureInvalid},
		{name: "an unknown tenant from a placeholder is 404", h: dynamic, token: e.mint(t, nil), tenantHdr: "nobody",
			status: 404, reason: keymanagers.ReasonTenantUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := htRequest("GET", "/orders/1", tc.token)
			if tc.tenantHdr != "" {
				req.Header.Set("X-Tenant", tc.tenantHdr)
			}
			res := htServe(tc.h, req, nil)
			if res.err != nil || res.status != tc.status || res.nextCalled {
				t.Fatalf("err %v, status %d, next called %v; want %d without next (body %s)", res.err, res.status, res.nextCalled, tc.status, res.body)
			}
			ch := res.header.Get("WWW-Authenticate")
			switch {
			case tc.challenge == "":
				if ch != "" {
					t.Errorf("WWW-Authenticate = %q, want none", ch)
				}
			case strings.HasSuffix(tc.challenge, `error="invalid_token"`):
				if !strings.HasPrefix(ch, tc.challenge+`, error_description="`) || !wwwAuthenticate.MatchString(ch) {
					t.Errorf("WWW-Authenticate = %q, want %s, error_description=...", ch, tc.challenge)
				}
			default:
				if ch != tc.challenge {
					t.Errorf("WWW-Authenticate = %q, want %q", ch, tc.challenge)
				}
			}
			if b := htBody(t, res); b.Code != tc.code {
				t.Errorf("body code %d, want %d (%+v)", b.Code, tc.code, b)
			}
			if got := res.placeholder("keymanager.error.reason"); got != tc.reason {
				t.Errorf("{keymanager.error.reason} = %q, want %s", got, tc.reason)
			}
			for _, name := range []string{"keymanager.subject", "http.auth.user.id"} {
				if got := res.placeholder(name); got != "<unset>" && got != "" {
					t.Errorf("{%s} = %q on a denial, want it unset", name, got)
				}
			}
		})
	}
}

func TestServeHTTPHandleErrorsBranch(t *testing.T) {
	e := newHTEnv(t)
	h := e.handler(t, Handler{Tenant: htTenant,
		Scope: []ScopeRule{{Method: "GET", Path: "/orders/{id}", Scopes: []string{"orders:write"}}}})
	withErrors := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: caddyhttp.RouteList{{}}}}
	noErrorRoutes := &caddyhttp.Server{}

	failures := []struct {
		name      string
		token     string
		status    int
		challenge string // prefix of WWW-Authenticate
	}{
		{"no token", "", http.StatusUnauthorized, `Bearer realm="acme"`},
		{"insufficient scope", e.mint(t, nil), http.StatusForbidden, `Bearer realm="acme", error="insufficient_scope"`},
	}
	for _, f := range failures {
		t.Run(f.name+": with handle_errors routes the handler returns the error and writes no body", func(t *testing.T) {
			res := htServe(h, htRequest("GET", "/orders/1", f.token), withErrors)
			var he caddyhttp.HandlerError
			if !errors.As(res.err, &he) || he.StatusCode != f.status {
				t.Fatalf("returned %v (%T), want a caddyhttp.HandlerError with status %d", res.err, res.err, f.status)
			}
			if res.nextCalled || len(res.body) != 0 || res.header.Get("Content-Type") != "" {
				t.Errorf("next called %v, body %q, Content-Type %q: want no next and nothing written",
					res.nextCalled, res.body, res.header.Get("Content-Type"))
			}
			if ch := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, f.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it set (%s...) for the error routes to keep", ch, f.challenge)
			}
		})
		for _, srv := range []struct {
			name string
			srv  *caddyhttp.Server
		}{{"without a server in the context", nil}, {"on a server without handle_errors routes", noErrorRoutes}} {
			t.Run(f.name+": "+srv.name+" the handler writes the JSON body and returns nil", func(t *testing.T) {
				res := htServe(h, htRequest("GET", "/orders/1", f.token), srv.srv)
				if res.err != nil || res.status != f.status || res.nextCalled {
					t.Fatalf("err %v, status %d, next called %v; want nil, %d, no next", res.err, res.status, res.nextCalled, f.status)
				}
				if b := htBody(t, res); b.Code == 0 || b.Message == "" {
					t.Errorf("body %+v, want a code and a message", b)
				}
				if ch := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, f.challenge) {
					t.Errorf("WWW-Authenticate = %q, want %s...", ch, f.challenge)
				}
			})
		}
	}
}
