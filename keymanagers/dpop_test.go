package keymanagers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
)

const dpopURI = "https://api.example.com/orders/1"

// dpopEnv is one Key Manager (its mode set by edit) on a fixture, with a
// client key the tests bind tokens to.
type dpopEnv struct {
	f      *fixture
	idp    testKey
	client testKey
	other  testKey
	route  *Route
}

func newDPoPEnv(t *testing.T, edit func(*Definition), rc RouteConfig) *dpopEnv {
	t.Helper()
	e := &dpopEnv{idp: ecKey(t, "p256-a", "e1"), client: ecKey(t, "p256-client", ""), other: ecKey(t, "p256-other", "")}
	e.f = newFixture(t, e.idp)
	def := e.f.def("idp")
	if edit != nil {
		edit(&def)
	}
	e.f.add(testTenant, def)
	e.f.build()
	r, err := CompileRoute(rc)
	must(t, err)
	e.route = r
	return e
}

// token mints a token bound by cnf (nil: unbound).
func (e *dpopEnv) token(t *testing.T, cnf map[string]any) string {
	c := e.f.claims()
	if cnf != nil {
		c["cnf"] = cnf
	}
	return mint(t, e.idp, c, nil)
}

func (e *dpopEnv) jkt(t *testing.T) map[string]any {
	return map[string]any{"jkt": fakeidp.Thumbprint(t, e.client)}
}

// proof is a valid proof by the client key for token, with changes.
func (e *dpopEnv) proof(t *testing.T, token string, changes map[string]any) string {
	return fakeidp.DPoPProof(t, e.client, "GET", dpopURI, token, e.f.clock.Now(), changes)
}

func (e *dpopEnv) dpop(token string, proofs ...string) *Request {
	return &Request{Tenant: testTenant, Route: e.route, Token: token, Method: "GET", EscapedPath: "/orders/1",
		Scheme: SchemeDPoP, DPoPProofs: proofs, URI: dpopURI}
}

func (e *dpopEnv) bearer(token string) *Request {
	return &Request{Tenant: testTenant, Route: e.route, Token: token, Method: "GET", EscapedPath: "/orders/1", Scheme: SchemeBearer}
}

func (e *dpopEnv) authorize(req *Request) (*Principal, error) {
	return e.f.g.Authorize(context.Background(), req)
}

