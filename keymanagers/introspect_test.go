package keymanagers

// Tests of the opaque-token path: RFC 7662 introspection (request shape and
// client authentication, answer handling), coalescing, positive and
// negative caching, the circuit breaker, stale_if_error, Key Manager
// election by token handling rules, and token_validation introspection.
//
// Helpers here are prefixed "ix" so they cannot collide with helpers other
// test files of the package define.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ixTimeout is the Key Manager timeout of most introspection tests: short,
// so failure modes are fast, yet far above a local round trip.
const ixTimeout = 400 * time.Millisecond

// Failure modes of the introspection endpoint.
const (
	ixOK           = ""
	ixStatus500    = "status-500"
	ixStatus401    = "status-401"
	ixHTML         = "html-200"
	ixProxyHTML    = "html-502"
	ixGarbage      = "garbage"
	ixHuge         = "huge"
	ixNoActive     = "no-active"
	ixActiveString = "active-string"
	ixActiveNull   = "active-null"
	ixSlow         = "slow"
)

// ixSeen is one introspection request as the server received it.
type ixSeen struct {
	Method        string
	ContentType   string
	Authorization string
	RawQuery      string
	Form          url.Values
}

// ixServer is an RFC 7662 introspection endpoint (/introspect), a
// client-credentials token endpoint (/token) and a discovery document
// (/.well-known/openid-configuration). It checks every introspection
// request against the client authentication it expects, counts calls, and
// answers per token from a map the test controls, or fails as scripted.
type ixServer struct {
	*httptest.Server
	tb testing.TB

	calls      atomic.Int64 // introspection requests received
	tokenCalls atomic.Int64 // client-credentials token requests received

	mu       sync.Mutex
	auth     string // expected client authentication method
	clientID string
	secret   string
	hint     string // expected token_type_hint; "" means none may be sent
	ccToken  string // access token the token endpoint hands out
	issuer   string // discovery document's issuer
	jwksURL  string // discovery document's jwks_uri
	answers  map[string]any
	fallback func(token string) any // answer for tokens not in answers
	mode     string
	gate     chan struct{}
	gateOnce *sync.Once
	last     *ixSeen
}

func newIXServer(tb testing.TB) *ixServer {
	tb.Helper()
	s := &ixServer{tb: tb, auth: AuthClientSecretBasic, hint: "access_token", ccToken: "cc-" + randomID(),
		answers: map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/introspect", s.introspect)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		doc := map[string]any{"issuer": s.issuer, "jwks_uri": s.jwksURL,
			"introspection_endpoint": s.URL + "/introspect", "token_endpoint": s.URL + "/token"}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	s.Server = httptest.NewServer(mux)
	tb.Cleanup(s.Close)
	return s
}

// IntrospectURL is the introspection endpoint.
func (s *ixServer) IntrospectURL() string { return s.URL + "/introspect" }

// WellKnown is the discovery document.
func (s *ixServer) WellKnown() string { return s.URL + "/.well-known/openid-configuration" }

// expect makes the server check requests against what def should send.
func (s *ixServer) expect(def Definition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = def.IntrospectionAuth
	if s.auth == "" {
		s.auth = AuthClientSecretBasic
	}
	switch def.TokenTypeHint {
	case "":
		s.hint = "access_token"
	case "none":
		s.hint = ""
	default:
		s.hint = def.TokenTypeHint
	}
	s.clientID, s.secret = def.ClientID, def.ClientSecret
}

// set makes the server answer answer (marshalled to JSON) for token.
func (s *ixServer) set(token string, answer any) {
	s.mu.Lock()
	s.answers[token] = answer
	s.mu.Unlock()
}

// answerAll answers tokens not set explicitly with fn(token).
func (s *ixServer) answerAll(fn func(token string) any) {
	s.mu.Lock()
	s.fallback = fn
	s.mu.Unlock()
}

func (s *ixServer) setMode(mode string) {
	s.mu.Lock()
	s.mode = mode
	s.mu.Unlock()
}

// hold makes every introspection request wait (after being counted) until
// release is called; release also runs at cleanup.
func (s *ixServer) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	once := &sync.Once{}
	s.gateOnce = once
	gate := s.gate
	s.mu.Unlock()
	s.tb.Cleanup(func() { once.Do(func() { close(gate) }) })
}

func (s *ixServer) release() {
	s.mu.Lock()
	gate, once := s.gate, s.gateOnce
	s.gate, s.gateOnce = nil, nil
	s.mu.Unlock()
	if gate != nil {
		once.Do(func() { close(gate) })
	}
}

