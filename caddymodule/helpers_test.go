package caddymodule_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// testIdP is a minimal key publisher: a JWKS on an httptest server plus a
// signing key. It stands in for a Key Manager whose only job in a test is
// to publish keys; real IdPs are exercised in idp_integration_test.go.
type testIdP struct {
	t       testing.TB
	srv     *httptest.Server
	issuer  string
	alg     jwa.SignatureAlgorithm
	kid     string
	priv    crypto.Signer
	mu      sync.Mutex
	set     jwk.Set
	fetches atomic.Int64
}

func newTestIdP(t testing.TB, alg jwa.SignatureAlgorithm, kid string) *testIdP {
	t.Helper()
	idp := &testIdP{t: t, alg: alg, kid: kid}
	idp.priv = genKey(t, alg)
	idp.set = jwk.NewSet()
	idp.addKey(idp.priv, kid)
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			idp.fetches.Add(1)
			idp.mu.Lock()
			b, _ := json.Marshal(idp.set)
			idp.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		case "/issuer/.well-known/openid-configuration":
			// Served under the issuer, as OIDC Discovery binds it.
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.issuer, "jwks_uri": idp.srv.URL + "/jwks"})
		default:
			http.NotFound(w, r)
		}
	}))
	idp.issuer = idp.srv.URL + "/issuer"
	t.Cleanup(idp.srv.Close)
	return idp
}

func genKey(t testing.TB, alg jwa.SignatureAlgorithm) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case jwa.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (idp *testIdP) addKey(priv crypto.Signer, kid string) {
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		idp.t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, idp.alg)
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	idp.mu.Lock()
	_ = idp.set.AddKey(pub)
	idp.mu.Unlock()
}

// mint signs claims (iss, exp and iat filled in unless given).
func (idp *testIdP) mint(claims map[string]any) string {
	idp.t.Helper()
	tok := jwt.New()
	now := time.Now()
	_ = tok.Set(jwt.IssuerKey, idp.issuer)
	_ = tok.Set(jwt.IssuedAtKey, now)
	_ = tok.Set(jwt.ExpirationKey, now.Add(5*time.Minute))
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			idp.t.Fatalf("set %s: %v", k, err)
		}
	}
	priv, err := jwk.FromRaw(idp.priv)
	if err != nil {
		idp.t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, idp.kid)
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(tok, jwt.WithKey(idp.alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		idp.t.Fatal(err)
	}
	return string(signed)
}

// upstream records the last request it received.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last http.Header
	hits atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		_, _ = w.Write([]byte("upstream ok"))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func (u *upstream) hostPort() string { return u.srv.Listener.Addr().String() }
