package caddymodule

// Attack suite of the keymanager handler: hostile Authorization headers,
// tenant headers and paths against Handler.ServeHTTP, with no network (a
// pinned-certificate Key Manager and a shared-secret one; a closed local
// port for the 503 case). Every case names the attack and the expected
// status and WSO2 code. For every refusal: the status is one of
// 400/401/403/404/503, the next handler is not called, the body is the
// JSON error body, neither body, headers nor placeholders contain the
// token, and WWW-Authenticate stays a well-formed challenge. All of it
// runs with a DEBUG logger whose entries are searched for tokens,
// signatures, secrets and Authorization values afterwards.
//
// Helpers here are prefixed "atk" so they cannot collide with helpers of
// other test files of the package.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/scopes"
)

const (
	atkIssuer       = "https://idp.attack.test"
	atkHMACIssuer   = "https://hmac.attack.test"
	atkSharedSecret = "atk-handler-shared-secret-9d8c7b6a5f4e3d2c"
	atkClientSecret = "atk-handler-client-secret-Mn4Bv6Cx8Zl0Kj2H"
)

// atkEnv is a Handler over two tenants (no network needed):
//
//	acme: pinned (ES256 pinned certificate), hmac (shared secret)
//	down: down (introspection at a closed local port: 503)
//
// The handler reads its tenant from X-Tenant and has one scope rule
// (GET /admin needs admin), so 403 and 400 are reachable too.
type atkEnv struct {
	h       *Handler
	big     *Handler // the same, with max_token_size 16 KiB
	logs    *observer.ObservedLogs
	priv    *ecdsa.PrivateKey
	secrets []string
}