func (s *ixServer) lastSeen() *ixSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *ixServer) introspect(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		form = url.Values{}
	}
	seen := &ixSeen{Method: r.Method, ContentType: r.Header.Get("Content-Type"),
		Authorization: r.Header.Get("Authorization"), RawQuery: r.URL.RawQuery, Form: form}
	tok := form.Get("token")
	s.mu.Lock()
	s.last = seen
	auth, id, secret, hint, cc, mode := s.auth, s.clientID, s.secret, s.hint, s.ccToken, s.mode
	answer, known := s.answers[tok]
	fallback := s.fallback
	s.mu.Unlock()
	if msg := ixCheck(seen, auth, id, secret, hint, cc); msg != "" {
		s.tb.Errorf("introspection request does not follow RFC 7662 / RFC 6749 (%s): %s", auth, msg)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	switch mode {
	case ixStatus500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"server_error","error_description":"database unavailable"}`)
		return
	case ixStatus401:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	case ixHTML:
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<!doctype html><html><body><form action=/login>Sign in</form></body></html>")
		return
	case ixProxyHTML:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
		return
	case ixGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("\x00\x01{\"active\":tru\xff"))
		return
	case ixHuge:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":true,"sub":"alice","pad":"`)
		_, _ = w.Write([]byte(strings.Repeat("a", maxIntrospectionBody+1024)))
		_, _ = io.WriteString(w, `"}`)
		return
	case ixNoActive:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sub":"alice","scope":"read"}`)
		return
	case ixActiveString:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":"true","sub":"alice"}`)
		return
	case ixActiveNull:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":null,"sub":"alice"}`)
		return
	case ixSlow:
		select {
		case <-time.After(10 * ixTimeout):
		case <-r.Context().Done():
			return
		}
	}
	if !known {
		answer = map[string]any{"active": false}
		if fallback != nil {
			answer = fallback(tok)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

// ixCheck reports how a received introspection request departs from what
// RFC 7662 section 2.1 and RFC 6749 section 2.3 require ("" when it does
// not).
func ixCheck(r *ixSeen, auth, id, secret, hint, cc string) string {
	if r.Method != http.MethodPost {
		return "method " + r.Method + ", want POST"
	}
	if mt, _, _ := mime.ParseMediaType(r.ContentType); mt != "application/x-www-form-urlencoded" {
		return "Content-Type " + r.ContentType
	}
	if r.RawQuery != "" {
		return "parameters in the URL query"
	}
	if len(r.Form["token"]) != 1 || r.Form.Get("token") == "" {
		return "no single token parameter"
	}
	got, has := r.Form["token_type_hint"]
	switch {
	case hint == "" && has:
		return fmt.Sprintf("token_type_hint %q sent, want none", got)
	case hint != "" && (len(got) != 1 || got[0] != hint):
		return fmt.Sprintf("token_type_hint %q, want %q", got, hint)
	}
	switch auth {
	case AuthClientSecretBasic:
		u, p, ok := (&http.Request{Header: http.Header{"Authorization": {r.Authorization}}}).BasicAuth()
		if !ok {
			return "no Basic credentials"
		}
		uid, err1 := url.QueryUnescape(u)
		usec, err2 := url.QueryUnescape(p)
		if err1 != nil || err2 != nil || uid != id || usec != secret {
			return fmt.Sprintf("Basic credentials %q:%q do not form-decode to the client's", u, p)
		}
		if r.Form.Has("client_secret") {
			return "client_secret in the body as well"
		}
	case AuthClientSecretPost:
		if r.Authorization != "" {
			return "Authorization header sent with client_secret_post"
		}
		if r.Form.Get("client_id") != id || r.Form.Get("client_secret") != secret {
			return "client_id/client_secret missing from the body"
		}
	case AuthNone:
		if r.Authorization != "" {
			return "Authorization header sent with auth none"
		}
		if r.Form.Has("client_secret") {
			return "client_secret sent with auth none"
		}
		if id != "" && r.Form.Get("client_id") != id {
			return "client_id missing from the body"
		}
		if id == "" && r.Form.Has("client_id") {
			return "client_id sent although none is configured"
		}
	case AuthBearer:
		if r.Authorization != "Bearer "+cc {
			return fmt.Sprintf("Authorization %q, want the client-credentials token", r.Authorization)
		}
		if r.Form.Has("client_secret") {
			return "client_secret in the body as well"
		}
	}
	return ""
}

// token is a client-credentials token endpoint (RFC 6749 section 4.4).
func (s *ixServer) token(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
		s.tb.Errorf("token endpoint: not a client-credentials grant (%s %v)", r.Method, r.PostForm)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	id, secret, cc := s.clientID, s.secret, s.ccToken
	s.mu.Unlock()
	gotID, gotSecret, ok := r.BasicAuth()
	if ok {
		gotID, _ = url.QueryUnescape(gotID)
		gotSecret, _ = url.QueryUnescape(gotSecret)
	} else {
		gotID, gotSecret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if gotID != id || gotSecret != secret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": cc, "token_type": "Bearer", "expires_in": 3600})
}

// ---------------------------------------------------------------------------
// Environments

// ixFixture is a fixture whose JWKS server publishes one EC key (fast to
// generate; Key Managers settle on it).
func ixFixture(tb testing.TB) *fixture {
	tb.Helper()
	return newFixture(tb, ecKey(tb, "p256-a", "e1"))
}

// ixDef is a Key Manager that verifies JWTs of issuer with the fixture's
// JWKS and introspects at srv with client_secret_basic.
func ixDef(f *fixture, srv *ixServer, name, issuer string) Definition {
	return Definition{
		Name: name, Issuer: issuer, JWKSURL: f.jwks.JWKSURL(),
		IntrospectionURL: srv.IntrospectURL(),
		ClientID:         "gw-" + name, ClientSecret: "s3:cr+t/%é " + name,
		Timeout: Duration(ixTimeout),
	}
}

// ixAdd adds an introspecting Key Manager to the default tenant and makes
// srv expect its requests.
func ixAdd(f *fixture, srv *ixServer, name, issuer string, edit func(*Definition)) *KeyManager {
	f.t.Helper()
	def := ixDef(f, srv, name, issuer)
	if edit != nil {
		edit(&def)
	}
	srv.expect(def)
	return f.add(testTenant, def)
}

// ixEnv is one introspecting Key Manager "idp" in the default tenant.
type ixEnv struct {
	f   *fixture
	g   *Gateway
	srv *ixServer
	km  *KeyManager
}

func newIXEnv(tb testing.TB, edit func(*Definition)) *ixEnv {
	tb.Helper()
	f := ixFixture(tb)
	srv := newIXServer(tb)
	km := ixAdd(f, srv, "idp", testIssuer, edit)
	return &ixEnv{f: f, g: f.build(), srv: srv, km: km}
}

func (e *ixEnv) auth(token string) (*Principal, error) {
	return e.g.Authenticate(context.Background(), testTenant, nil, token)
}

func (e *ixEnv) now() int64 { return e.f.clock.Now().Unix() }

// active is an active answer at the fixture's current time.
func (e *ixEnv) active(extra map[string]any) map[string]any { return ixActive(e.f.clock.Now(), extra) }

func (e *ixEnv) status() *IntrospectionStatus { return e.km.Status().Introspection }

// ixActive is a typical active RFC 7662 answer at now (valid one hour),
// with extra applied (a nil value deletes a member).
func ixActive(now time.Time, extra map[string]any) map[string]any {
	return with(map[string]any{
		"active": true, "sub": "alice", "client_id": "client-1", "scope": "read write",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "token_type": "Bearer",
	}, extra)
}

// ixUUID is a WSO2-style opaque token (a random UUID).
func ixUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ixHydra is an Ory Hydra-style opaque access token.
func ixHydra() string { return "ory_at_" + randomID() + "." + randomID() }

const ixUUIDPattern = `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`

// ixNoToken fails when an error text shown to callers contains the token.
func ixNoToken(tb testing.TB, err error, token string) {
	tb.Helper()
	if err != nil && strings.Contains(err.Error(), token) {
		tb.Fatalf("error text %q contains the token", err.Error())
	}
	if err != nil && strings.Contains(Classify(err).Description, token) {
		tb.Fatalf("error description contains the token")
	}
}

func ixCalls(tb testing.TB, s *ixServer, want int64) {
	tb.Helper()
	if got := s.calls.Load(); got != want {
		tb.Fatalf("introspection calls = %d, want %d", got, want)
	}
}

// ---------------------------------------------------------------------------
// Answers

func TestIntrospection_ActiveAnswerBecomesPrincipal(t *testing.T) {
	e := newIXEnv(t, nil)
	e.g.SetProjectedClaims([]string{"email", "groups"})
	now := e.now()
	ttl := int64(DefaultIntrospectionCacheTTL / time.Second)
	cases := []struct {
		name        string
		extra       map[string]any
		wantSubject string
		wantClient  string
		wantScopes  string
		wantIssuer  string
		wantExpires int64
	}{
		{"sub, client_id and a space-separated scope string", nil, "alice", "client-1", "read write", testIssuer, now + ttl},
		{"username is the subject when sub is absent", map[string]any{"sub": nil, "username": "bob"}, "bob", "client-1", "read write", testIssuer, now + ttl},
		{"username is the subject when sub is empty", map[string]any{"sub": "", "username": "bob"}, "bob", "client-1", "read write", testIssuer, now + ttl},
		{"sub wins over username", map[string]any{"username": "bob"}, "alice", "client-1", "read write", testIssuer, now + ttl},
		{"scope as a JSON array", map[string]any{"scope": []string{"read", "write", "admin"}}, "alice", "client-1", "read write admin", testIssuer, now + ttl},
		{"no scope member gives no scopes", map[string]any{"scope": nil}, "alice", "client-1", "", testIssuer, now + ttl},
		{"no client_id member gives no client id", map[string]any{"client_id": nil}, "alice", "", "read write", testIssuer, now + ttl},
		{"iss equal to the Key Manager's issuer", map[string]any{"iss": testIssuer}, "alice", "client-1", "read write", testIssuer, now + ttl},
		{"exp sooner than the cache TTL bounds the result", map[string]any{"exp": now + 90}, "alice", "client-1", "read write", testIssuer, now + 90},
		{"no exp: cached for the introspection cache TTL", map[string]any{"exp": nil}, "alice", "client-1", "read write", testIssuer, now + ttl},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := ixUUID()
			answer := with(e.active(map[string]any{"email": "alice@example.com", "groups": []string{"a", "b"}}), tc.extra)
			e.srv.set(tok, answer)
			before := e.srv.calls.Load()
			p, err := e.auth(tok)
			checkErr(t, err, nil)
			ixCalls(t, e.srv, before+1)
			if p.Subject != tc.wantSubject || p.ClientID != tc.wantClient || p.Scopes != tc.wantScopes {
				t.Fatalf("principal = sub %q client %q scopes %q, want %q %q %q",
					p.Subject, p.ClientID, p.Scopes, tc.wantSubject, tc.wantClient, tc.wantScopes)
			}
			if p.KeyManager != "idp" || p.KeyManagerTenant != testTenant || p.Tenant != testTenant || p.Issuer != tc.wantIssuer {
				t.Fatalf("principal = km %q/%q tenant %q issuer %q", p.KeyManagerTenant, p.KeyManager, p.Tenant, p.Issuer)
			}
			if p.ExpiresAt != tc.wantExpires {
				t.Fatalf("ExpiresAt = now%+d, want now%+d", p.ExpiresAt-now, tc.wantExpires-now)
			}
			if v, ok := p.Claim("email"); !ok || v != "alice@example.com" {
				t.Fatalf("projected claim email = %q, %v", v, ok)
			}
			if v, ok := p.ClaimRaw("groups"); !ok || v != `["a","b"]` {
				t.Fatalf("projected claim groups = %q, %v", v, ok)
			}
			if _, ok := p.Claim("iat"); ok {
				t.Fatal("a claim outside the projected set was kept")
			}
			// The second call is a cache hit with the same principal.
			p2, err := e.auth(tok)
			checkErr(t, err, nil)
			ixCalls(t, e.srv, before+1)
			if p2.Subject != p.Subject || p2.Scopes != p.Scopes || p2.ClientID != p.ClientID {
				t.Fatalf("cached principal differs: %+v vs %+v", p2, p)
			}
		})
	}
}

func TestIntrospection_RefusedAnswersAreClassifiedAndNeverEchoTheToken(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.Audiences = []string{testAudience, "api://other"} })
	now := e.now()
	cases := []struct {
		name   string
		answer map[string]any
		want   *Error
	}{
		{"active false is inactive", map[string]any{"active": false}, ErrInactive},
		{"active false with other members is inactive", map[string]any{"active": false, "sub": "alice", "aud": testAudience}, ErrInactive},
		{"token_type refresh_token is a refresh token", e.active(map[string]any{"aud": testAudience, "token_type": "refresh_token"}), ErrRefreshToken},
		{"token_type Refresh (WSO2 IS 7) is a refresh token", e.active(map[string]any{"aud": testAudience, "token_type": "Refresh"}), ErrRefreshToken},
		{"token_use refresh_token (Ory Hydra) is a refresh token", e.active(map[string]any{"aud": testAudience, "token_type": nil, "token_use": "refresh_token"}), ErrRefreshToken},
		{"token_use access_token (Ory Hydra) is accepted", e.active(map[string]any{"aud": testAudience, "token_type": nil, "token_use": "access_token"}), nil},
		{"typ ID (Keycloak introspecting an ID token) is not an access token", e.active(map[string]any{"aud": testAudience, "typ": "ID"}), ErrNotAccessToken},
		{"typ Refresh (Keycloak introspecting a refresh token) is not an access token", e.active(map[string]any{"aud": testAudience, "typ": "Refresh"}), ErrNotAccessToken},
		{"typ Bearer (Keycloak access token) is accepted", e.active(map[string]any{"aud": testAudience, "typ": "Bearer"}), nil},
		{"exp in the past beyond the clock skew is expired", e.active(map[string]any{"aud": testAudience, "exp": now - 120}), ErrExpired},
		{"exp in the past within the clock skew is accepted", e.active(map[string]any{"aud": testAudience, "exp": now - 10}), nil},
		{"nbf in the future beyond the clock skew is not yet valid", e.active(map[string]any{"aud": testAudience, "nbf": now + 120}), ErrNotYetValid},
		{"nbf in the future within the clock skew is accepted", e.active(map[string]any{"aud": testAudience, "nbf": now + 10}), nil},
		{"aud string matching a configured audience is accepted", e.active(map[string]any{"aud": "api://other"}), nil},
		{"aud array containing a configured audience is accepted", e.active(map[string]any{"aud": []string{"x", testAudience}}), nil},
		{"wrong aud string", e.active(map[string]any{"aud": "api://payments"}), ErrWrongAudience},
		{"wrong aud array", e.active(map[string]any{"aud": []string{"api://payments", "x"}}), ErrWrongAudience},
		{"no aud when audiences are configured", e.active(nil), ErrWrongAudience},
		{"iss of another issuer", e.active(map[string]any{"aud": testAudience, "iss": "https://evil.example.com"}), ErrWrongTokenIssuer},
		{"iss differing by a trailing slash", e.active(map[string]any{"aud": testAudience, "iss": testIssuer + "/"}), ErrWrongTokenIssuer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := ixUUID()
			e.srv.set(tok, tc.answer)
			before := e.srv.calls.Load()
			_, err := e.auth(tok)
			checkErr(t, err, tc.want)
			ixNoToken(t, err, tok)
			ixCalls(t, e.srv, before+1)
		})
	}
}

