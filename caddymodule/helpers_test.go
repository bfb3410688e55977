package caddymodule_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// testIdP publishes keys and signs tokens (internal/fakeidp); real IdPs
// are exercised in idp_integration_test.go.
type testIdP = fakeidp.IdP

// newTestIdP is an IdP signing with alg (RS256 or ES256) under kid; each
// kid names its own key.
func newTestIdP(t testing.TB, alg jwa.SignatureAlgorithm, kid string) *testIdP {
	t.Helper()
	return fakeidp.NewIdP(t, testKey(t, alg, kid))
}

func testKey(t testing.TB, alg jwa.SignatureAlgorithm, kid string) fakeidp.Key {
	if alg == jwa.ES256 {
		return fakeidp.EC(t, "p256-"+kid, kid)
	}
	return fakeidp.RSA(t, "rsa-"+kid, kid, alg.String())
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