func newAtkEnv(t *testing.T) *atkEnv {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := fakeidp.SelfSignedPEM(t, priv, "attack", false)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/introspect"
	dead.Close()
	build := func(tenant string, d keymanagers.Definition) *keymanagers.KeyManager {
		def, err := keymanagers.Prepare(d, nil)
		if err != nil {
			t.Fatalf("Prepare(%s): %v", d.Name, err)
		}
		km, err := keymanagers.NewKeyManager(tenant, def, keymanagers.Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(km.Close)
		return km
	}
	reg, err := keymanagers.NewRegistry(map[string][]*keymanagers.KeyManager{
		"acme": {
			build("acme", keymanagers.Definition{Name: "pinned", Issuer: atkIssuer,
				CertificatePEM: certPEM}),
			build("acme", keymanagers.Definition{Name: "hmac", Issuer: atkHMACIssuer, SharedSecret: atkSharedSecret}),
		},
		"down": {
			build("down", keymanagers.Definition{Name: "down", Issuer: "https://down.attack.test", IntrospectionURL: deadURL,
				ClientID: "gw", ClientSecret: atkClientSecret, Timeout: keymanagers.Duration(500 * time.Millisecond)}),
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := keymanagers.NewResultCache(keymanagers.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	app := &App{gateway: keymanagers.NewGateway(reg, cache, logger, nil)}
	route, err := keymanagers.CompileRoute(keymanagers.RouteConfig{Scopes: []scopes.Rule{{Method: "GET", Path: "/admin", Scopes: []string{"admin"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(max int) *Handler {
		return &Handler{Tenant: "{http.request.header.X-Tenant}", dynTenant: true, app: app, logger: logger,
			MaxTokenSize: max, route: route}
	}
	return &atkEnv{h: mk(DefaultMaxTokenSize), big: mk(16 << 10), logs: logs, priv: priv,
		secrets: []string{atkSharedSecret, atkClientSecret}}
}

// mint signs an ES256 token of the pinned Key Manager with claims over
// the defaults (iss, sub, exp, iat, scope).
func (e *atkEnv) mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	return atkSign(t, fakeidp.Key{KID: "k1", Alg: "ES256", Priv: e.priv}, atkIssuer, claims)
}

// atkSign signs claims over the defaults (iss, sub, exp, iat, scope, jti)
// with k.
func atkSign(t *testing.T, k fakeidp.Key, iss string, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	base := map[string]any{jwt.IssuerKey: iss, jwt.SubjectKey: "alice", jwt.ExpirationKey: now.Add(time.Hour),
		jwt.IssuedAtKey: now, "scope": "orders:read", "jti": fmt.Sprint(now.UnixNano())}
	for n, v := range claims {
		base[n] = v
	}
	return fakeidp.Mint(t, k, base, nil)
}

// atkRequest is one request of an attack case.
type atkRequest struct {
	tenant *string  // X-Tenant; nil: "acme"
	auth   []string // Authorization header values, as sent
	path   string   // default /orders/1
}

// atkResult is what one ServeHTTP did.
type atkResult struct {
	status     int
	err        error
	nextCalled bool
	nextAuth   []string // Authorization values the next handler saw
	header     http.Header
	body       []byte
	errDesc    string // {keymanager.error.description}
	subject    string // {keymanager.subject} after success
}

func (e *atkEnv) serve(h *Handler, rq atkRequest) atkResult {
	path := rq.path
	if path == "" {
		path = "/orders/1"
	}
	req := httptest.NewRequest("GET", "http://api.attack.test"+path, nil)
	tenant := "acme"
	if rq.tenant != nil {
		tenant = *rq.tenant
	}
	if tenant != "\x00absent" {
		req.Header["X-Tenant"] = []string{tenant}
	}
	if rq.auth != nil {
		req.Header["Authorization"] = append([]string(nil), rq.auth...)
	}
	repl := caddyhttp.NewTestReplacer(req)
	w := httptest.NewRecorder()
	var res atkResult
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.nextCalled = true
		res.nextAuth = r.Header.Values("Authorization")
		res.subject, _ = repl.GetString("keymanager.subject")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	res.err = h.ServeHTTP(w, req, next)
	res.status = w.Code
	res.header = w.Header()
	res.body = w.Body.Bytes()
	res.errDesc, _ = repl.GetString("keymanager.error.description")
	return res
}

// wwwAuthenticate is an RFC 6750 challenge as the handler writes it:
// Bearer realm="...", then error, error_description and scope params,
// each a quoted-string without control characters.
var wwwAuthenticate = regexp.MustCompile(`^Bearer realm="(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"` +
	`(?:, (?:error|error_description|scope)="(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*")*$`)

// atkNeedles are the secrets of an Authorization value that must never be
// echoed or logged: the whole value, the credential after the scheme,
// the token's signature part, and long prefixes and suffixes. Needles
// shorter than 12 bytes would match innocent text and are left out.
func atkNeedles(values []string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 12 {
			out = append(out, s)
		}
	}
	for _, v := range values {
		add(v)
		cred := v
		if i := strings.IndexByte(v, ' '); i >= 0 {
			cred = strings.TrimLeft(v[i+1:], " ")
		}
		add(cred)
		if i := strings.LastIndexByte(cred, '.'); i >= 0 {
			add(cred[i+1:])
		}
		if len(cred) >= 64 {
			add(cred[len(cred)-32:])
			if !strings.HasPrefix(cred, "eyJ") {
				add(cred[:32])
			}
		}
	}
	return out
}

func atkContains(s string, needles []string) (string, bool) {
	for _, n := range needles {
		if strings.Contains(s, n) {
			if len(n) > 40 {
				n = n[:40] + "..."
			}
			return n, true
		}
	}
	return "", false
}

// atkCase is one attack: a request and the outcome expected.
type atkCase struct {
	name   string
	req    atkRequest
	status int // expected status
	code   int // expected WSO2 code in the body; 0: none
	desc   string
	h      *Handler // default env.h
}

func ptr(s string) *string { return &s }

func TestAttack_HandlerRefusesHostileRequestsWithoutLeaking(t *testing.T) {
	e := newAtkEnv(t)
	valid := e.mint(t, nil)
	admin := e.mint(t, map[string]any{"scope": "orders:read admin"})
	expired := e.mint(t, map[string]any{jwt.ExpirationKey: time.Now().Add(-time.Hour), jwt.IssuedAtKey: time.Now().Add(-2 * time.Hour)})
	unknownIss := atkSign(t, fakeidp.Key{KID: "k1", Alg: "ES256", Priv: e.priv}, "https://evil.attack.test", nil)
	hmacOK := atkSign(t, fakeidp.Key{KID: "k1", Alg: "HS256", Secret: []byte(atkSharedSecret)}, atkHMACIssuer, nil)
	hmacBad := atkSign(t, fakeidp.Key{KID: "k1", Alg: "HS256", Secret: []byte("not-the-secret-at-all-0123456789")}, atkHMACIssuer, nil)
	// Valid and correctly signed, but over 8 KiB: if it were parsed at
	// all it would be accepted (the 16 KiB handler proves it).
	oversized := e.mint(t, map[string]any{"padding": strings.Repeat("p", 7000)})
	if len(oversized) <= DefaultMaxTokenSize {
		t.Fatalf("oversized token is only %d bytes", len(oversized))
	}
	quoteTok := valid[:30] + `"` + valid[30:]
	injection := `abc", error="none", error_description="owned", x="`
	const (
		noTok  = "The access token is larger than this API accepts."
		opaque = "The access token is not a JWT and no Key Manager of this API validates opaque tokens."
	)

	cases := []atkCase{
		// Controls.
		{name: "control: a valid token passes", req: atkRequest{auth: []string{"Bearer " + valid}}, status: 200},
		{name: "control: the oversized token passes a 16 KiB handler", h: e.big, req: atkRequest{auth: []string{"Bearer " + oversized}}, status: 200},
		{name: "control: shared-secret token passes", req: atkRequest{auth: []string{"Bearer " + hmacOK}}, status: 200},

		// The scheme.
		{name: "no Authorization header", req: atkRequest{}, status: 401, code: 900902},
		{name: "two Authorization headers, both valid", req: atkRequest{auth: []string{"Bearer " + valid, "Bearer " + valid}}, status: 401, code: 900901},
		{name: "two Authorization headers, one empty", req: atkRequest{auth: []string{"", "Bearer " + valid}}, status: 401, code: 900901},
		{name: "empty Authorization header", req: atkRequest{auth: []string{""}}, status: 401, code: 900902},
		{name: "Bearer without a token", req: atkRequest{auth: []string{"Bearer"}}, status: 401, code: 900902},
		{name: "Bearer and one space", req: atkRequest{auth: []string{"Bearer "}}, status: 401, code: 900902},
		{name: "Bearer and spaces only", req: atkRequest{auth: []string{"Bearer      "}}, status: 401, code: 900902},
		{name: "lowercase bearer is the same scheme", req: atkRequest{auth: []string{"bearer " + valid}}, status: 200},
		{name: "uppercase BEARER is the same scheme", req: atkRequest{auth: []string{"BEARER " + valid}}, status: 200},
		{name: "several spaces after Bearer", req: atkRequest{auth: []string{"Bearer    " + valid}}, status: 200},
		{name: "Basic credentials", req: atkRequest{auth: []string{"Basic dXNlcjpzM2NyZXQtcGFzc3dvcmQ="}}, status: 401, code: 900902},
		{name: "Basic scheme carrying a valid JWT", req: atkRequest{auth: []string{"Basic " + valid}}, status: 401, code: 900902},
		{name: "Bearerx scheme", req: atkRequest{auth: []string{"Bearerx " + valid}}, status: 401, code: 900902},
		{name: "tab instead of the space", req: atkRequest{auth: []string{"Bearer\t" + valid}}, status: 401, code: 900902},
		{name: "leading space before Bearer", req: atkRequest{auth: []string{" Bearer " + valid}}, status: 401, code: 900902},
		{name: "trailing tab after the token", req: atkRequest{auth: []string{"Bearer " + valid + "\t"}}, status: 401, code: 900901},
		{name: "trailing space after the token", req: atkRequest{auth: []string{"Bearer " + valid + " "}}, status: 401, code: 900901},
		{name: "two tokens separated by a space", req: atkRequest{auth: []string{"Bearer " + valid + " " + admin}}, status: 401, code: 900901},
		{name: "two credentials separated by a comma", req: atkRequest{auth: []string{"Bearer " + valid + ",Bearer " + admin}}, status: 401, code: 900901},

		// The token's characters.
		{name: "non-ASCII token", req: atkRequest{auth: []string{"Bearer tökén-ünïcödé-🙂"}}, status: 401, code: 900901},
		{name: "Cyrillic look-alike token", req: atkRequest{auth: []string{"Bearer еуЈhbGciOiJFUzI1NiJ9.е30.е30"}}, status: 401, code: 900901},
		{name: "invalid UTF-8 token", req: atkRequest{auth: []string{"Bearer abc\xff\xfedef-0123456789"}}, status: 401, code: 900901},
		{name: "NUL byte in the token", req: atkRequest{auth: []string{"Bearer " + valid[:20] + "\x00" + valid[20:]}}, status: 401, code: 900901},
		{name: "double quote in the token", req: atkRequest{auth: []string{"Bearer " + quoteTok}}, status: 401, code: 900901},
		{name: "challenge injection through the token", req: atkRequest{auth: []string{"Bearer " + injection}}, status: 401, code: 900901},
		{name: "comma and backslash in the token", req: atkRequest{auth: []string{`Bearer abc,def\ghi-0123456789`}}, status: 401, code: 900901},
		{name: "percent-encoded token", req: atkRequest{auth: []string{"Bearer " + strings.ReplaceAll(valid, ".", "%2E")}}, status: 401, code: 900901},

		// Size.
		{name: "token of 8 KiB + 1 is refused before parsing", req: atkRequest{auth: []string{"Bearer " + strings.Repeat("A", DefaultMaxTokenSize+1)}}, status: 401, code: 900901, desc: noTok},
		{name: "valid oversized token is refused before parsing", req: atkRequest{auth: []string{"Bearer " + oversized}}, status: 401, code: 900901, desc: noTok},
		{name: "oversized header of spaces is refused before parsing", req: atkRequest{auth: []string{"Bearer " + strings.Repeat(" ", DefaultMaxTokenSize) + valid}}, status: 401, code: 900901, desc: noTok},
		{name: "token of exactly 8 KiB is parsed", req: atkRequest{auth: []string{"Bearer " + strings.Repeat("A", DefaultMaxTokenSize)}}, status: 401, code: 900901, desc: opaque},
		{name: "1 MiB Authorization header", req: atkRequest{auth: []string{"Bearer " + strings.Repeat("x", 1<<20)}}, status: 401, code: 900901, desc: noTok},

		// Token content.
		{name: "expired token", req: atkRequest{auth: []string{"Bearer " + expired}}, status: 401, code: 900903},
		{name: "token of an unknown issuer", req: atkRequest{auth: []string{"Bearer " + unknownIss}}, status: 401, code: 900901},
		{name: "HS256 with another secret", req: atkRequest{auth: []string{"Bearer " + hmacBad}}, status: 401, code: 900901},
		{name: "JWE-shaped token", req: atkRequest{auth: []string{"Bearer eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn"}}, status: 401, code: 900901},

		// The tenant.
		{name: "unknown tenant with a valid token", req: atkRequest{tenant: ptr("nobody"), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "unknown tenant without a token", req: atkRequest{tenant: ptr("nobody")}, status: 404},
		{name: "tenant of another case", req: atkRequest{tenant: ptr("ACME"), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "tenant with a challenge injection", req: atkRequest{tenant: ptr(`acme", error="x`), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "tenant with path traversal", req: atkRequest{tenant: ptr("../acme"), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "tenant with a NUL byte", req: atkRequest{tenant: ptr("acme\x00"), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "no tenant header", req: atkRequest{tenant: ptr("\x00absent"), auth: []string{"Bearer " + valid}}, status: 404},
		{name: "valid token on a tenant that does not trust its issuer", req: atkRequest{tenant: ptr("down"), auth: []string{"Bearer " + valid}}, status: 401, code: 900901},
		{name: "Key Manager down, nothing cached", req: atkRequest{tenant: ptr("down"), auth: []string{"Bearer opaque-" + strings.Repeat("z", 40)}}, status: 503, code: 900900},

		// Scopes and paths.
		{name: "valid token without the scope of /admin", req: atkRequest{path: "/admin", auth: []string{"Bearer " + valid}}, status: 403, code: 900910},
		{name: "dot segments to /admin do not dodge its rule", req: atkRequest{path: "/orders/../admin", auth: []string{"Bearer " + valid}}, status: 403, code: 900910},
		{name: "encoded separators to /admin do not dodge its rule", req: atkRequest{path: "/orders%2F%2E%2E%2F%61dmin", auth: []string{"Bearer " + valid}}, status: 403, code: 900910},
		{name: "upper-case /ADMIN does not dodge its rule", req: atkRequest{path: "/ADMIN", auth: []string{"Bearer " + valid}}, status: 403, code: 900910},
		{name: "double-encoded dot in the path", req: atkRequest{path: "/orders/%252e%252e/admin", auth: []string{"Bearer " + valid}}, status: 400},
		{name: "path parameter in the path", req: atkRequest{path: "/admin;jsessionid=1", auth: []string{"Bearer " + valid}}, status: 400},
		{name: "encoded NUL in the path", req: atkRequest{path: "/admin%00", auth: []string{"Bearer " + valid}}, status: 400},
		{name: "encoded backslash in the path", req: atkRequest{path: "/orders%5C..%5Cadmin", auth: []string{"Bearer " + valid}}, status: 400},
		{name: "token with the admin scope", req: atkRequest{path: "/admin", auth: []string{"Bearer " + admin}}, status: 200},
	}
	allowed := map[int]bool{400: true, 401: true, 403: true, 404: true, 503: true}
	var needles []string
	needles = append(needles, e.secrets...)
	for _, tc := range cases {
		caseNeedles := append(atkNeedles(tc.req.auth), e.secrets...)
		needles = append(needles, caseNeedles...)
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = e.h
			}
			for round := 0; round < 2; round++ { // fresh, then with the cache warm
				r := e.serve(h, tc.req)
				if r.err != nil {
					t.Fatalf("ServeHTTP returned %v", r.err)
				}
				if r.status != tc.status {
					t.Fatalf("round %d: status %d, want %d (body %s)", round, r.status, tc.status, r.body)
				}
				if tc.status == 200 {
					if !r.nextCalled {
						t.Fatal("next handler not called for an accepted request")
					}
					if len(r.nextAuth) != 0 {
						t.Fatal("the Authorization header reached the upstream")
					}
					if r.subject != "alice" {
						t.Fatalf("{keymanager.subject} = %q", r.subject)
					}
					continue
				}
				if !allowed[r.status] {
					t.Fatalf("status %d is not one the design allows", r.status)
				}
				if r.nextCalled {
					t.Fatal("next handler called on a refusal")
				}
				var body errorBody
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatalf("body %q is not the JSON error body: %v", r.body, err)
				}
				if body.Code != tc.code {
					t.Fatalf("code %d, want %d (%s)", body.Code, tc.code, body.Description)
				}
				if tc.desc != "" && body.Description != tc.desc {
					t.Fatalf("description %q, want %q", body.Description, tc.desc)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
				if n, leak := atkContains(string(r.body), caseNeedles); leak {
					t.Fatalf("body echoes %q", n)
				}
				if n, leak := atkContains(r.errDesc, caseNeedles); leak {
					t.Fatalf("{keymanager.error.description} echoes %q", n)
				}
				for name, vals := range r.header {
					for _, v := range vals {
						if n, leak := atkContains(v, caseNeedles); leak {
							t.Fatalf("response header %s echoes %q", name, n)
						}
					}
				}
				challenges := r.header.Values("WWW-Authenticate")
				switch {
				case r.status == 401 || r.status == 403 && tc.code == 900910:
					if len(challenges) != 1 || !wwwAuthenticate.MatchString(challenges[0]) {
						t.Fatalf("WWW-Authenticate %q is not one well-formed Bearer challenge", challenges)
					}
					if strings.Count(challenges[0], `error="`) > 1 {
						t.Fatalf("WWW-Authenticate %q carries more than one error", challenges[0])
					}
				case len(challenges) != 0:
					t.Fatalf("status %d with WWW-Authenticate %q", r.status, challenges)
				}
				if r.status == 503 && r.header.Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
			}
		})
	}
	// The log of every case, refusals (with their domain detail) included.
	if e.logs.FilterMessage("request denied").Len() < len(cases)/2 {
		t.Fatalf("only %d denials were logged: the log check would see nothing", e.logs.FilterMessage("request denied").Len())
	}
	for _, entry := range e.logs.All() {
		text := atkLogText(entry)
		if n, leak := atkContains(text, needles); leak {
			t.Errorf("log entry %q (level %s) contains a secret (%q)", entry.Message, entry.Level, n)
		}
	}
	// Proof that the oversized token was not parsed: its refusal carries no
	// domain detail, just the size error.
	for _, entry := range e.logs.FilterMessage("request denied").All() {
		if reason, _ := entry.ContextMap()["reason"].(string); strings.HasPrefix(reason, noTok) && reason != noTok {
			t.Errorf("size refusal with detail %q: the token was looked into", reason)
		}
	}
}

// atkLogText renders one entry: message, then every field (context
// fields included), errors by their Error text.
func atkLogText(e observer.LoggedEntry) string {
	var b strings.Builder
	b.WriteString(e.Message)
	for k, v := range e.ContextMap() {
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	for _, f := range e.Context {
		if err, ok := f.Interface.(error); ok {
			b.WriteString(" " + err.Error())
		}
		b.WriteString(" " + f.String)
	}
	return b.String()
}