// On the JWT path, scope array elements holding white space are dropped so
// that one element cannot smuggle several scopes; an introspection answer
// must be read the same way.
func TestIntrospection_ScopeArrayElementsWithWhiteSpaceAreDroppedAsOnTheJWTPath(t *testing.T) {
	e := newIXEnv(t, nil)
	tok := ixUUID()
	e.srv.set(tok, e.active(map[string]any{"scope": []string{"read", "admin write", "", "x\ty"}}))
	p, err := e.auth(tok)
	checkErr(t, err, nil)
	if p.HasScope("admin") || p.HasScope("write") || p.HasScope("") || p.Scopes != "read" {
		t.Fatalf("scopes = %q: an element with white space (or an empty one) was split into scopes; want %q", p.Scopes, "read")
	}
}

// A scope string is split on SP only (RFC 6749 section 3.3), as on the
// JWT path: "read\u00a0admin" is one invalid token, never "admin".
func TestIntrospection_ScopeStringIsSplitOnSPOnly(t *testing.T) {
	e := newIXEnv(t, nil)
	tok := ixUUID()
	e.srv.set(tok, e.active(map[string]any{"scope": "read write\u00a0admin x\ty  z"}))
	p, err := e.auth(tok)
	checkErr(t, err, nil)
	if p.Scopes != "read z" || p.HasScope("admin") {
		t.Fatalf("scopes = %q; want %q (only SP separates scopes)", p.Scopes, "read z")
	}
}

