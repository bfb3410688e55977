package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// idp is a key publisher in the test process: ES256 keys generated at run
// time, a JWKS endpoint that counts its fetches and can be told to publish
// another key set or to fail, and a minter.
type idp struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string

	mu        sync.Mutex
	keys      map[string]*ecdsa.PrivateKey // kid -> private key
	published []string                     // kids in the JWKS

	fail    atomic.Bool  // JWKS answers 500
	fetches atomic.Int64 // JWKS requests, failed ones included
}

// newIdP makes an IdP with one key per kid; all are published.
func newIdP(t *testing.T, kids ...string) *idp {
	t.Helper()
	i := &idp{t: t, keys: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		i.keys[kid] = k
	}
	i.published = append(i.published, kids...)
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	i.issuer = i.srv.URL + "/issuer"
	t.Cleanup(i.srv.Close)
	return i
}

func (i *idp) jwksURL() string { return i.srv.URL + "/jwks" }

func (i *idp) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/jwks" {
		http.NotFound(w, r)
		return
	}
	i.fetches.Add(1)
	if i.fail.Load() {
		http.Error(w, "jwks down", http.StatusInternalServerError)
		return
	}
	set := jwk.NewSet()
	i.mu.Lock()
	for _, kid := range i.published {
		pub, err := jwk.FromRaw(i.keys[kid].Public())
		if err != nil {
			i.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = pub.Set(jwk.KeyIDKey, kid)
		_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		_ = set.AddKey(pub)
	}
	i.mu.Unlock()
	b, _ := json.Marshal(set)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// publish replaces the published key set.
func (i *idp) publish(kids ...string) {
	i.mu.Lock()
	i.published = append([]string(nil), kids...)
	i.mu.Unlock()
}

// mint signs a token with the key kid: iss, iat and exp (10 min) are set,
// then claims; aud is set when given.
func (i *idp) mint(kid, sub string, aud ...string) string {
	i.t.Helper()
	tok := jwt.New()
	now := time.Now()
	_ = tok.Set(jwt.IssuerKey, i.issuer)
	_ = tok.Set(jwt.SubjectKey, sub)
	_ = tok.Set(jwt.IssuedAtKey, now)
	_ = tok.Set(jwt.ExpirationKey, now.Add(10*time.Minute))
	if len(aud) > 0 {
		_ = tok.Set(jwt.AudienceKey, aud)
	}
	i.mu.Lock()
	raw := i.keys[kid]
	i.mu.Unlock()
	if raw == nil {
		i.t.Fatalf("no key %q", kid)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		i.t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		i.t.Fatal(err)
	}
	return string(signed)
}
