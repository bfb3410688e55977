package keymanagers

// Attack suite of the domain: hostile tokens, headers, claims and
// introspection inputs that gateway_test.go and introspect_test.go do not
// already cover (jku/x5u/x5c/inline jwk, tenant isolation, alg none, HS/RS
// confusion, basic tampering, the common exp variants and crit lists are
// covered there). Every case names the attack and the expected domain
// error; every table runs with a DEBUG logger whose entries are searched
// for tokens, signatures and secrets afterwards.
//
// Helpers here are prefixed "atk" so they cannot collide with helpers of
// other test files of the package.

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	atkPartnerIssuer = "https://partner.example.com"
	atkHMACIssuer    = "https://hmac.example.com"
	atkPlainIssuer   = "https://idp.test"
	atkIntroIssuer   = "https://intro.example.com"
	atkSharedSecret  = "atk-shared-secret-7f3e9c1b5a2d4e6f8a0b"
	atkClientSecret  = "atk-client-secret-Q2w9Ez7Rt5Yu3Io1Pa8S"
	atkClientID      = "atk-gateway-client"
)

// atkObserved returns a DEBUG logger that records everything.
func atkObserved() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// atkLogText renders one entry: message, then every field (context
// fields included) as key=value, errors by their Error text.
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

// atkNeedles are the secrets of one token that must never be logged: the
// token itself, its signature part, and (for long tokens) long prefixes
// and suffixes, which catch truncated echoes. Needles shorter than 12
// bytes would match innocent text and are left out.
func atkNeedles(token string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 12 {
			out = append(out, s)
		}
	}
	add(token)
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		add(token[i+1:])
	}
	if len(token) >= 64 && !strings.HasPrefix(token, "eyJ") {
		// An opaque token's prefix is as secret as the token. (A JWT's
		// first bytes are its header, which is no secret.)
		add(token[:32])
	}
	if len(token) >= 64 {
		add(token[len(token)-32:])
	}
	return out
}

// atkAssertLogsClean fails when any log entry contains any needle.
func atkAssertLogsClean(tb testing.TB, logs *observer.ObservedLogs, needles []string) {
	tb.Helper()
	for _, e := range logs.All() {
		text := atkLogText(e)
		for _, n := range needles {
			if n != "" && strings.Contains(text, n) {
				show := n
				if len(show) > 40 {
					show = show[:40] + "..."
				}
				tb.Errorf("log entry %q (level %s) contains a secret (%q)", e.Message, e.Level, show)
			}
		}
	}
}

// atkNoEcho fails when the error text or its client description contains
// the token (or its signature).
func atkNoEcho(tb testing.TB, err error, token string) {
	tb.Helper()
	if err == nil {
		return
	}
	for _, n := range atkNeedles(token) {
		if strings.Contains(err.Error(), n) || strings.Contains(Classify(err).Description, n) {
			tb.Fatalf("error %q echoes (part of) the token", err.Error())
		}
	}
}

// atkKM builds and registers nothing: it prepares def and builds its
// runtime with the observed logger.
func atkKM(tb testing.TB, logger *zap.Logger, now func() time.Time, tenant string, def Definition) *KeyManager {
	tb.Helper()
	prepared, err := Prepare(def, nil)
	if err != nil {
		tb.Fatalf("Prepare(%s): %v", def.Name, err)
	}
	km, err := NewKeyManager(tenant, prepared, Options{Logger: logger, Now: now})
	if err != nil {
		tb.Fatalf("NewKeyManager(%s): %v", def.Name, err)
	}
	tb.Cleanup(km.Close)
	return km
}

// atkIntrospector is an RFC 7662 endpoint that records every form it
// receives, exactly as the server parses it, and answers with respond.
type atkIntrospector struct {
	*httptest.Server
	calls atomic.Int64

	mu      sync.Mutex
	forms   []url.Values
	auths   []string
	respond func(w http.ResponseWriter, token string)
}