// ---------------------------------------------------------------------------
// Request shape and client authentication

func TestIntrospection_ClientAuthenticationMethodsSendWhatTheRFCsSay(t *testing.T) {
	const id, secret = "gw:1+a b", "s3:cr+t/%é x"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	cases := []struct {
		name          string
		edit          func(d *Definition, srv *ixServer)
		authorization string // "bearer" for the client-credentials token
		formID        string // "" = absent
		formSecret    string // "" = absent
	}{
		{"client_secret_basic form-encodes id and secret before Basic", func(d *Definition, _ *ixServer) {
			d.IntrospectionAuth = AuthClientSecretBasic
		}, basic, "", ""},
		{"client_secret_basic is the default", func(d *Definition, _ *ixServer) {}, basic, "", ""},
		{"client_secret_post puts id and secret in the body and sends no Authorization", func(d *Definition, _ *ixServer) {
			d.IntrospectionAuth = AuthClientSecretPost
		}, "", id, secret},
		{"none sends no credentials but the client_id when set", func(d *Definition, _ *ixServer) {
			d.IntrospectionAuth = AuthNone
			d.ClientSecret = ""
		}, "", id, ""},
		{"none without client_id sends nothing", func(d *Definition, _ *ixServer) {
			d.IntrospectionAuth = AuthNone
			d.ClientID, d.ClientSecret = "", ""
		}, "", "", ""},
		{"bearer sends the client-credentials token", func(d *Definition, srv *ixServer) {
			d.IntrospectionAuth = AuthBearer
			d.TokenURL = srv.URL + "/token"
		}, "bearer", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := ixFixture(t)
			srv := newIXServer(t)
			ixAdd(f, srv, "idp", testIssuer, func(d *Definition) {
				d.ClientID, d.ClientSecret = id, secret
				tc.edit(d, srv)
			})
			g := f.build()
			srv.answerAll(func(string) any { return ixActive(f.clock.Now(), nil) })
			for i := range 3 {
				tok := ixUUID()
				_, err := g.Authenticate(context.Background(), testTenant, nil, tok)
				checkErr(t, err, nil)
				seen := srv.lastSeen()
				wantAuthz := tc.authorization
				if wantAuthz == "bearer" {
					wantAuthz = "Bearer " + srv.ccToken
				}
				if seen.Authorization != wantAuthz {
					t.Fatalf("call %d: Authorization = %q, want %q", i, seen.Authorization, wantAuthz)
				}
				if got := seen.Form.Get("token"); got != tok {
					t.Fatalf("token parameter = %q, want the token", got)
				}
				for name, want := range map[string]string{"client_id": tc.formID, "client_secret": tc.formSecret} {
					vals, has := seen.Form[name]
					if want == "" && has {
						t.Fatalf("%s sent in the body: %q", name, vals)
					}
					if want != "" && (len(vals) != 1 || vals[0] != want) {
						t.Fatalf("%s in the body = %q, want %q", name, vals, want)
					}
				}
			}
			ixCalls(t, srv, 3)
			wantTokenCalls := int64(0)
			if tc.authorization == "bearer" {
				wantTokenCalls = 1 // fetched once, reused
			}
			if got := srv.tokenCalls.Load(); got != wantTokenCalls {
				t.Fatalf("token endpoint calls = %d, want %d", got, wantTokenCalls)
			}
		})
	}
}

func TestIntrospection_TokenTypeHintDefaultsToAccessTokenAndNoneOmitsIt(t *testing.T) {
	cases := []struct {
		name     string
		hint     string
		wantHint string // "" = absent
	}{
		{"default is access_token", "", "access_token"},
		{"custom hint is sent as configured", "jwt", "jwt"},
		{"none omits the parameter", "none", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) { d.TokenTypeHint = tc.hint })
			tok := ixUUID()
			e.srv.set(tok, e.active(nil))
			_, err := e.auth(tok)
			checkErr(t, err, nil)
			vals, has := e.srv.lastSeen().Form["token_type_hint"]
			if tc.wantHint == "" && has {
				t.Fatalf("token_type_hint sent: %q", vals)
			}
			if tc.wantHint != "" && (len(vals) != 1 || vals[0] != tc.wantHint) {
				t.Fatalf("token_type_hint = %q, want %q", vals, tc.wantHint)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Failing endpoint

func TestIntrospection_FailingEndpointIsUnavailableQuicklyAndRecordedWithoutTheToken(t *testing.T) {
	cases := []struct {
		name    string
		mode    string
		refused bool   // point the Key Manager at a closed server
		detail  string // expected in Status().LastError
		breaker int64  // consecutive breaker failures: only transport errors and 5xx count
	}{
		{"HTTP 500 with an OAuth error body", ixStatus500, false, "HTTP 500", 1},
		{"HTTP 401 (the gateway's credentials are refused)", ixStatus401, false, "HTTP 401", 0},
		{"HTML login page with status 200", ixHTML, false, "introspection", 0},
		{"HTML error page from a proxy", ixProxyHTML, false, "HTTP 502", 1},
		{"non-JSON garbage", ixGarbage, false, "introspection", 0},
		{"body over 1 MiB", ixHuge, false, "introspection", 0},
		{"answer without an active member", ixNoActive, false, "introspection", 0},
		{"active as a string", ixActiveString, false, "introspection", 0},
		{"active as null", ixActiveNull, false, "introspection", 0},
		{"answer slower than the timeout", ixSlow, false, "introspection", 1},
		{"connection refused", ixOK, true, "introspection", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				if tc.refused {
					dead := httptest.NewServer(http.NotFoundHandler())
					dead.Close()
					d.IntrospectionURL = dead.URL + "/introspect"
				}
			})
			e.srv.setMode(tc.mode)
			tok := ixUUID()
			e.srv.set(tok, e.active(nil))
			start := time.Now()
			_, err := e.auth(tok)
			elapsed := time.Since(start)
			checkErr(t, err, ErrIntrospection)
			ixNoToken(t, err, tok)
			if elapsed > ixTimeout+time.Second {
				t.Fatalf("failure took %v, want under timeout (%v) + 1s", elapsed, ixTimeout)
			}
			st := e.km.Status()
			if st.LastError == "" || !strings.Contains(st.LastError, tc.detail) {
				t.Fatalf("Status().LastError = %q, want it to mention %q", st.LastError, tc.detail)
			}
			if strings.Contains(st.LastError, tok) {
				t.Fatalf("Status().LastError contains the token")
			}
			if st.Introspection == nil || st.Introspection.Errors != 1 || st.Introspection.Calls != 1 || st.Introspection.Failures != tc.breaker {
				t.Fatalf("Status().Introspection = %+v, want 1 call, 1 error, %d consecutive failure", st.Introspection, tc.breaker)
			}
			want := int64(1)
			if tc.refused {
				want = 0
			}
			ixCalls(t, e.srv, want)
			// Failures are not cached: the next request asks again.
			e.srv.setMode(ixOK)
			if !tc.refused {
				_, err = e.auth(tok)
				checkErr(t, err, nil)
				ixCalls(t, e.srv, 2)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Coalescing and caching

func TestIntrospection_ConcurrentCallsForOneFreshTokenCauseOneIntrospection(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.Timeout = Duration(10 * time.Second) })
	tok := ixUUID()
	e.srv.set(tok, e.active(nil))
	e.srv.hold()
	const n = 200
	var ready, done sync.WaitGroup
	errs := make([]error, n)
	subjects := make([]string, n)
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			p, err := e.auth(tok)
			errs[i] = err
			if p != nil {
				subjects[i] = p.Subject
			}
		}()
	}
	ready.Wait()
	waitFor(t, "the first introspection to reach the server", func() bool { return e.srv.calls.Load() >= 1 })
	time.Sleep(50 * time.Millisecond) // let every goroutine join the flight
	e.srv.release()
	done.Wait()
	for i, err := range errs {
		if err != nil || subjects[i] != "alice" {
			t.Fatalf("caller %d: %v (subject %q)", i, err, subjects[i])
		}
	}
	ixCalls(t, e.srv, 1)
	if _, err := e.auth(tok); err != nil {
		t.Fatal(err)
	}
	ixCalls(t, e.srv, 1) // a cache hit
}