// jwkJSON is a key's public JWK as JSON (for hand-crafted proofs).
func jwkJSON(t *testing.T, k testKey) map[string]any {
	b, err := json.Marshal(fakeidp.PublicJWK(t, k))
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

func TestAuthorize_DPoPProofIsVerifiedOnEveryCheck(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	tok := e.token(t, e.jkt(t))
	now := e.f.clock.Now()
	claims := func(changes map[string]any) map[string]any {
		return with(fakeidp.DPoPClaims("GET", dpopURI, tok, now), changes)
	}
	hdr := func(changes map[string]any) map[string]any {
		return with(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkJSON(t, e.client)}, changes)
	}
	priv, err := jwk.FromRaw(e.client.Priv)
	must(t, err)
	privJSON, err := json.Marshal(priv)
	must(t, err)
	cases := []struct {
		name  string
		proof func() []string
		want  *Error
	}{
		{"valid proof", func() []string { return []string{e.proof(t, tok, nil)} }, nil},
		{"htu compared after normalisation (case, default port, query)", func() []string {
			return []string{e.proof(t, tok, map[string]any{"htu": "HTTPS://API.Example.com:443/orders/1?x=1#f"})}
		}, nil},
		{"no DPoP header", func() []string { return nil }, ErrDPoPProofMissing},
		{"two DPoP headers", func() []string { return []string{e.proof(t, tok, nil), e.proof(t, tok, nil)} }, ErrDPoPProof},
		{"wrong htm", func() []string { return []string{e.proof(t, tok, map[string]any{"htm": "POST"})} }, ErrDPoPProof},
		{"lower-case htm", func() []string { return []string{e.proof(t, tok, map[string]any{"htm": "get"})} }, ErrDPoPProof},
		{"wrong htu path", func() []string {
			return []string{e.proof(t, tok, map[string]any{"htu": "https://api.example.com/orders/2"})}
		}, ErrDPoPProof},
		{"wrong htu host", func() []string {
			return []string{e.proof(t, tok, map[string]any{"htu": "https://evil.example.com/orders/1"})}
		}, ErrDPoPProof},
		{"wrong htu scheme", func() []string {
			return []string{e.proof(t, tok, map[string]any{"htu": "http://api.example.com/orders/1"})}
		}, ErrDPoPProof},
		{"ath of another token", func() []string { return []string{e.proof(t, tok, map[string]any{"ath": fakeidp.ATH("other")})} }, ErrDPoPProof},
		{"no ath", func() []string { return []string{e.proof(t, tok, map[string]any{"ath": nil})} }, ErrDPoPProof},
		{"iat too old", func() []string {
			return []string{e.proof(t, tok, map[string]any{"iat": now.Add(-DPoPProofMaxAge - time.Second).Unix()})}
		}, ErrDPoPProof},
		{"iat in the future", func() []string {
			return []string{e.proof(t, tok, map[string]any{"iat": now.Add(DPoPProofFutureSkew + time.Second).Unix()})}
		}, ErrDPoPProof},
		{"iat a string", func() []string { return []string{e.proof(t, tok, map[string]any{"iat": "now"})} }, ErrDPoPProof},
		{"no jti", func() []string { return []string{e.proof(t, tok, map[string]any{"jti": nil})} }, ErrDPoPProof},
		{"jti a number", func() []string { return []string{e.proof(t, tok, map[string]any{"jti": 12345})} }, ErrDPoPProof},
		{"htu with a backslash (decoded on the slow path) differs", func() []string {
			return []string{e.proof(t, tok, map[string]any{"htu": "https://api.example.com/orders/1\u0000"})}
		}, ErrDPoPProof},
		{"proof key is not the token's", func() []string {
			return []string{fakeidp.DPoPProof(t, e.other, "GET", dpopURI, tok, now, nil)}
		}, ErrDPoPKeyMismatch},
		{"typ JWT", func() []string {
			return []string{fakeidp.SignDPoP(t, e.client, claims(nil), map[string]any{"typ": "JWT"})}
		}, ErrDPoPProof},
		{"alg none", func() []string {
			h := hdr(map[string]any{"alg": "none"})
			return []string{b64e(jsonOf(t, h)) + "." + b64e(jsonOf(t, claims(nil))) + "."}
		}, ErrDPoPProof},
		{"HS256 with the public key as secret", func() []string {
			return []string{craft(t, "HS256", []byte(fakeidp.Thumbprint(t, e.client)), hdr(map[string]any{"alg": "HS256"}), claims(nil))}
		}, ErrDPoPProof},
		{"private key in the jwk header", func() []string {
			return []string{craft(t, "ES256", e.client.Priv, hdr(map[string]any{"jwk": json.RawMessage(privJSON)}), claims(nil))}
		}, ErrDPoPProof},
		{"no jwk header", func() []string {
			return []string{craft(t, "ES256", e.client.Priv, hdr(map[string]any{"jwk": nil}), claims(nil))}
		}, ErrDPoPProof},
		{"signed by another key than its jwk", func() []string {
			return []string{craft(t, "ES256", e.other.Priv, hdr(nil), claims(nil))}
		}, ErrDPoPProof},
		{"crit header", func() []string {
			return []string{craft(t, "ES256", e.client.Priv, hdr(map[string]any{"crit": []string{"x"}, "x": 1}), claims(nil))}
		}, ErrDPoPProof},
		{"not a JWS", func() []string { return []string{"abc.def"} }, ErrDPoPProof},
		{"too large", func() []string { return []string{strings.Repeat("a", MaxDPoPProofSize+1)} }, ErrDPoPProof},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := e.authorize(e.dpop(tok, c.proof()...))
			checkErr(t, err, c.want)
			if c.want == nil && p.Binding != BoundDPoP {
				t.Fatalf("binding = %q, want dpop", p.Binding)
			}
		})
	}
}