func newAtkIntrospector(tb testing.TB) *atkIntrospector {
	tb.Helper()
	s := &atkIntrospector{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		form, err := url.ParseQuery(string(body))
		if err != nil {
			form = url.Values{"unparsable": {err.Error()}}
		}
		s.mu.Lock()
		s.forms = append(s.forms, form)
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		respond := s.respond
		s.mu.Unlock()
		if respond != nil {
			respond(w, form.Get("token"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":false}`)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *atkIntrospector) setRespond(fn func(w http.ResponseWriter, token string)) {
	s.mu.Lock()
	s.respond = fn
	s.mu.Unlock()
}

func (s *atkIntrospector) last() (url.Values, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.forms) == 0 {
		return nil, "", 0
	}
	return s.forms[len(s.forms)-1], s.auths[len(s.auths)-1], len(s.forms)
}

// atkEnv is a gateway with an observed logger over:
//
//	tenant acme:   idp (JWKS of ka, issuer testIssuer), partner (JWKS of
//	               kb), hmac (shared secret), plain (JWKS of ka, issuer
//	               https://idp.test)
//	tenant opaque: intro (introspection only, client_secret_basic)
type atkEnv struct {
	clock  *testClock
	logs   *observer.ObservedLogs
	g      *Gateway
	ka, kb testKey
	jwksA  *docServer
	jwksB  *docServer
	intro  *atkIntrospector
	kms    map[string]*KeyManager
}

func newAtkEnv(tb testing.TB) *atkEnv {
	tb.Helper()
	logger, logs := atkObserved()
	e := &atkEnv{clock: newTestClock(), logs: logs, kms: map[string]*KeyManager{},
		ka: rsaKey(tb, "rsa-a", "ka", "RS256"), kb: rsaKey(tb, "rsa-b", "kb", "RS256")}
	e.jwksA = newJWKSServer(tb, e.ka)
	e.jwksB = newJWKSServer(tb, e.kb)
	e.intro = newAtkIntrospector(tb)
	tenants := map[string][]*KeyManager{}
	add := func(tenant string, def Definition) {
		km := atkKM(tb, logger, e.clock.Now, tenant, def)
		e.kms[def.Name] = km
		tenants[tenant] = append(tenants[tenant], km)
	}
	add(testTenant, Definition{Name: "idp", Issuer: testIssuer, JWKSURL: e.jwksA.JWKSURL()})
	add(testTenant, Definition{Name: "partner", Issuer: atkPartnerIssuer, JWKSURL: e.jwksB.JWKSURL()})
	add(testTenant, Definition{Name: "hmac", Issuer: atkHMACIssuer, SharedSecret: atkSharedSecret})
	add(testTenant, Definition{Name: "plain", Issuer: atkPlainIssuer, JWKSURL: e.jwksA.JWKSURL()})
	add("opaque", Definition{Name: "intro", Issuer: atkIntroIssuer, IntrospectionURL: e.intro.URL + "/introspect",
		ClientID: atkClientID, ClientSecret: atkClientSecret, TokenValidation: ValidationIntrospection,
		Timeout: Duration(2 * time.Second)})
	reg, err := NewRegistry(tenants, nil)
	if err != nil {
		tb.Fatalf("NewRegistry: %v", err)
	}
	for _, km := range reg.All() {
		km.Start()
	}
	for _, km := range reg.All() {
		waitSettled(tb, km)
	}
	cache, err := NewResultCache(CacheConfig{SizeBytes: 4 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cache.Close() })
	e.g = NewGateway(reg, cache, logger, e.clock.Now)
	return e
}

func (e *atkEnv) claims(iss string) map[string]any { return claimsAt(iss, e.clock.Now()) }

// atkCase is one attack on the JWT path.
type atkCase struct {
	name   string
	tenant string // default testTenant
	token  string
	want   *Error // nil: accepted
	check  func(tb testing.TB, p *Principal)
}

// run authenticates every case twice (fresh, then possibly cached), checks
// the outcome and that nothing echoes or logs the token.
func (e *atkEnv) run(t *testing.T, cases []atkCase, secrets ...string) {
	t.Helper()
	var needles []string
	needles = append(needles, atkSharedSecret, atkClientSecret)
	needles = append(needles, secrets...)
	for _, tc := range cases {
		needles = append(needles, atkNeedles(tc.token)...)
		t.Run(tc.name, func(t *testing.T) {
			tenant := tc.tenant
			if tenant == "" {
				tenant = testTenant
			}
			for i := 0; i < 2; i++ {
				p, err := e.g.Authenticate(context.Background(), tenant, nil, tc.token)
				checkErr(t, err, tc.want)
				atkNoEcho(t, err, tc.token)
				if err == nil && tc.check != nil {
					tc.check(t, p)
				}
			}
		})
	}
	atkAssertLogsClean(t, e.logs, needles)
}

// atkRaw joins base64url parts of raw header and payload bytes with a
// signature over them by k (so only the content is hostile).
func atkRaw(tb testing.TB, k testKey, header, payload string) string {
	tb.Helper()
	return craft(tb, k.Alg, k.SigningKey(), header, payload)
}

func atkHdr(k testKey) string { return `{"alg":"` + k.Alg + `","kid":"` + k.KID + `","typ":"JWT"}` }

func atkPayload(iss string, now time.Time, extra string) string {
	p := fmt.Sprintf(`{"iss":%q,"sub":"alice","exp":%d,"iat":%d`, iss, now.Add(time.Hour).Unix(), now.Unix())
	if extra != "" {
		p += "," + extra
	}
	return p + "}"
}

// ---------------------------------------------------------------------------
// JWT path

func TestAttack_KidInjection(t *testing.T) {
	e := newAtkEnv(t)
	e.clock.Advance(time.Hour) // past the refresh floor: unknown kids may cause one refetch
	before := e.jwksA.Hits.Load()
	kid := func(k string) string {
		return craftWith(t, e.ka, map[string]any{"kid": k}, e.claims(testIssuer))
	}
	rawKid := func(raw string) string {
		return atkRaw(t, e.ka, `{"alg":"RS256","typ":"JWT","kid":`+raw+`}`, mustString(t, e.claims(testIssuer)))
	}
	cases := []atkCase{
		{name: "control: the published kid", token: kid("ka")},
		{name: "path traversal kid is an unknown key", token: kid("../../etc/passwd"), want: ErrUnknownKey},
		{name: "path traversal to the JWKS itself", token: kid("../jwks?kid=ka"), want: ErrUnknownKey},
		{name: "URL kid is an unknown key", token: kid(e.jwksB.JWKSURL()), want: ErrUnknownKey},
		{name: "SQL injection kid is an unknown key", token: kid("' OR 1=1 --"), want: ErrUnknownKey},
		{name: "SQL injection naming the real kid", token: kid("ka' OR '1'='1"), want: ErrUnknownKey},
		{name: "NUL byte after the real kid", token: kid("ka\x00"), want: ErrUnknownKey},
		{name: "NUL byte before the real kid", token: kid("\x00ka"), want: ErrUnknownKey},
		{name: "escaped NUL in raw JSON", token: rawKid(`"ka\u0000evil"`), want: ErrUnknownKey},
		{name: "real kid with trailing space", token: kid("ka "), want: ErrUnknownKey},
		{name: "real kid upper-cased", token: kid("KA"), want: ErrUnknownKey},
		{name: "real kid with a Cyrillic homoglyph", token: kid("kа"), want: ErrUnknownKey},
		{name: "CRLF header injection kid", token: kid("ka\r\nX-Injected: 1"), want: ErrUnknownKey},
		{name: "format-string kid", token: kid("%s%s%s%n%x"), want: ErrUnknownKey},
		{name: "very long kid (64 KiB)", token: kid(strings.Repeat("k", 64<<10)), want: ErrUnknownKey},
		{name: "very long kid (512 KiB)", token: kid(strings.Repeat("../", 170<<10)), want: ErrUnknownKey},
		{name: "kid as a NoSQL operator object is malformed", token: rawKid(`{"$ne":null}`), want: ErrMalformedToken},
		{name: "kid as an array is malformed", token: rawKid(`["ka"]`), want: ErrMalformedToken},
		{name: "kid as a number is malformed", token: rawKid(`1`), want: ErrMalformedToken},
		{name: "kid null is no kid (the one RSA key serves)", token: rawKid(`null`)},
	}
	e.run(t, cases)
	if d := e.jwksA.Hits.Load() - before; d > 1 {
		t.Fatalf("unknown kids caused %d JWKS fetches, want at most 1 (refresh floor)", d)
	}
}

func mustString(tb testing.TB, v any) string { return string(jsonOf(tb, v)) }

func TestAttack_CritHeaderVariants(t *testing.T) {
	// gateway_test.go covers crit ["exp"], ["b64"], [], "exp" and null.
	e := newAtkEnv(t)
	crit := func(raw string) string {
		return atkRaw(t, e.ka, `{"alg":"RS256","kid":"ka","crit":`+raw+`}`, mustString(t, e.claims(testIssuer)))
	}
	cases := []atkCase{
		{name: "crit as an empty object", token: crit(`{}`), want: ErrCritHeader},
		{name: "crit as a number", token: crit(`0`), want: ErrCritHeader},
		{name: "crit false", token: crit(`false`), want: ErrCritHeader},
		{name: "crit empty string", token: crit(`""`), want: ErrCritHeader},
		{name: "crit list of null", token: crit(`[null]`), want: ErrCritHeader},
		{name: "crit naming a header the gateway reads (alg)", token: crit(`["alg"]`), want: ErrCritHeader},
		{name: "crit with whitespace around null is still null", token: crit(` null `)},
		{name: "crit twice (null then a list) is a duplicate", token: atkRaw(t, e.ka, `{"alg":"RS256","kid":"ka","crit":null,"crit":["exp"]}`, mustString(t, e.claims(testIssuer))), want: ErrMalformedToken},
		{name: "CRIT (other case) is an unknown, ignored header", token: craftWith(t, e.ka, map[string]any{"CRIT": []string{"exp"}}, e.claims(testIssuer))},
	}
	e.run(t, cases)
}

func TestAttack_JunkTokens(t *testing.T) {
	// gateway_test.go covers "..", "....", JWE, "a*b.c*d.e*f", JSON
	// arrays, non-JSON header and payload, padded and std base64.
	e := newAtkEnv(t)
	now := e.clock.Now()
	good := atkPayload(testIssuer, now, "")
	hdr := atkHdr(e.ka)
	signed := func(payload string) string { return atkRaw(t, e.ka, hdr, payload) }
	valid := signed(good)
	nested := strings.Repeat("[", 1<<16) + strings.Repeat("]", 1<<16)
	cases := []atkCase{
		{name: "a single dot is opaque", token: ".", want: ErrOpaqueToken},
		{name: "three dots are opaque", token: "...", want: ErrOpaqueToken},
		{name: "a.b.c is malformed base64", token: "a.b.c", want: ErrMalformedToken},
		{name: "eyJ.eyJ.sig is malformed", token: "eyJ.eyJ.sig", want: ErrMalformedToken},
		{name: "base64 of non-JSON header and payload", token: b64e([]byte("hello")) + "." + b64e([]byte("world")) + ".c2ln", want: ErrMalformedToken},
		{name: "header null", token: b64e([]byte("null")) + "." + b64e([]byte(good)) + ".c2ln", want: ErrMalformedToken},
		{name: "header a JSON string", token: b64e([]byte(`"RS256"`)) + "." + b64e([]byte(good)) + ".c2ln", want: ErrMalformedToken},
		{name: "header {} has no alg", token: atkRaw(t, e.ka, `{}`, good), want: ErrAlgorithm},
		{name: "signed payload null", token: signed(`null`), want: ErrMalformedToken},
		{name: "signed payload a JSON string", token: signed(`"` + valid + `"`), want: ErrMalformedToken},
		{name: "signed payload a number", token: signed(`42`), want: ErrMalformedToken},
		{name: "signed payload true", token: signed(`true`), want: ErrMalformedToken},
		{name: "signed empty payload", token: signed(``), want: ErrMalformedToken},
		{name: "signed payload {} has no issuer", token: signed(`{}`), want: ErrUnknownIssuer},
		{name: "signed payload with trailing garbage", token: signed(good + "x"), want: ErrMalformedToken},
		{name: "signed payload of two objects", token: signed(good + good), want: ErrMalformedToken},
		{name: "signed payload with a UTF-8 BOM", token: signed("\ufeff" + good), want: ErrMalformedToken},
		{name: "signed payload with surrounding white space is still one object", token: signed(" \n" + good + "\t ")},
		{name: "header nested 65536 deep", token: atkRaw(t, e.ka, `{"alg":"RS256","kid":"ka","x":`+nested+`}`, good), want: ErrMalformedToken},
		{name: "payload nested 65536 deep", token: signed(`{"iss":"` + testIssuer + `","x":` + nested + `}`), want: ErrMalformedToken},
		{name: "token with a leading space", token: " " + valid, want: ErrTokenSyntax},
		{name: "token with a trailing newline", token: valid + "\n", want: ErrTokenSyntax},
		{name: "Bearer prefix left in the token", token: "Bearer " + valid, want: ErrTokenSyntax},
		{name: "token with a NUL byte", token: valid[:20] + "\x00" + valid[20:], want: ErrTokenSyntax},
		{name: "token with a trailing =", token: valid + "=", want: ErrMalformedToken},
		{name: "token of only =", token: "===", want: ErrTokenSyntax},
		{name: "empty header part", token: "." + strings.SplitN(valid, ".", 2)[1], want: ErrMalformedToken},
		{name: "token over MaxTokenSize", token: valid + strings.Repeat("A", MaxTokenSize), want: ErrTokenTooLarge},
		{name: "JWE-shaped 5 parts with cty JWT", token: b64e([]byte(`{"alg":"dir","enc":"A128GCM","cty":"JWT"}`)) + ".." + b64e([]byte("iv")) + "." + b64e([]byte(valid)) + "." + b64e([]byte("tag")), want: ErrEncryptedToken},
	}
	e.run(t, cases)
}

func TestAttack_UnicodeInHeaderPayloadAndIssuer(t *testing.T) {
	e := newAtkEnv(t)
	now := e.clock.Now()
	hdr := atkHdr(e.ka)
	signed := func(payload string) string { return atkRaw(t, e.ka, hdr, payload) }
	iss := func(i string) string {
		return craftWith(t, e.ka, nil, with(e.claims(atkPlainIssuer), map[string]any{"iss": i}))
	}
	subject := "ａｌｉｃｅ \u202egnp.exe 🙂 ünïcödé"
	cases := []atkCase{
		{name: "control: https://idp.test", token: iss(atkPlainIssuer)},
		{name: "homoglyph issuer with Cyrillic і is unknown", token: iss("https://іdp.test"), want: ErrUnknownIssuer},
		{name: "homoglyph issuer of testIssuer is unknown", token: iss("https://idp.ехample.com"), want: ErrUnknownIssuer},
		{name: "fullwidth issuer is unknown", token: iss("https://ｉｄｐ.test"), want: ErrUnknownIssuer},
		{name: "zero-width space in the issuer", token: iss("https://i\u200bdp.test"), want: ErrUnknownIssuer},
		{name: "combining dot above (NFD) issuer", token: iss("https://i\u0307dp.test"), want: ErrUnknownIssuer},
		{name: "punycode of the homoglyph", token: iss("https://xn--dp-jjc.test"), want: ErrUnknownIssuer},
		{name: "percent-encoded issuer", token: iss("https://%69dp.test"), want: ErrUnknownIssuer},
		{name: "issuer with a trailing NUL", token: iss(atkPlainIssuer + "\x00"), want: ErrUnknownIssuer},
		{name: "issuer with an invalid UTF-8 byte", token: signed(`{"iss":"https://idp.test` + "\xff" + `","exp":` + itoa(now.Add(time.Hour).Unix()) + `}`), want: ErrUnknownIssuer},
		{name: "JSON-escaped issuer decodes to the same string (accepted)", token: signed(`{"iss":"https:\/\/\u0069dp.test","exp":` + itoa(now.Add(time.Hour).Unix()) + `}`),
			check: func(tb testing.TB, p *Principal) {
				if p.KeyManager != "plain" || p.Issuer != atkPlainIssuer {
					tb.Fatalf("principal %+v", p)
				}
			}},
		{name: "unicode subject is kept byte for byte", token: craftWith(t, e.ka, nil, with(e.claims(testIssuer), map[string]any{"sub": subject})),
			check: func(tb testing.TB, p *Principal) {
				if p.Subject != subject {
					tb.Fatalf("Subject = %q, want %q", p.Subject, subject)
				}
			}},
		{name: "unicode typ is no at+jwt but accepted without require_at_jwt", token: craftWith(t, e.ka, map[string]any{"typ": "аt+jwt"}, e.claims(testIssuer))},
		{name: "control: a plain RS256 header", token: atkRaw(t, e.ka, `{"alg":"RS256","kid":"ka"}`, mustString(t, e.claims(testIssuer)))},
		{name: "alg RS256 with a trailing NUL is not allowed", token: b64e([]byte(`{"alg":"RS256\u0000","kid":"ka"}`)) + "." + b64e([]byte(atkPayload(testIssuer, now, ""))) + ".c2ln", want: ErrAlgorithm},
		{name: "alg with a homoglyph is not allowed", token: b64e([]byte(`{"alg":"RЅ256","kid":"ka"}`)) + "." + b64e([]byte(atkPayload(testIssuer, now, ""))) + ".c2ln", want: ErrAlgorithm},
	}
	e.run(t, cases)
}

func TestAttack_DuplicateMembers(t *testing.T) {
	e := newAtkEnv(t)
	now := e.clock.Now()
	exp := itoa(now.Add(time.Hour).Unix())
	body := atkPayload(testIssuer, now, "")
	hdr := atkHdr(e.ka)
	cases := []atkCase{
		{name: "alg twice (none then RS256)", token: atkRaw(t, e.ka, `{"alg":"none","alg":"RS256","kid":"ka"}`, body), want: ErrMalformedToken},
		{name: "alg twice (RS256 then none)", token: atkRaw(t, e.ka, `{"alg":"RS256","kid":"ka","alg":"none"}`, body), want: ErrMalformedToken},
		{name: "alg twice with the same value", token: atkRaw(t, e.ka, `{"alg":"RS256","alg":"RS256","kid":"ka"}`, body), want: ErrMalformedToken},
		{name: "alg twice, once escaped (\\u0061lg)", token: atkRaw(t, e.ka, `{"alg":"RS256","\u0061lg":"HS256","kid":"ka"}`, body), want: ErrMalformedToken},
		{name: "kid twice (attacker's then the real one)", token: atkRaw(t, e.ka, `{"alg":"RS256","kid":"kb","kid":"ka"}`, body), want: ErrMalformedToken},
		{name: "iss twice (partner then idp)", token: atkRaw(t, e.ka, hdr, `{"iss":"`+atkPartnerIssuer+`","iss":"`+testIssuer+`","exp":`+exp+`}`), want: ErrMalformedToken},
		{name: "iss twice (idp then partner), signed by the partner", token: atkRaw(t, e.kb, atkHdr(e.kb), `{"iss":"`+testIssuer+`","iss":"`+atkPartnerIssuer+`","exp":`+exp+`}`), want: ErrMalformedToken},
		{name: "iss twice, once escaped (\\u0069ss)", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","\u0069ss":"`+atkPartnerIssuer+`","exp":`+exp+`}`), want: ErrMalformedToken},
		{name: "exp twice (expired then far future)", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","exp":1,"exp":`+exp+`}`), want: ErrMalformedToken},
		{name: "scope twice", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","exp":`+exp+`,"scope":"read","scope":"admin"}`), want: ErrMalformedToken},
		{name: "sub twice", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","exp":`+exp+`,"sub":"alice","sub":"root"}`), want: ErrMalformedToken},
		{name: "duplicates inside a nested claim are not top-level claims (accepted)", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","exp":`+exp+`,"x":{"a":1,"a":2}}`)},
	}
	e.run(t, cases)
}

func TestAttack_TimeClaimEdgeValues(t *testing.T) {
	// gateway_test.go covers exp as string, -1, 1e300, 2^63-1, null, true,
	// array, fractional and exponent notation.
	e := newAtkEnv(t)
	now := e.clock.Now()
	hdr := atkHdr(e.ka)
	exp := func(raw string) string {
		return atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","sub":"alice","exp":`+raw+`}`)
	}
	withRaw := func(extra string) string { return atkRaw(t, e.ka, hdr, atkPayload(testIssuer, now, extra)) }
	cases := []atkCase{
		{name: "exp 1e309 (overflows float64)", token: exp(`1e309`), want: ErrNoExpiry},
		{name: "exp -1e309", token: exp(`-1e309`), want: ErrNoExpiry},
		{name: "exp -0 is the epoch: expired", token: exp(`-0`), want: ErrExpired},
		{name: "exp 0 is expired", token: exp(`0`), want: ErrExpired},
		{name: "exp 1e-7 is expired", token: exp(`1e-7`), want: ErrExpired},
		{name: "exp -1e-9 is negative", token: exp(`-1e-9`), want: ErrNoExpiry},
		{name: "exp 1e15 is the largest accepted", token: exp(`1e15`),
			check: func(tb testing.TB, p *Principal) {
				if p.ExpiresAt > now.Add(time.Hour).Unix() {
					tb.Fatalf("ExpiresAt %d is beyond the cache's max TTL", p.ExpiresAt)
				}
			}},
		{name: "exp 1e15+1", token: exp(`1000000000000001`), want: ErrNoExpiry},
		{name: "exp \"-1\" string", token: exp(`"-1"`), want: ErrNoExpiry},
		{name: "exp as an object", token: exp(`{"$gt":0}`), want: ErrNoExpiry},
		{name: "exp NaN is not JSON", token: exp(`NaN`), want: ErrMalformedToken},
		{name: "exp Infinity is not JSON", token: exp(`Infinity`), want: ErrMalformedToken},
		{name: "exp with a leading + is not JSON", token: exp(`+4102444800`), want: ErrMalformedToken},
		{name: "exp with a leading zero is not JSON", token: exp(`04102444800`), want: ErrMalformedToken},
		{name: "exp hexadecimal is not JSON", token: exp(`0x7fffffff`), want: ErrMalformedToken},
		{name: "nbf 1e309 is malformed", token: withRaw(`"nbf":1e309`), want: ErrMalformedToken},
		{name: "nbf true is malformed", token: withRaw(`"nbf":true`), want: ErrMalformedToken},
		{name: "iat -1 is malformed", token: atkRaw(t, e.ka, hdr, `{"iss":"`+testIssuer+`","exp":`+itoa(now.Add(time.Hour).Unix())+`,"iat":-1}`), want: ErrMalformedToken},
		{name: "nbf null is malformed", token: withRaw(`"nbf":null`), want: ErrMalformedToken},
	}
	e.run(t, cases)
}

func TestAttack_NestedJWT(t *testing.T) {
	e := newAtkEnv(t)
	inner := mint(t, e.ka, e.claims(testIssuer), nil)
	innerPartner := mint(t, e.kb, e.claims(atkPartnerIssuer), nil)
	cty := `{"alg":"RS256","kid":"ka","cty":"JWT"}`
	cases := []atkCase{
		{name: "payload is a JSON string holding a valid JWT", token: atkRaw(t, e.ka, atkHdr(e.ka), `"`+inner+`"`), want: ErrMalformedToken},
		{name: "cty JWT, payload is the raw inner JWT", token: atkRaw(t, e.ka, cty, inner), want: ErrMalformedToken},
		{name: "cty JWT, attacker-signed outer around a partner JWT", token: atkRaw(t, e.kb, `{"alg":"RS256","kid":"kb","cty":"JWT"}`, innerPartner+"x"), want: ErrMalformedToken},
		{name: "payload is an object holding a JWT claim", token: craftWith(t, e.kb, nil, with(e.claims("https://evil.example.com"), map[string]any{"token": inner})), want: ErrUnknownIssuer},
		{name: "cty JWT with a plain claims payload is judged as a plain JWT", token: atkRaw(t, e.ka, cty, mustString(t, e.claims(testIssuer)))},
		{name: "JWT whose signature part is another JWT (5 parts)", token: strings.Join(strings.Split(inner, ".")[:2], ".") + "." + inner, want: ErrEncryptedToken},
	}
	e.run(t, cases)
}

func TestAttack_KeyConfusionAcrossKeyManagers(t *testing.T) {
	e := newAtkEnv(t)
	ka, kb := e.ka, e.kb
	kbWithKidA := testKey{KID: "ka", Alg: "RS256", Priv: kb.Priv}
	hs := testKey{KID: "ka", Alg: "HS256", Secret: []byte(atkSharedSecret)}
	ec := ecKey(t, "p256-a", "ka")
	cases := []atkCase{
		{name: "control: partner token signed by the partner", token: mint(t, kb, e.claims(atkPartnerIssuer), nil),
			check: func(tb testing.TB, p *Principal) {
				if p.KeyManager != "partner" {
					tb.Fatalf("KeyManager = %q", p.KeyManager)
				}
			}},
		{name: "iss of idp, signed with the partner's key and kid", token: mint(t, kb, e.claims(testIssuer), nil), want: ErrUnknownKey},
		{name: "iss of idp, signed with the partner's key under idp's kid", token: mint(t, kbWithKidA, e.claims(testIssuer), nil), want: ErrBadSignature},
		{name: "iss of idp, signed with the partner's key, no kid", token: craftWith(t, kb, map[string]any{"kid": nil}, e.claims(testIssuer)), want: ErrBadSignature},
		{name: "iss of partner, signed with idp's key and kid", token: mint(t, ka, e.claims(atkPartnerIssuer), nil), want: ErrUnknownKey},
		{name: "iss of plain (same JWKS as idp), signed with idp's key", token: mint(t, ka, e.claims(atkPlainIssuer), nil),
			check: func(tb testing.TB, p *Principal) {
				if p.KeyManager != "plain" {
					tb.Fatalf("KeyManager = %q", p.KeyManager)
				}
			}},
		{name: "iss of idp, HS256 with the hmac Key Manager's shared secret", token: craftWith(t, hs, nil, e.claims(testIssuer)), want: ErrAlgorithm},
		{name: "iss of hmac, RS256 with idp's key", token: mint(t, ka, e.claims(atkHMACIssuer), nil), want: ErrAlgorithm},
		{name: "iss of idp, ES256 under idp's RSA kid", token: craftWith(t, ec, nil, e.claims(testIssuer)), want: ErrUnknownKey},
		{name: "iss of idp signed by idp, presented to the opaque tenant", tenant: "opaque", token: mint(t, ka, e.claims(testIssuer), nil), want: ErrUnknownIssuer},
	}
	e.run(t, cases)
}

// ---------------------------------------------------------------------------
// Opaque path

func TestAttack_OpaqueTokensReachIntrospectionIntactAsOneFormField(t *testing.T) {
	e := newAtkEnv(t)
	e.intro.setRespond(func(w http.ResponseWriter, token string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": "sub-of-" + fmt.Sprint(len(token)),
			"exp": e.clock.Now().Add(time.Hour).Unix(), "iss": atkIntroIssuer})
	})
	// b64token characters that form encoding must escape.
	intact := []struct{ name, token string }{
		{"plus signs (a space once form-decoded)", "a+b+c"},
		{"slashes", "a/b//c/"},
		{"trailing equals signs", "abc=="},
		{"tilde, dot, dash and underscore", "~a.b-c_d~"},
		{"a plus-only token", "++++"},
		{"1 MiB-ish opaque token at MaxTokenSize", strings.Repeat("Zq+", MaxTokenSize/3) + strings.Repeat("/", MaxTokenSize%3)},
	}
	// Characters a b64token cannot hold: refused before anyone is asked.
	refused := []struct{ name, token string }{
		{"form injection of a second token", "abc&token=evil"},
		{"form injection of client credentials", "abc&client_id=evil&client_secret=guess"},
		{"form injection of a token_type_hint", "abc&token_type_hint=refresh_token"},
		{"percent-encoded NUL", "abc%00def"},
		{"percent-encoded ampersand", "abc%26token%3Devil"},
		{"raw NUL byte", "abc\x00def"},
		{"space", "a b"},
		{"equals sign inside", "abc=def"},
		{"CRLF", "abc\r\nX-Injected: 1"},
		{"semicolon (old Go query separator)", "abc;token=evil"},
		{"hash", "abc#fragment"},
		{"unicode", "tökén-🙂"},
		{"invalid UTF-8", "abc\xff\xfedef"},
		{"1 MiB-ish token with one bad character at the end", strings.Repeat("Zq-", MaxTokenSize/3-1) + "&"},
	}
	var needles []string
	for _, tc := range intact {
		needles = append(needles, atkNeedles(tc.token)...)
		t.Run("intact/"+tc.name, func(t *testing.T) {
			before := e.intro.calls.Load()
			p, err := e.g.Authenticate(context.Background(), "opaque", nil, tc.token)
			checkErr(t, err, nil)
			if want := "sub-of-" + fmt.Sprint(len(tc.token)); p.Subject != want {
				t.Fatalf("Subject = %q, want %q (the endpoint saw another token)", p.Subject, want)
			}
			form, auth, _ := e.intro.last()
			if got := e.intro.calls.Load() - before; got != 1 {
				t.Fatalf("%d introspection calls, want 1", got)
			}
			if len(form["token"]) != 1 || form.Get("token") != tc.token {
				t.Fatalf("introspection endpoint received token %q (%d values), want the token as sent", truncate(form.Get("token")), len(form["token"]))
			}
			for k := range form {
				if k != "token" && k != "token_type_hint" {
					t.Fatalf("introspection endpoint received an extra form field %q", k)
				}
			}
			if form.Get("token_type_hint") != "access_token" || len(form["token_type_hint"]) != 1 {
				t.Fatalf("token_type_hint = %q", form["token_type_hint"])
			}
			wantAuth := &http.Request{Header: http.Header{}}
			wantAuth.SetBasicAuth(url.QueryEscape(atkClientID), url.QueryEscape(atkClientSecret))
			if auth != wantAuth.Header.Get("Authorization") {
				t.Fatalf("Authorization %q is not the configured client's", auth)
			}
		})
	}
	for _, tc := range refused {
		needles = append(needles, atkNeedles(tc.token)...)
		t.Run("refused/"+tc.name, func(t *testing.T) {
			before := e.intro.calls.Load()
			_, err := e.g.Authenticate(context.Background(), "opaque", nil, tc.token)
			checkErr(t, err, ErrTokenSyntax)
			atkNoEcho(t, err, tc.token)
			if e.intro.calls.Load() != before {
				t.Fatal("a token that is no b64token was sent to the introspection endpoint")
			}
		})
	}
	t.Run("token over MaxTokenSize is refused without introspection", func(t *testing.T) {
		before := e.intro.calls.Load()
		tok := strings.Repeat("x", MaxTokenSize+1)
		_, err := e.g.Authenticate(context.Background(), "opaque", nil, tok)
		checkErr(t, err, ErrTokenTooLarge)
		if e.intro.calls.Load() != before {
			t.Fatal("an oversized token was sent to the introspection endpoint")
		}
	})
	atkAssertLogsClean(t, e.logs, append(needles, atkClientSecret))
}

// atkRandomIDs is n distinct random ids joined (no repeated substring, so
// a prefix needle cannot match a suffix).
func atkRandomIDs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(randomID())
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// An IdP's error_description often quotes the token it refuses ("Token
// 'abc…' is invalid"). The token must be scrubbed before the description
// is shortened: a long token cut by the length limit would otherwise no
// longer be found, and its first ~190 bytes would reach the log line and
// Status().LastError (regression: fixed in dc5158d).
func TestAttack_IntrospectionErrorEchoingTheTokenIsNotLogged(t *testing.T) {
	for _, tc := range []struct{ name, token string }{
		{"short opaque token", "opq-" + randomID()},
		{"long opaque token cut by the description limit", "opq-" + atkRandomIDs(12)},
		{"token in the error code", "code-" + randomID()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAtkEnv(t)
			e.intro.setRespond(func(w http.ResponseWriter, token string) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				body := map[string]string{"error": "invalid_request", "error_description": "The token " + token + " is malformed (client " + atkClientID + ")"}
				if strings.HasPrefix(token, "code-") {
					body["error"] = token
				}
				_ = json.NewEncoder(w).Encode(body)
			})
			_, err := e.g.Authenticate(context.Background(), "opaque", nil, tc.token)
			checkErr(t, err, ErrIntrospection)
			atkNoEcho(t, err, tc.token)
			needles := append(atkNeedles(tc.token), tc.token[:24], atkClientSecret)
			if st := e.kms["intro"].Status(); st.LastError != "" {
				for _, n := range needles {
					if strings.Contains(st.LastError, n) {
						t.Errorf("Status().LastError %q contains (part of) the token", truncate(st.LastError))
						break
					}
				}
			}
			atkAssertLogsClean(t, e.logs, needles)
		})
	}
}

// The JWKS is the Key Manager's, not the attacker's, but a broken or
// compromised one (or a typo in an admin-made Key Manager) must not crash
// the request path, and degenerate keys must verify nothing. jwx accepts
// an OKP key whose "x" is not 32 bytes, and ed25519.Verify panics on it
// ("ed25519: bad public key length"): any client could then crash every
// request it sends with a kid naming it (regression: fixed in dc5158d).
func TestAttack_MalformedJWKSKeyNeverPanicsTheRequestPath(t *testing.T) {
	logger, logs := atkObserved()
	clock := newTestClock()
	pub := poolKey(t, "rsa-a").Public().(*rsa.PublicKey)
	jwks := newDocServer(t)
	jwks.Serve(http.StatusOK, "application/json", []byte(`{"keys":[`+
		`{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AA","use":"sig"},`+
		`{"kty":"OKP","crv":"Ed25519","kid":"long","x":"`+b64e(make([]byte, 33))+`","use":"sig"},`+
		`{"kty":"EC","crv":"P-256","kid":"zero","x":"AA","y":"AA","use":"sig"},`+
		`{"kty":"RSA","kid":"e1","n":"`+b64e(pub.N.Bytes())+`","e":"AQ","use":"sig"},`+
		`{"kty":"RSA","kid":"e2","n":"`+b64e(pub.N.Bytes())+`","e":"Ag","use":"sig"}`+
		`]}`))
	km := atkKM(t, logger, clock.Now, testTenant, Definition{Name: "broken", Issuer: testIssuer, JWKSURL: jwks.JWKSURL()})
	reg, err := NewRegistry(map[string][]*KeyManager{testTenant: {km}}, nil)
	must(t, err)
	km.Start()
	waitSettled(t, km)
	cache, err := NewResultCache(CacheConfig{SizeBytes: 1 << 20})
	must(t, err)
	t.Cleanup(func() { _ = cache.Close() })
	g := NewGateway(reg, cache, logger, clock.Now)

	payload := b64e([]byte(atkPayload(testIssuer, clock.Now(), "")))
	tok := func(alg, kid string, sig []byte) string {
		return b64e([]byte(`{"alg":"`+alg+`","kid":"`+kid+`"}`)) + "." + payload + "." + b64e(sig)
	}
	// With e=1, "signature" = EMSA-PKCS1-v1_5(SHA-256(input)) verifies
	// under textbook RSA.
	forge := func(alg, kid string) string {
		input := b64e([]byte(`{"alg":"`+alg+`","kid":"`+kid+`"}`)) + "." + payload
		digest := sha256.Sum256([]byte(input))
		prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
		k := (pub.N.BitLen() + 7) / 8
		em := make([]byte, k)
		em[1] = 1
		for i := 2; i < k-len(prefix)-32-1; i++ {
			em[i] = 0xff
		}
		copy(em[k-len(prefix)-32:], prefix)
		copy(em[k-32:], digest[:])
		return input + "." + b64e(em)
	}
	cases := []struct {
		name  string
		token string
	}{
		{"EdDSA under a 1-byte Ed25519 key", tok("EdDSA", "short", make([]byte, 64))},
		{"EdDSA under a 33-byte Ed25519 key", tok("EdDSA", "long", make([]byte, 64))},
		{"ES256 under the point (0,0)", tok("ES256", "zero", make([]byte, 64))},
		{"RS256 forged for e=1", forge("RS256", "e1")},
		{"RS256 forged for e=2", forge("RS256", "e2")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Authenticate panicked: %v", r)
					}
				}()
				_, err = g.Authenticate(context.Background(), testTenant, nil, tc.token)
			}()
			if err == nil {
				t.Fatal("a degenerate JWKS key verified a forged token")
			}
			if k := Classify(err).Kind; k != KindInvalid && k != KindUnavailable {
				t.Fatalf("error %v of kind %d", err, k)
			}
		})
	}
	atkAssertLogsClean(t, logs, nil)
}