func TestIntrospection_PositiveResultIsCachedForIntrospectionCacheTTL(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.IntrospectionCacheTTL = Duration(time.Minute) })
	tok := ixUUID()
	e.srv.set(tok, e.active(nil)) // exp in one hour
	p, err := e.auth(tok)
	checkErr(t, err, nil)
	if p.ExpiresAt != e.now()+60 {
		t.Fatalf("ExpiresAt = now%+d, want now+60", p.ExpiresAt-e.now())
	}
	ixCalls(t, e.srv, 1)
	e.f.clock.Advance(59 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)
	e.f.clock.Advance(time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 2)
}

func TestIntrospection_PositiveResultIsNeverCachedPastTheTokensExp(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.IntrospectionCacheTTL = Duration(5 * time.Minute) })
	tok := ixUUID()
	e.srv.set(tok, e.active(map[string]any{"exp": e.now() + 60}))
	p, err := e.auth(tok)
	checkErr(t, err, nil)
	if p.ExpiresAt != e.now()+60 {
		t.Fatalf("ExpiresAt = now%+d, want exp (now+60)", p.ExpiresAt-e.now())
	}
	e.f.clock.Advance(59 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)
	e.f.clock.Advance(2 * time.Second) // past exp, well within the TTL
	e.srv.set(tok, map[string]any{"active": false})
	_, err = e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixCalls(t, e.srv, 2)
}

func TestIntrospection_NegativeResultIsCachedForNegativeCacheTTLOnly(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.NegativeCacheTTL = Duration(10 * time.Second) })
	tok := ixUUID() // unknown to the server: inactive
	_, err := e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixCalls(t, e.srv, 1)
	e.f.clock.Advance(9 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixNoToken(t, err, tok)
	ixCalls(t, e.srv, 1) // not re-asked within negative_cache_ttl
	e.f.clock.Advance(time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixCalls(t, e.srv, 2) // re-asked after it
	// A token that becomes active is accepted once the negative entry ends.
	e.srv.set(tok, e.active(nil))
	e.f.clock.Advance(10 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 3)
}

// A refusal read from the negative cache must be classified as the
// introspection's refusal was: the same request may not flip between
// "expired" (900903, the client refreshes) and "invalid" (900901).
func TestIntrospection_CachedNegativeResultKeepsTheErrorKind(t *testing.T) {
	e := newIXEnv(t, nil)
	now := e.now()
	cases := []struct {
		name   string
		answer map[string]any
		want   *Error
	}{
		{"inactive", map[string]any{"active": false}, ErrInactive},
		{"refresh token", e.active(map[string]any{"token_type": "refresh_token"}), ErrRefreshToken},
		{"wrong issuer", e.active(map[string]any{"iss": "https://evil.example.com"}), ErrWrongTokenIssuer},
		{"expired", e.active(map[string]any{"exp": now - 3600}), ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := ixUUID()
			e.srv.set(tok, tc.answer)
			before := e.srv.calls.Load()
			_, err := e.auth(tok)
			checkErr(t, err, tc.want)
			_, err2 := e.auth(tok)
			ixCalls(t, e.srv, before+1) // served from the negative cache
			if err2 == nil {
				t.Fatal("cached refusal accepted the token")
			}
			if k1, k2 := Classify(err).Kind, Classify(err2).Kind; k1 != k2 {
				t.Fatalf("first answer %q (kind %d), cached answer %q (kind %d)", err, k1, err2, k2)
			}
		})
	}
}

func TestIntrospection_RevokedTokenIsAcceptedFromCacheUntilTheEntryExpires(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) { d.IntrospectionCacheTTL = Duration(time.Minute) })
	tok := ixUUID()
	e.srv.set(tok, e.active(nil))
	_, err := e.auth(tok)
	checkErr(t, err, nil)
	e.srv.set(tok, map[string]any{"active": false}) // revoked at the IdP
	e.f.clock.Advance(30 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)
	e.f.clock.Advance(30 * time.Second)
	_, err = e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixCalls(t, e.srv, 2)
}

// ---------------------------------------------------------------------------
// Circuit breaker

// ixOpenBreaker makes threshold introspections fail and checks the breaker
// opens on the last one.
func ixOpenBreaker(t *testing.T, e *ixEnv, threshold int) {
	t.Helper()
	e.srv.setMode(ixStatus500)
	for i := 1; i <= threshold; i++ {
		if got := e.status().Breaker; got != "closed" {
			t.Fatalf("before failure %d: breaker %q, want closed", i, got)
		}
		_, err := e.auth(ixUUID())
		checkErr(t, err, ErrIntrospection)
	}
	st := e.status()
	if st.Breaker != "open" || st.Failures != int64(threshold) {
		t.Fatalf("after %d failures: breaker %q, %d consecutive failures; want open, %d", threshold, st.Breaker, st.Failures, threshold)
	}
}