func TestAuthorize_DPoPAcceptsEachProofKeyType(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	for _, k := range []testKey{edKey(t, "ed-client", ""), rsaKey(t, "rsa-client", "", "PS256"), {Alg: "ES384", Priv: poolKey(t, "p384-client")}} {
		t.Run(k.Alg, func(t *testing.T) {
			tok := e.token(t, map[string]any{"jkt": fakeidp.Thumbprint(t, k)})
			p, err := e.authorize(e.dpop(tok, fakeidp.DPoPProof(t, k, "GET", dpopURI, tok, e.f.clock.Now(), nil)))
			checkErr(t, err, nil)
			if p.Binding != BoundDPoP {
				t.Fatalf("binding %q", p.Binding)
			}
		})
	}
}

func TestAuthorize_DPoPReplayIsRefusedOnCacheHits(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	tok := e.token(t, e.jkt(t))
	first := e.proof(t, tok, nil)
	p, err := e.authorize(e.dpop(tok, first))
	checkErr(t, err, nil)
	if p.Cached {
		t.Fatal("first request should be a cache miss")
	}
	p, err = e.authorize(e.dpop(tok, e.proof(t, tok, nil)))
	checkErr(t, err, nil)
	if !p.Cached || p.Binding != BoundDPoP {
		t.Fatalf("second request: cached=%v binding=%q, want a cache hit bound by dpop", p.Cached, p.Binding)
	}
	_, err = e.authorize(e.dpop(tok, first))
	checkErr(t, err, ErrDPoPReplay)
	// The same jti is accepted again only after it can no longer be
	// replayed (its iat is out of the window anyway).
	e.f.clock.Advance(DPoPProofMaxAge + 2*time.Second)
	_, err = e.authorize(e.dpop(tok, first))
	checkErr(t, err, ErrDPoPProof)
}

func TestAuthorize_BoundTokenIsCheckedOnCacheHits(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	tok := e.token(t, e.jkt(t))
	_, err := e.authorize(e.dpop(tok, e.proof(t, tok, nil)))
	checkErr(t, err, nil)
	cases := []struct {
		name string
		req  *Request
		want *Error
		// afterToken: refused by the binding check on the cached result
		// (else by the proof check, before the token is looked at)
		afterToken bool
	}{
		{"as Bearer", e.bearer(tok), ErrBoundAsBearer, true},
		{"proof by another key", e.dpop(tok, fakeidp.DPoPProof(t, e.other, "GET", dpopURI, tok, e.f.clock.Now(), nil)), ErrDPoPKeyMismatch, true},
		{"DPoP scheme without a proof", e.dpop(tok), ErrDPoPProofMissing, false},
		{"proof for another token", e.dpop(tok, e.proof(t, "other-token", nil)), ErrDPoPProof, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := e.authorize(c.req)
			checkErr(t, err, c.want)
			if c.afterToken && (p == nil || !p.Cached) {
				t.Fatal("the refusal should come after a cache hit")
			}
		})
	}
}