// An introspection endpoint that redirects (a misconfigured load
// balancer, an open redirect on the IdP's host, a compromised IdP) must
// not make the gateway post the client's token, or its own client
// credentials, to another host, nor trust the other host's answer. RFC
// 7662 has no redirects, and on a 307/308 Go resends the POST body
// (regression: the Key Manager's client followed same-scheme redirects to
// any host until 83f3c65).
func TestAttack_IntrospectionRedirectToAnotherHostLeaksNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		auth   string
	}{
		{"307 with client_secret_post", http.StatusTemporaryRedirect, AuthClientSecretPost},
		{"308 with client_secret_post", http.StatusPermanentRedirect, AuthClientSecretPost},
		{"307 with client_secret_basic", http.StatusTemporaryRedirect, AuthClientSecretBasic},
		{"302 with client_secret_basic", http.StatusFound, AuthClientSecretBasic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := atkObserved()
			clock := newTestClock()
			evil := newAtkIntrospector(t)
			evil.setRespond(func(w http.ResponseWriter, token string) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"active":true,"sub":"mallory","exp":`+itoa(clock.Now().Add(time.Hour).Unix())+`}`)
			})
			idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// 127.0.0.1 and localhost are other hosts to net/http.
				http.Redirect(w, r, strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)+"/steal", tc.status)
			}))
			t.Cleanup(idp.Close)
			km := atkKM(t, logger, clock.Now, "opaque", Definition{Name: "intro", Issuer: atkIntroIssuer,
				IntrospectionURL: idp.URL + "/introspect", ClientID: atkClientID, ClientSecret: atkClientSecret,
				IntrospectionAuth: tc.auth, TokenValidation: ValidationIntrospection, Timeout: Duration(2 * time.Second)})
			reg, err := NewRegistry(map[string][]*KeyManager{"opaque": {km}}, nil)
			must(t, err)
			cache, err := NewResultCache(CacheConfig{SizeBytes: 1 << 20})
			must(t, err)
			t.Cleanup(func() { _ = cache.Close() })
			g := NewGateway(reg, cache, logger, clock.Now)
			tok := "opq-" + atkRandomIDs(2)
			p, err := g.Authenticate(context.Background(), "opaque", nil, tok)
			if err == nil {
				t.Errorf("a redirected introspection vouched for the token (subject %q)", p.Subject)
			}
			form, auth, n := evil.last()
			if n > 0 {
				if form.Get("token") == tok {
					t.Errorf("the redirect target received the token")
				}
				if form.Get("client_secret") == atkClientSecret || strings.Contains(auth, "Basic") {
					t.Errorf("the redirect target received the client credentials (form %v, Authorization %q)", form.Has("client_secret"), auth)
				}
			}
			atkAssertLogsClean(t, logs, append(atkNeedles(tok), atkClientSecret))
		})
	}
}