func TestIntrospection_BreakerOpensAfterThresholdFailsFastAndLetsOneProbeThroughAfterCooldown(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) {
		d.BreakerThreshold = 3
		d.BreakerCooldown = Duration(time.Minute)
		d.Timeout = Duration(10 * time.Second)
	})
	ixOpenBreaker(t, e, 3)
	ixCalls(t, e.srv, 3)

	// Open: fail fast, without reaching the server.
	start := time.Now()
	tok := ixUUID()
	_, err := e.auth(tok)
	checkErr(t, err, ErrBreakerOpen)
	ixNoToken(t, err, tok)
	if time.Since(start) > 100*time.Millisecond {
		t.Fatalf("an open breaker took %v to refuse", time.Since(start))
	}
	e.f.clock.Advance(time.Minute - time.Second)
	_, err = e.auth(ixUUID())
	checkErr(t, err, ErrBreakerOpen)
	ixCalls(t, e.srv, 3)
	if got := e.status().Calls; got != 3 {
		t.Fatalf("Status calls = %d, want 3 (fast failures are not calls)", got)
	}

	// After the cooldown: exactly one probe among concurrent requests.
	e.f.clock.Advance(time.Second)
	if got := e.status().Breaker; got != "half-open" {
		t.Fatalf("after the cooldown: breaker %q, want half-open", got)
	}
	e.srv.setMode(ixOK)
	e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
	e.srv.hold()
	const n = 20
	var done sync.WaitGroup
	var refused, succeeded atomic.Int64
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			_, err := e.auth(ixUUID()) // distinct tokens: no coalescing
			switch {
			case err == nil:
				succeeded.Add(1)
			case errorsIs(err, ErrBreakerOpen):
				refused.Add(1)
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	waitFor(t, "the probe to reach the server and the others to be refused", func() bool {
		c := e.srv.calls.Load()
		return c > 4 || (c == 4 && refused.Load() >= n-1)
	})
	if got := e.srv.calls.Load(); got != 4 {
		e.srv.release()
		done.Wait()
		t.Fatalf("%d requests reached the half-open Key Manager, want exactly one probe", got-3)
	}
	if got := e.status().Breaker; got != "half-open" {
		t.Fatalf("while the probe is out: breaker %q, want half-open", got)
	}
	e.srv.release()
	done.Wait()
	ixCalls(t, e.srv, 4)
	if succeeded.Load() != 1 || refused.Load() != n-1 {
		t.Fatalf("%d succeeded, %d refused; want exactly one probe", succeeded.Load(), refused.Load())
	}
	st := e.status()
	if st.Breaker != "closed" || st.Failures != 0 {
		t.Fatalf("after a successful probe: breaker %q, %d failures; want closed, 0", st.Breaker, st.Failures)
	}
	_, err = e.auth(ixUUID())
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 5)
}

func TestIntrospection_BreakerFailedProbeReopensItForAnotherCooldown(t *testing.T) {
	e := newIXEnv(t, func(d *Definition) {
		d.BreakerThreshold = 3
		d.BreakerCooldown = Duration(time.Minute)
	})
	ixOpenBreaker(t, e, 3)
	e.f.clock.Advance(time.Minute)
	if got := e.status().Breaker; got != "half-open" {
		t.Fatalf("breaker %q, want half-open", got)
	}
	_, err := e.auth(ixUUID()) // the probe, still failing
	checkErr(t, err, ErrIntrospection)
	ixCalls(t, e.srv, 4)
	if got := e.status().Breaker; got != "open" {
		t.Fatalf("after a failed probe: breaker %q, want open", got)
	}
	e.f.clock.Advance(time.Minute - time.Second)
	_, err = e.auth(ixUUID())
	checkErr(t, err, ErrBreakerOpen)
	ixCalls(t, e.srv, 4)
	e.f.clock.Advance(time.Second)
	e.srv.setMode(ixOK)
	e.srv.answerAll(func(string) any { return ixActive(e.f.clock.Now(), nil) })
	_, err = e.auth(ixUUID())
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 5)
	if got := e.status().Breaker; got != "closed" {
		t.Fatalf("after a successful probe: breaker %q, want closed", got)
	}
}

// ---------------------------------------------------------------------------
// Key Manager down, stale_if_error

func TestIntrospection_IdPDownCachedTokenPassesNewTokenIsUnavailable(t *testing.T) {
	e := newIXEnv(t, nil)
	cached := ixUUID()
	e.srv.set(cached, e.active(nil))
	_, err := e.auth(cached)
	checkErr(t, err, nil)

	e.srv.setMode(ixStatus500)
	_, err = e.auth(cached)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)
	fresh := ixUUID()
	e.srv.set(fresh, e.active(nil))
	_, err = e.auth(fresh)
	checkErr(t, err, ErrIntrospection)
	ixCalls(t, e.srv, 2)

	e.srv.Close() // down for good: connection refused
	_, err = e.auth(cached)
	checkErr(t, err, nil)
	_, err = e.auth(fresh)
	checkErr(t, err, ErrIntrospection)
}