func TestAuthorize_DPoPModesOfKeyManagerAndRoute(t *testing.T) {
	cases := []struct {
		name      string
		km, route string
		bound     bool
		scheme    string
		want      *Error
	}{
		{"default allows unbound bearer", "", "", false, SchemeBearer, nil},
		{"default allows bound DPoP", "", "", true, SchemeDPoP, nil},
		{"default refuses unbound DPoP", "", "", false, SchemeDPoP, ErrDPoPUnbound},
		{"km required refuses bearer", BindingRequired, "", false, SchemeBearer, ErrDPoPRequired},
		{"km required accepts bound DPoP", BindingRequired, "", true, SchemeDPoP, nil},
		{"route allowed overrides km required", BindingRequired, BindingAllowed, false, SchemeBearer, nil},
		{"route required overrides km allowed", BindingAllowed, BindingRequired, false, SchemeBearer, ErrDPoPRequired},
		{"km off refuses DPoP scheme", BindingOff, "", true, SchemeDPoP, ErrDPoPDisabled},
		{"km off refuses bound bearer", BindingOff, "", true, SchemeBearer, ErrBoundAsBearer},
		{"km off accepts unbound bearer", BindingOff, "", false, SchemeBearer, nil},
		{"route off refuses DPoP before the token", "", BindingOff, true, SchemeDPoP, ErrDPoPDisabled},
		{"route required overrides km off", BindingOff, BindingRequired, true, SchemeDPoP, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newDPoPEnv(t, func(d *Definition) { d.DPoP = c.km }, RouteConfig{DPoP: c.route})
			var cnf map[string]any
			if c.bound {
				cnf = e.jkt(t)
			}
			tok := e.token(t, cnf)
			req := e.bearer(tok)
			if c.scheme == SchemeDPoP {
				req = e.dpop(tok, e.proof(t, tok, nil))
			}
			p, err := e.authorize(req)
			checkErr(t, err, c.want)
			if c.want == nil {
				want := BoundNone
				if c.bound {
					want = BoundDPoP
				}
				if p.Binding != want {
					t.Fatalf("binding %q, want %q", p.Binding, want)
				}
			}
		})
	}
}

func TestAuthorize_DPoPNonceFlow(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{DPoPNonce: true})
	tok := e.token(t, e.jkt(t))
	_, err := e.authorize(e.dpop(tok, e.proof(t, tok, nil)))
	checkErr(t, err, ErrUseDPoPNonce)
	nonce := e.f.g.DPoPNonce()
	_, err = e.authorize(e.dpop(tok, e.proof(t, tok, map[string]any{"nonce": nonce})))
	checkErr(t, err, nil)
	// The previous period's nonce still works; older ones do not.
	e.f.clock.Advance(DPoPNoncePeriod)
	_, err = e.authorize(e.dpop(tok, e.proof(t, tok, map[string]any{"nonce": nonce})))
	checkErr(t, err, nil)
	e.f.clock.Advance(DPoPNoncePeriod)
	_, err = e.authorize(e.dpop(tok, e.proof(t, tok, map[string]any{"nonce": nonce})))
	checkErr(t, err, ErrUseDPoPNonce)
	forged := nonce[:len(nonce)-2] + "AA"
	_, err = e.authorize(e.dpop(tok, e.proof(t, tok, map[string]any{"nonce": forged})))
	checkErr(t, err, ErrUseDPoPNonce)
	if e.f.g.DPoPNonce() == nonce {
		t.Fatal("the nonce did not change with the period")
	}
	// Bearer requests on the route need no nonce.
	_, err = e.authorize(e.bearer(e.token(t, nil)))
	checkErr(t, err, nil)
}

