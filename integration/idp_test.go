package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// idp is a key publisher in the test process (keys, JWK sets and tokens
// from internal/fakeidp): ES256 keys of its own, a JWKS endpoint that
// counts its fetches and can be told to publish another key set or to
// fail, and a minter.
type idp struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string

	mu   sync.Mutex
	keys map[string]fakeidp.Key // kid -> key
	jwks []byte                 // the published set, rendered by publish

	fail    atomic.Bool  // JWKS answers 500
	fetches atomic.Int64 // JWKS requests, failed ones included
}

// idpKeys numbers keys so that no two IdPs share one, whatever their kids.
var idpKeys atomic.Int64

// newIdP makes an IdP with one key per kid; all are published.
func newIdP(t *testing.T, kids ...string) *idp {
	t.Helper()
	i := &idp{t: t, keys: map[string]fakeidp.Key{}}
	for _, kid := range kids {
		i.keys[kid] = fakeidp.EC(t, fmt.Sprintf("p256-integration-%d", idpKeys.Add(1)), kid)
	}
	i.publish(kids...)
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
	i.mu.Lock()
	body := i.jwks
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// publish replaces the published key set.
func (i *idp) publish(kids ...string) {
	i.t.Helper()
	keys := make([]fakeidp.Key, 0, len(kids))
	i.mu.Lock()
	for _, kid := range kids {
		keys = append(keys, i.keys[kid])
	}
	i.mu.Unlock()
	body := fakeidp.JWKS(i.t, keys...)
	i.mu.Lock()
	i.jwks = body
	i.mu.Unlock()
}

// mint signs a token with the key kid: iss, iat and exp (10 min) are set,
// then claims; aud is set when given.
func (i *idp) mint(kid, sub string, aud ...string) string {
	i.t.Helper()
	now := time.Now()
	claims := map[string]any{jwt.IssuerKey: i.issuer, jwt.SubjectKey: sub, jwt.IssuedAtKey: now, jwt.ExpirationKey: now.Add(10 * time.Minute)}
	if len(aud) > 0 {
		claims[jwt.AudienceKey] = aud
	}
	i.mu.Lock()
	k, ok := i.keys[kid]
	i.mu.Unlock()
	if !ok {
		i.t.Fatalf("no key %q", kid)
	}
	return fakeidp.Mint(i.t, k, claims, map[string]any{"typ": "at+jwt"})
}