func TestIntrospection_StaleIfErrorServesAnExpiredEntryOnlyWhileTheKeyManagerFails(t *testing.T) {
	cases := []struct {
		name    string
		stale   time.Duration
		exp     int64 // seconds from now; 0 = no exp member
		advance time.Duration
		mode    string
		revoked bool // the Key Manager answers inactive
		want    *Error
	}{
		{"served past the TTL while the Key Manager fails", 5 * time.Minute, 3600, 2 * time.Minute, ixStatus500, false, nil},
		{"served while the Key Manager times out", 5 * time.Minute, 3600, 2 * time.Minute, ixSlow, false, nil},
		{"served up to TTL + stale_if_error", 5 * time.Minute, 3600, 6*time.Minute - time.Second, ixStatus500, false, nil},
		{"not served past TTL + stale_if_error", 5 * time.Minute, 3600, 6*time.Minute + time.Second, ixStatus500, false, ErrIntrospection},
		{"not served past the token's exp", 5 * time.Minute, 180, 3*time.Minute + time.Second, ixStatus500, false, ErrIntrospection},
		{"not served when stale_if_error is 0", 0, 3600, 2 * time.Minute, ixStatus500, false, ErrIntrospection},
		{"not served when the Key Manager answers inactive", 5 * time.Minute, 3600, 2 * time.Minute, ixOK, true, ErrInactive},
		{"served for a token without exp", 5 * time.Minute, 0, 2 * time.Minute, ixStatus500, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.IntrospectionCacheTTL = Duration(time.Minute)
				d.StaleIfError = Duration(tc.stale)
				d.BreakerThreshold = 100
			})
			tok := ixUUID()
			answer := e.active(map[string]any{"exp": e.now() + tc.exp})
			if tc.exp == 0 {
				answer = e.active(map[string]any{"exp": nil})
			}
			e.srv.set(tok, answer)
			_, err := e.auth(tok)
			checkErr(t, err, nil)
			e.f.clock.Advance(tc.advance)
			e.srv.setMode(tc.mode)
			if tc.revoked {
				e.srv.set(tok, map[string]any{"active": false})
			}
			p, err := e.auth(tok)
			checkErr(t, err, tc.want)
			ixCalls(t, e.srv, 2) // the Key Manager is always asked first
			if err == nil && (p.Subject != "alice" || p.KeyManager != "idp" || p.Tenant != testTenant) {
				t.Fatalf("stale principal = %+v", p)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Election

func TestIntrospection_TokenHandlingRulesSendEachOpaqueTokenToItsKeyManager(t *testing.T) {
	f := ixFixture(t)
	wso2, hydra := newIXServer(t), newIXServer(t)
	ixAdd(f, wso2, "wso2", "https://wso2.example.com/oauth2/token", func(d *Definition) {
		d.TokenHandling = []TokenHandlingRule{{Type: "reference", Pattern: ixUUIDPattern}}
	})
	ixAdd(f, hydra, "hydra", "https://hydra.example.com/", func(d *Definition) {
		d.TokenHandling = []TokenHandlingRule{{Type: "reference", Pattern: `^ory_at_`}}
	})
	g := f.build()
	for _, s := range []*ixServer{wso2, hydra} {
		s.answerAll(func(string) any { return ixActive(f.clock.Now(), nil) })
	}
	cases := []struct {
		name  string
		token string
		want  string // Key Manager name; "" = refused
	}{
		{"UUID token goes to the UUID rule's Key Manager", ixUUID(), "wso2"},
		{"ory_at_ token goes to the ory_at_ rule's Key Manager", ixHydra(), "hydra"},
		{"another UUID token", ixUUID(), "wso2"},
		{"token matching no rule is refused", "zz" + randomID(), ""},
		{"upper-case UUID matches no rule", strings.ToUpper(ixUUID()), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w0, h0 := wso2.calls.Load(), hydra.calls.Load()
			p, err := g.Authenticate(context.Background(), testTenant, nil, tc.token)
			dw, dh := wso2.calls.Load()-w0, hydra.calls.Load()-h0
			if tc.want == "" {
				checkErr(t, err, ErrOpaqueToken)
				ixNoToken(t, err, tc.token)
				if dw+dh != 0 {
					t.Fatalf("introspected (%d, %d) a token no rule claims", dw, dh)
				}
				return
			}
			checkErr(t, err, nil)
			if p.KeyManager != tc.want {
				t.Fatalf("Key Manager %q, want %q", p.KeyManager, tc.want)
			}
			if (tc.want == "wso2") != (dw == 1) || dw+dh != 1 {
				t.Fatalf("calls: wso2 %d, hydra %d", dw, dh)
			}
		})
	}
}

func TestIntrospection_ElectionOrderAndEligibility(t *testing.T) {
	type km struct {
		name       string
		discovered bool // issuer and endpoint from discovery, no client_id
		edit       func(*Definition)
	}
	jwtOnly := func(d *Definition) { d.TokenValidation = ValidationJWT }
	disabled := func(d *Definition) { off := false; d.Enabled = &off }
	hydraOnly := func(d *Definition) {
		d.TokenHandling = []TokenHandlingRule{{Type: "reference", Pattern: `^ory_at_`}}
	}
	cases := []struct {
		name  string
		kms   []km
		route []string
		want  string // "" = ErrOpaqueToken
	}{
		{"definition order decides among rule-less Key Managers", []km{{name: "a"}, {name: "b"}}, nil, "a"},
		{"definition order, reversed", []km{{name: "b"}, {name: "a"}}, nil, "b"},
		{"the route's list order decides", []km{{name: "a"}, {name: "b"}}, []string{"b", "a"}, "b"},
		{"a route naming one Key Manager", []km{{name: "a"}, {name: "b"}}, []string{"b"}, "b"},
		{"a Key Manager with token_validation jwt never introspects", []km{{name: "a", edit: jwtOnly}, {name: "b"}}, nil, "b"},
		{"a disabled Key Manager is not eligible", []km{{name: "a", edit: disabled}, {name: "b"}}, nil, "b"},
		{"a Key Manager whose rules do not claim the token is skipped", []km{{name: "a", edit: hydraOnly}, {name: "b"}}, nil, "b"},
		{"a Key Manager without client_id is not eligible", []km{{name: "a", discovered: true}, {name: "b"}}, nil, "b"},
		{"a discovered Key Manager with client_id introspects at the discovered endpoint", []km{{name: "a", discovered: true, edit: func(d *Definition) {
			d.ClientID, d.ClientSecret = "gw-a", "secret-a"
		}}, {name: "b"}}, nil, "a"},
		{"no eligible Key Manager", []km{{name: "a", edit: jwtOnly}, {name: "b", discovered: true}}, nil, ""},
		{"the route names only an ineligible Key Manager", []km{{name: "a", edit: jwtOnly}, {name: "b"}}, []string{"a"}, ""},
		{"the route names an unknown Key Manager", []km{{name: "a"}}, []string{"nope"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := ixFixture(t)
			servers := map[string]*ixServer{}
			var kms []*KeyManager
			for _, k := range tc.kms {
				srv := newIXServer(t)
				srv.answerAll(func(string) any { return ixActive(f.clock.Now(), nil) })
				servers[k.name] = srv
				issuer := "https://" + k.name + ".example.com"
				if k.discovered {
					srv.mu.Lock()
					srv.issuer, srv.jwksURL = srv.URL, f.jwks.JWKSURL() // bound to its well-known URL
					srv.mu.Unlock()
					def := Definition{Name: k.name, WellKnownURL: srv.WellKnown(), Timeout: Duration(ixTimeout)}
					if k.edit != nil {
						k.edit(&def)
					}
					srv.expect(def)
					kms = append(kms, f.add(testTenant, def))
					continue
				}
				kms = append(kms, ixAdd(f, srv, k.name, issuer, k.edit))
			}
			g := f.build()
			var route *Route
			if tc.route != nil {
				route = &Route{KeyManagers: tc.route}
			}
			tok := ixUUID()
			p, err := g.Authenticate(context.Background(), testTenant, route, tok)
			if tc.want == "" {
				checkErr(t, err, ErrOpaqueToken)
			} else {
				checkErr(t, err, nil)
				if p.KeyManager != tc.want {
					t.Fatalf("Key Manager %q, want %q", p.KeyManager, tc.want)
				}
			}
			for name, srv := range servers {
				want := int64(0)
				if name == tc.want {
					want = 1
				}
				if got := srv.calls.Load(); got != want {
					t.Fatalf("Key Manager %s was asked %d times, want %d", name, got, want)
				}
			}
			for _, km := range kms {
				if km.def.TokenValidation == ValidationJWT && km.Status().Introspection != nil {
					t.Fatalf("a jwt-only Key Manager reports introspection status")
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// JWTs on the introspection path

func TestIntrospection_TokenValidationIntrospectionAsksTheKeyManagerAboutItsJWTs(t *testing.T) {
	k := ecKey(t, "p256-a", "e1") // published by the fixture's JWKS
	cases := []struct {
		name        string
		validation  string
		answer      map[string]any // nil: the server is not consulted
		want        *Error
		wantSubject string
		wantCalls   int64
	}{
		{"a JWT the Key Manager says inactive is refused despite its valid signature", ValidationIntrospection,
			map[string]any{"active": false}, ErrInactive, "", 1},
		{"an active JWT takes the principal from the introspection answer", ValidationIntrospection,
			map[string]any{"sub": "from-introspection"}, nil, "from-introspection", 1},
		{"token_validation auto verifies the JWT locally", ValidationAuto, nil, nil, "alice", 0},
		{"token_validation auto without a key source introspects the JWT", "auto-no-keys",
			map[string]any{"sub": "from-introspection"}, nil, "from-introspection", 1},
		{"token_validation jwt verifies the JWT locally", ValidationJWT, nil, nil, "alice", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.TokenValidation = tc.validation
				if tc.validation == "auto-no-keys" {
					d.TokenValidation, d.JWKSURL = ValidationAuto, ""
				}
			})
			tok := mint(t, k, e.f.claims(), nil)
			if tc.answer != nil {
				if a, ok := tc.answer["active"]; ok && a == false {
					e.srv.set(tok, tc.answer)
				} else {
					e.srv.set(tok, e.active(tc.answer))
				}
			}
			p, err := e.auth(tok)
			checkErr(t, err, tc.want)
			ixCalls(t, e.srv, tc.wantCalls)
			if err == nil && p.Subject != tc.wantSubject {
				t.Fatalf("subject %q, want %q", p.Subject, tc.wantSubject)
			}
			// Second call: from the cache (positive or negative).
			_, err = e.auth(tok)
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("second call: %v", err)
			}
			ixCalls(t, e.srv, tc.wantCalls)
		})
	}
}

func TestIntrospection_JWTOfAnUnknownIssuerIsElectedByAJWTRuleAndIntrospected(t *testing.T) {
	const partnerIss = "https://partner.example.com/t1"
	other := ecKey(t, "p256-b", "partner-key") // not published anywhere
	cases := []struct {
		name      string
		iss       string
		answer    func(now time.Time) map[string]any
		want      *Error
		wantCalls int64
	}{
		{"active answer without iss", partnerIss, func(now time.Time) map[string]any {
			return ixActive(now, map[string]any{"sub": "partner-user"})
		}, nil, 1},
		{"active answer echoing the token's iss", partnerIss, func(now time.Time) map[string]any {
			return ixActive(now, map[string]any{"sub": "partner-user", "iss": partnerIss})
		}, nil, 1},
		{"inactive answer", partnerIss, func(time.Time) map[string]any {
			return map[string]any{"active": false}
		}, ErrInactive, 1},
		{"issuer the rule does not match stays unknown", "https://stranger.example.com", nil, ErrUnknownIssuer, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIXEnv(t, func(d *Definition) {
				d.TokenHandling = []TokenHandlingRule{{Type: "jwt", Claims: map[string]string{"iss": `^https://partner\.example\.com/`}}}
			})
			tok := mint(t, other, claimsAt(tc.iss, e.f.clock.Now()), nil)
			if tc.answer != nil {
				e.srv.set(tok, tc.answer(e.f.clock.Now()))
			}
			p, err := e.auth(tok)
			checkErr(t, err, tc.want)
			ixNoToken(t, err, tok)
			ixCalls(t, e.srv, tc.wantCalls)
			if err == nil && (p.KeyManager != "idp" || p.Subject != "partner-user") {
				t.Fatalf("principal: km %q subject %q", p.KeyManager, p.Subject)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Registry swaps

func TestIntrospection_ReplacingOrDeletingTheKeyManagerStopsCachedResultsCounting(t *testing.T) {
	e := newIXEnv(t, nil)
	tok := ixUUID()
	e.srv.set(tok, e.active(nil))
	_, err := e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)
	swap := func(kms ...*KeyManager) {
		t.Helper()
		reg, err := NewRegistry(map[string][]*KeyManager{testTenant: kms}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.g.Swap(reg)
	}
	def := e.km.Definition()

	// An identical definition (a reload) keeps the cached result.
	swap(newKM(t, e.f.clock.Now, testTenant, def))
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 1)

	// A changed definition does not.
	changed := def
	changed.IntrospectionCacheTTL = Duration(2 * time.Minute)
	swap(newKM(t, e.f.clock.Now, testTenant, changed))
	_, err = e.auth(tok)
	checkErr(t, err, nil)
	ixCalls(t, e.srv, 2)

	// Nor does a deleted one: with no introspecting Key Manager left, the
	// opaque token is refused without asking anyone.
	jwtOnly := e.f.def("jwt-only")
	jwtOnly.TokenValidation = ValidationJWT
	swap(newKM(t, e.f.clock.Now, testTenant, jwtOnly))
	_, err = e.auth(tok)
	checkErr(t, err, ErrOpaqueToken)
	ixCalls(t, e.srv, 2)

	// And a revoked token is not served from the old Key Manager's entry.
	e.srv.set(tok, map[string]any{"active": false})
	swap(newKM(t, e.f.clock.Now, testTenant, def))
	_, err = e.auth(tok)
	checkErr(t, err, ErrInactive)
	ixCalls(t, e.srv, 3)
}

// ---------------------------------------------------------------------------
// Fuzzing

// FuzzParseIntrospection feeds arbitrary bodies to parseIntrospection: it
// must never panic, and must either fail or return a result consistent
// with the body's "active" member.
func FuzzParseIntrospection(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"alice","client_id":"c","scope":"read write","exp":1900000000,"iat":1800000000,"iss":"https://idp.example.com","aud":"api://orders","token_type":"Bearer"}`,
		`{"active":false}`,
		`{"active":true,"scope":["a","b"],"aud":["x","y"]}`,
		`{"active":true,"scope":["a",1],"aud":[null]}`,
		`{"active":true,"nested":{"a":{"b":[1,2,{"c":null}]}},"groups":[[["deep"]]]}`,
		`{"active":true,"exp":1e308,"nbf":-1}`,
		`{"active":true,"exp":123456789012345678901234567890}`,
		`{"active":true,"exp":"1900000000"}`,
		`{"active":true,"exp":null,"aud":null,"scope":null,"nbf":null}`,
		`{"active":true,"active":false}`,
		`{"sub":"a","sub":"b","active":true}`,
		`{"active":"true"}`,
		`{"active":null}`,
		`{"active":1}`,
		`{"active":true,"token_use":"refresh_token"}`,
		`{"active":true,"token_type":"Refresh","username":"bob"}`,
		`{"active":true,"sub":{"id":1},"username":7}`,
		`{"active":true}trailing`,
		`{"active":true} {"active":false}`,
		`{}`, `[]`, `null`, `true`, ``, `{`, `{"active":`, "\xff\xfe", `"active"`,
		`{"\u0061ctive":true}`,
		`{"active":true,"scope":"` + strings.Repeat("s ", 1000) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseIntrospection(body)
		if err != nil {
			if r != nil {
				t.Fatalf("both a result and an error (%v)", err)
			}
			return
		}
		if r == nil || r.claims == nil {
			t.Fatal("no error and no result")
		}
		if r.active && string(r.claims["active"]) != "true" {
			t.Fatalf("active result for active member %q", r.claims["active"])
		}
		if !r.active && (r.subject != "" || len(r.scopes) != 0 || r.hasExp) {
			t.Fatalf("inactive result carries fields: %+v", r)
		}
		if r.active {
			// What is accepted must turn into a principal or a classified
			// refusal, never a panic.
			km := &KeyManager{def: Definition{ClockSkew: Duration(DefaultClockSkew)}}
			if err := km.principalFromIntrospection(r, baseTime, ""); err != nil && Classify(err).Kind == KindInternal {
				t.Fatalf("unclassified refusal %v", err)
			}
		}
	})
}

func TestIntrospectionCacheLivesAtLeastItsTTL(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		now  time.Time
		ttl  time.Duration
		want int64
	}{
		{"made on a second boundary: exactly the TTL", base, time.Second, base.Unix() + 1},
		{"made just before a boundary: not dead a millisecond later", base.Add(999 * time.Millisecond), time.Second, base.Unix() + 2},
		{"made just after a boundary: rounded up, less than TTL+1s", base.Add(time.Millisecond), time.Second, base.Unix() + 2},
		{"sub-second TTL still lives to the next whole second", base.Add(100 * time.Millisecond), 300 * time.Millisecond, base.Unix() + 1},
		{"zero TTL on a boundary dies at once", base, 0, base.Unix()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cacheUntil(tc.now, tc.ttl)
			if got != tc.want {
				t.Fatalf("cacheUntil = %d, want %d", got, tc.want)
			}
			if life := time.Unix(got, 0).Sub(tc.now); life < tc.ttl || life >= tc.ttl+time.Second {
				t.Fatalf("entry lives %s, want within [%s, %s)", life, tc.ttl, tc.ttl+time.Second)
			}
		})
	}
}