func TestAuthorize_CertificateBoundTokens(t *testing.T) {
	ca := fakeidp.NewCA(t, "p256-ca")
	certA := ca.Issue(t, "p256-cert-a", "client-a", false)
	certB := ca.Issue(t, "p256-cert-b", "client-b", false)
	sumA, sumB := sha256.Sum256(certA.Certificate[0]), sha256.Sum256(certB.Certificate[0])
	x5tA := map[string]any{"x5t#S256": fakeidp.CertThumbprint(certA)}
	cases := []struct {
		name     string
		mode     string
		cnf      map[string]any
		cert     *[32]byte
		want     *Error
		wantBind string
	}{
		{"bound token with its certificate", "", x5tA, &sumA, nil, BoundMTLS},
		{"bound token with another certificate", "", x5tA, &sumB, ErrCertificateMismatch, ""},
		{"bound token without a certificate", "", x5tA, nil, ErrCertificateMissing, ""},
		{"unbound token, allowed, no certificate", BindingAllowed, nil, nil, nil, BoundNone},
		{"unbound token, allowed, a certificate", BindingAllowed, nil, &sumA, nil, BoundNone},
		{"unbound token, required", BindingRequired, nil, &sumA, ErrCertificateUnbound, ""},
		{"bound token, required", BindingRequired, x5tA, &sumA, nil, BoundMTLS},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newDPoPEnv(t, func(d *Definition) { d.CertificateBound = c.mode }, RouteConfig{})
			tok := e.token(t, c.cnf)
			for round := 0; round < 2; round++ { // miss, then cache hit
				req := e.bearer(tok)
				if c.cert != nil {
					req.ClientCertSHA256, req.HasClientCert = *c.cert, true
				}
				p, err := e.authorize(req)
				checkErr(t, err, c.want)
				if c.want == nil && p.Binding != c.wantBind {
					t.Fatalf("binding %q, want %q", p.Binding, c.wantBind)
				}
			}
		})
	}
	t.Run("DPoP and certificate bound together", func(t *testing.T) {
		e := newDPoPEnv(t, nil, RouteConfig{})
		tok := e.token(t, map[string]any{"jkt": fakeidp.Thumbprint(t, e.client), "x5t#S256": fakeidp.CertThumbprint(certA)})
		req := e.dpop(tok, e.proof(t, tok, nil))
		req.ClientCertSHA256, req.HasClientCert = sumA, true
		p, err := e.authorize(req)
		checkErr(t, err, nil)
		if p.Binding != BoundDPoPMTLS {
			t.Fatalf("binding %q", p.Binding)
		}
		req = e.dpop(tok, e.proof(t, tok, nil))
		req.ClientCertSHA256, req.HasClientCert = sumB, true
		_, err = e.authorize(req)
		checkErr(t, err, ErrCertificateMismatch)
	})
}

func TestAuthorize_ConfirmationClaimIsReadStrictly(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	cases := []struct {
		name string
		cnf  any
		want *Error
	}{
		{"jkt not base64url", map[string]any{"jkt": "not base64!"}, ErrMalformedToken},
		{"jkt of the wrong length", map[string]any{"jkt": b64e([]byte("short"))}, ErrMalformedToken},
		{"jkt not a string", map[string]any{"jkt": 7}, ErrMalformedToken},
		{"cnf not an object", "abc", ErrMalformedToken},
		{"only an unsupported method", map[string]any{"jwk": map[string]any{"kty": "EC"}}, ErrBindingUnsupported},
		{"empty cnf is unbound", map[string]any{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := e.f.claims()
			cl["cnf"] = c.cnf
			_, err := e.authorize(e.bearer(mint(t, e.idp, cl, nil)))
			checkErr(t, err, c.want)
		})
	}
}

