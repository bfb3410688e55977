package keymanagers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A JWKS endpoint that stops answering (timeouts) costs at most the Key
// Manager's timeout per refresh; the last good keys keep serving tokens,
// the status shows the error, and the next good refresh clears it.
func TestJWKS_TimingOutEndpointKeepsLastGoodKeysAndRecovers(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	doc := jwksDoc(t, k1)
	var hang atomic.Bool
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	f := newFixture(t)
	def := Definition{Name: "idp", Issuer: testIssuer, JWKSURL: srv.URL + "/jwks", Timeout: Duration(300 * time.Millisecond)}
	km := f.add(testTenant, def)
	f.build()
	tok := mint(t, k1, f.claims(), nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)

	hang.Store(true)
	start := time.Now()
	if err := km.RefreshNow(context.Background()); err == nil {
		t.Fatal("refresh against a hanging endpoint succeeded")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("refresh took %s; the 300ms timeout should bound it", el)
	}
	if st := km.Status(); st.LastError == "" || len(st.KeyIDs) != 1 {
		t.Fatalf("status after a timed-out refresh: %+v", st)
	}
	// Last good keys: a new token (not cached) still validates.
	_, err = f.auth(mint(t, k1, f.claims(), nil))
	checkErr(t, err, nil)

	hang.Store(false)
	must(t, km.RefreshNow(context.Background()))
	if st := km.Status(); st.LastError != "" {
		t.Fatalf("error not cleared after recovery: %q", st.LastError)
	}
}