func TestAuthorize_IntrospectedBindingIsKeptInTheCache(t *testing.T) {
	f := ixFixture(t)
	srv := newIXServer(t)
	ixAdd(f, srv, "idp", testIssuer, func(d *Definition) { d.TokenValidation = ValidationIntrospection })
	f.build()
	client := ecKey(t, "p256-client", "")
	tok := "opaque-" + randomID()
	srv.set(tok, map[string]any{"active": true, "sub": "alice", "client_id": "c1", "exp": f.clock.Now().Add(time.Hour).Unix(),
		"cnf": map[string]any{"jkt": fakeidp.Thumbprint(t, client)}})
	route, err := CompileRoute(RouteConfig{})
	must(t, err)
	req := func(scheme string) *Request {
		r := &Request{Tenant: testTenant, Route: route, Token: tok, Method: "GET", EscapedPath: "/orders/1", Scheme: scheme, URI: dpopURI}
		if scheme == SchemeDPoP {
			r.DPoPProofs = []string{fakeidp.DPoPProof(t, client, "GET", dpopURI, tok, f.clock.Now(), nil)}
		}
		return r
	}
	_, err = f.g.Authorize(context.Background(), req(SchemeDPoP))
	checkErr(t, err, nil)
	p, err := f.g.Authorize(context.Background(), req(SchemeBearer))
	checkErr(t, err, ErrBoundAsBearer)
	if p == nil || !p.Cached {
		t.Fatal("want the refusal on a cache hit")
	}
	p, err = f.g.Authorize(context.Background(), req(SchemeDPoP))
	checkErr(t, err, nil)
	if !p.Cached || p.Binding != BoundDPoP || srv.calls.Load() != 1 {
		t.Fatalf("cached=%v binding=%q introspections=%d", p.Cached, p.Binding, srv.calls.Load())
	}
}

func TestJWKThumbprint_MatchesJWXForEachKeyType(t *testing.T) {
	for _, k := range []testKey{rsaKey(t, "rsa-a", "", "RS256"), ecKey(t, "p256-a", ""), {Alg: "ES384", Priv: poolKey(t, "p384-a")}, edKey(t, "ed-a", "")} {
		t.Run(k.Alg, func(t *testing.T) {
			b, err := json.Marshal(fakeidp.PublicJWK(t, k))
			must(t, err)
			got, err := JWKThumbprint(b)
			must(t, err)
			if want := fakeidp.Thumbprint(t, k); got != want {
				t.Fatalf("thumbprint %s, want %s", got, want)
			}
			proof := fakeidp.DPoPProof(t, k, "GET", dpopURI, "tok", time.Now(), nil)
			tp, err := ParseDPoPProof(proof)
			must(t, err)
			if tp != got {
				t.Fatalf("proof thumbprint %s, want %s", tp, got)
			}
		})
	}
}

// TestJWKThumbprint_RFC7638Example is the worked example of RFC 7638
// section 3.1 (members beyond the required ones are ignored).
func TestJWKThumbprint_RFC7638Example(t *testing.T) {
	const example = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	got, err := JWKThumbprint([]byte(example))
	must(t, err)
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestJWKThumbprint_RefusesNonCanonicalAndWeakKeys(t *testing.T) {
	ec := jwkJSON(t, ecKey(t, "p256-a", ""))
	rs := jwkJSON(t, rsaKey(t, "rsa-a", "", "RS256"))
	small := jwkJSON(t, testKey{Priv: poolKey(t, "rsa1024-a")})
	cases := []struct {
		name string
		jwk  map[string]any
	}{
		{"EC x without its leading byte", with(ec, map[string]any{"x": b64e([]byte{1, 2, 3})})},
		{"EC point not on the curve", with(ec, map[string]any{"y": ec["x"]})},
		{"unknown curve", with(ec, map[string]any{"crv": "P-192"})},
		{"RSA modulus with a leading zero", with(rs, map[string]any{"n": b64e(append([]byte{0}, mustB64(t, rs["n"].(string))...))})},
		{"RSA 1024", small},
		{"symmetric key", map[string]any{"kty": "oct", "k": "c2VjcmV0"}},
		{"EC with d", with(ec, map[string]any{"d": ec["x"]})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := JWKThumbprint(jsonOf(t, c.jwk)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := b64(s)
	must(t, err)
	return b
}

func TestNormalizeHTU(t *testing.T) {
	cases := []struct{ a, b string }{
		{"https://API.example.com/a", "https://api.example.com/a"},
		{"https://api.example.com:443/a", "https://api.example.com/a"},
		{"http://api.example.com:80/a", "http://api.example.com/a"},
		{"https://api.example.com", "https://api.example.com/"},
		{"https://api.example.com/a?q=1#frag", "https://api.example.com/a"},
		{"https://[::1]:8443/a", "https://[::1]:8443/a"},
	}
	for _, c := range cases {
		if !sameHTU(c.a, c.b) {
			t.Errorf("%s and %s should be the same htu", c.a, c.b)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"https://api.example.com:8443/a", "https://api.example.com/a"},
		{"https://api.example.com/A", "https://api.example.com/a"},
		{"ftp://api.example.com/a", "ftp://api.example.com/a"},
		{"/a", "/a"},
		{"https://user@api.example.com/a", "https://api.example.com/a"},
	} {
		if sameHTU(c.a, c.b) {
			t.Errorf("%s and %s should differ (or be refused)", c.a, c.b)
		}
	}
}

func TestReplayCache_IsBoundedAndForgetsOldGenerations(t *testing.T) {
	c := newReplayCache(replayShards) // one entry per shard
	var tp [32]byte
	now := baseTime
	full := false
	for i := 0; i < 4*replayShards && !full; i++ {
		err := c.record(&tp, randomID(), now)
		if err == ErrDPoPReplayFull {
			full = true
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("a full shard did not refuse")
	}
	if err := c.record(&tp, "j1", now.Add(time.Duration(c.gen)*time.Second)); err != nil && err != ErrDPoPReplayFull {
		t.Fatal(err)
	}
	// Two generations later everything is forgotten and there is room.
	later := now.Add(time.Duration(3*c.gen) * time.Second)
	for i := 0; i < replayShards/2; i++ {
		if err := c.record(&tp, randomID(), later); err != nil && err != ErrDPoPReplayFull {
			t.Fatal(err)
		}
	}
	if err := c.record(&tp, "fresh", later.Add(time.Second)); err == ErrDPoPReplay {
		t.Fatal("a new jti was taken for a replay")
	}
	big := newReplayCache(0)
	must(t, big.record(&tp, "a", now))
	if err := big.record(&tp, "a", now.Add(DPoPProofMaxAge+DPoPProofFutureSkew)); err != ErrDPoPReplay {
		t.Fatalf("replay within the window: %v", err)
	}
	tp[0] = 1
	if err := big.record(&tp, "a", now); err != nil {
		t.Fatalf("the same jti of another key is not a replay: %v", err)
	}
}

func TestBindingModes_AreValidated(t *testing.T) {
	for _, c := range []struct {
		rc   RouteConfig
		fail bool
	}{
		{RouteConfig{DPoP: "required"}, false},
		{RouteConfig{DPoP: "sometimes"}, true},
		{RouteConfig{DPoP: BindingOff, DPoPNonce: true}, true},
	} {
		if _, err := CompileRoute(c.rc); (err != nil) != c.fail {
			t.Errorf("CompileRoute(%+v) = %v", c.rc, err)
		}
	}
	d := Definition{Name: "x", Issuer: testIssuer, JWKSURL: "https://idp.example.com/jwks", DPoP: "maybe", CertificateBound: "off"}
	d = d.Normalize()
	err := d.Validate()
	if err == nil || !strings.Contains(err.Error(), "dpop") || !strings.Contains(err.Error(), "certificate_bound") {
		t.Fatalf("Validate = %v, want errors naming dpop and certificate_bound", err)
	}
}

func TestAuthenticate_RefusesBoundTokensItCannotCheck(t *testing.T) {
	e := newDPoPEnv(t, nil, RouteConfig{})
	_, err := e.f.auth(e.token(t, e.jkt(t)))
	checkErr(t, err, ErrBoundAsBearer)
	_, err = e.f.auth(e.token(t, map[string]any{"x5t#S256": fakeidp.Thumbprint(t, e.client)}))
	checkErr(t, err, ErrCertificateMissing)
	_, err = e.f.auth(e.token(t, nil))
	checkErr(t, err, nil)
}
