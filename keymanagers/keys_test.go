package keymanagers

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestKeyManager_RotatedKeyIsFetchedOnFirstUseOfItsKid(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	f.build()
	if got := km.Status().KeyIDs; len(got) != 1 || got[0] != "k1" {
		t.Fatalf("KeyIDs after start = %q", got)
	}
	_, err := f.auth(mint(t, k1, f.claims(), nil))
	checkErr(t, err, nil)

	// The Key Manager publishes k2 right after our start-up fetch (the
	// clock does not move): the first k2 token must still get through.
	f.jwks.Publish(t, k1, k2)
	before := f.jwks.Hits.Load()
	p, err := f.auth(mint(t, k2, f.claims(), nil))
	checkErr(t, err, nil)
	if p.Subject != "alice" {
		t.Fatalf("principal = %+v", p)
	}
	if d := f.jwks.Hits.Load() - before; d != 1 {
		t.Fatalf("first use of the new kid caused %d JWKS fetches, want 1", d)
	}
	// Later tokens of k1 and k2 need no fetch.
	for _, k := range []testKey{k1, k2, k2} {
		_, err := f.auth(mint(t, k, f.claims(), nil))
		checkErr(t, err, nil)
	}
	if d := f.jwks.Hits.Load() - before; d != 1 {
		t.Fatalf("JWKS fetched %d times in all, want 1", d)
	}
	if got := km.Status().KeyIDs; len(got) != 2 {
		t.Fatalf("KeyIDs after rotation = %q", got)
	}
}

func TestKeyManager_SecondNewKidWithinMinRefreshIntervalWaitsForTheFloor(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	k3 := ecKey(t, "p256-a", "k3")
	f := newFixture(t, k1)
	f.add(testTenant, f.def("idp"))
	f.build()
	f.jwks.Publish(t, k1, k2)
	_, err := f.auth(mint(t, k2, f.claims(), nil)) // token-triggered fetch at T
	checkErr(t, err, nil)

	f.jwks.Publish(t, k1, k2, k3)
	f.clock.Advance(DefaultJWKSMinRefreshInterval - time.Second)
	before := f.jwks.Hits.Load()
	_, err = f.auth(mint(t, k3, f.claims(), nil))
	checkErr(t, err, ErrUnknownKey)
	if d := f.jwks.Hits.Load() - before; d != 0 {
		t.Fatalf("fetched %d times within the floor", d)
	}
	f.clock.Advance(2 * time.Second)
	_, err = f.auth(mint(t, k3, f.claims(), nil))
	checkErr(t, err, nil)
	if d := f.jwks.Hits.Load() - before; d != 1 {
		t.Fatalf("fetched %d times after the floor, want 1", d)
	}
}

func TestKeyManager_RandomUnknownKidsCauseAtMostOneFetchPerMinRefreshInterval(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k1)
	f.add(testTenant, f.def("idp"))
	f.build()
	attacker := poolKey(t, "rsa-b")
	attack := func() {
		toks := make([]string, 40)
		for i := range toks {
			toks[i] = mint(t, testKey{KID: "rand-" + randomID(), Alg: "RS256", Priv: attacker}, f.claims(), nil)
		}
		var wg sync.WaitGroup
		var ok atomic.Int64
		for _, tok := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.auth(tok); err == nil {
					ok.Add(1)
				} else if !errorsIs(err, ErrUnknownKey) {
					t.Errorf("unexpected error %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 0 {
			t.Fatalf("%d attacker tokens accepted", ok.Load())
		}
	}
	floor := DefaultJWKSMinRefreshInterval
	steps := []struct {
		advance time.Duration
		want    int64
	}{
		{0, 1}, // the first unknown kid may refetch at once
		{0, 0},
		{floor / 2, 0},
		{floor/2 - time.Second, 0},
		{2 * time.Second, 1},
		{0, 0},
		{10 * floor, 1},
	}
	for i, s := range steps {
		f.clock.Advance(s.advance)
		before := f.jwks.Hits.Load()
		attack()
		if d := f.jwks.Hits.Load() - before; d != s.want {
			t.Fatalf("step %d: 40 concurrent random kids caused %d JWKS fetches, want %d", i, d, s.want)
		}
	}
}

func TestKeyManager_RandomUnknownKidsWithRealClockAreBoundedByMinRefreshInterval(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	jwks := newJWKSServer(t, k1)
	const floor = 200 * time.Millisecond
	km := newKM(t, time.Now, testTenant, Definition{Name: "idp", Issuer: testIssuer, JWKSURL: jwks.JWKSURL(), JWKSMinRefreshInterval: Duration(floor)})
	km.Start()
	waitSettled(t, km)
	reg, err := NewRegistry(map[string][]*KeyManager{testTenant: {km}}, nil)
	must(t, err)
	c, err := NewResultCache(CacheConfig{SizeBytes: 1 << 20})
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	g := NewGateway(reg, c, nil, time.Now)
	attacker := poolKey(t, "rsa-b")
	// Pre-mint so the loop is fast.
	toks := make([]string, 64)
	for i := range toks {
		toks[i] = mint(t, testKey{KID: "rand-" + randomID(), Alg: "RS256", Priv: attacker}, claimsAt(testIssuer, time.Now()), nil)
	}
	start := time.Now()
	before := jwks.Hits.Load()
	requests := 0
	for time.Since(start) < 700*time.Millisecond {
		_, err := g.Authenticate(context.Background(), testTenant, nil, toks[requests%len(toks)])
		if !errorsIs(err, ErrUnknownKey) {
			t.Fatalf("got %v, want ErrUnknownKey", err)
		}
		requests++
	}
	elapsed := time.Since(start)
	fetches := jwks.Hits.Load() - before
	maxFetches := int64(elapsed/floor) + 1
	t.Logf("%d requests in %s caused %d fetches (max %d)", requests, elapsed.Round(time.Millisecond), fetches, maxFetches)
	if fetches > maxFetches {
		t.Fatalf("%d fetches in %s, want at most %d", fetches, elapsed, maxFetches)
	}
	if fetches < 1 {
		t.Fatalf("no refetch in %s although the floor is %s", elapsed, floor)
	}
}

func TestKeyManager_JWKSDownAtStartIsUnavailableAndRecoversWhenItComesUp(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	// Reserve a loopback port with nothing listening on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	must(t, ln.Close())

	f := newFixture(t)
	def := f.def("idp")
	def.JWKSURL = "http://" + addr + "/jwks"
	km := f.add(testTenant, def)
	f.build() // waits for the failed first fetch
	st := km.Status()
	if st.LastError == "" || st.FetchFailures == 0 || len(st.KeyIDs) != 0 {
		t.Fatalf("status after failed start = %+v", st)
	}
	_, err = f.auth(mint(t, k1, f.claims(), nil))
	checkErr(t, err, ErrNoKeys)
	if Classify(err).Kind != KindUnavailable {
		t.Fatalf("kind = %d, want KindUnavailable", Classify(err).Kind)
	}

	// The JWKS server comes up on that address.
	var ln2 net.Listener
	for i := 0; ; i++ { // the port was ours a moment ago; retry briefly, never skip
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("cannot listen again on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwksDoc(t, k1))
	}))
	_ = srv.Listener.Close()
	srv.Listener = ln2
	srv.Start()
	t.Cleanup(srv.Close)

	// Past the retry floor, a token fetches the keys. (A background retry
	// that failed just before the server came up restarts the floor, so
	// allow a couple of floors.)
	for attempt := 0; ; attempt++ {
		f.clock.Advance(DefaultJWKSMinRefreshInterval + time.Second)
		_, err = f.auth(mint(t, k1, f.claims(), nil))
		if err == nil || attempt == 2 {
			break
		}
	}
	checkErr(t, err, nil)
	if st := km.Status(); st.LastError != "" || len(st.KeyIDs) != 1 {
		t.Fatalf("status after recovery = %+v", st)
	}
}

func TestKeyManager_BrokenJWKSKeepsLastGoodKeys(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	weak := testKey{KID: "weak", Alg: "RS256", Priv: poolKey(t, "rsa1024-a")}
	enc := k1
	enc.KID, enc.Use = "enc-only", "enc"
	cases := []struct {
		name   string
		status int
		ctype  string
		body   []byte
		errHas string
	}{
		{"HTTP 500", 500, "text/plain", []byte("boom"), "HTTP 500"},
		{"HTTP 404", 404, "text/plain", []byte("not found"), "HTTP 404"},
		{"HTML error page", 200, "text/html", []byte("<html><body>Login</body></html>"), "not a valid JWK set"},
		{"garbage JSON", 200, "application/json", []byte(`{"keys":[{"kty":`), "not a valid JWK set"},
		{"JSON that is not a set", 200, "application/json", []byte(`[1,2,3]`), "not a valid JWK set"},
		{"empty key set", 200, "application/json", []byte(`{"keys":[]}`), "no usable signing key"},
		{"only encryption keys", 200, "application/json", jwksDoc(t, enc), "no usable signing key"},
		{"only a weak RSA key", 200, "application/json", jwksDoc(t, weak), "no usable signing key"},
		{"only a symmetric key", 200, "application/json", []byte(`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`), "no usable signing key"},
		{"document over 1 MiB", 200, "application/json", append(append([]byte(`{"keys":[],"pad":"`), strings.Repeat("x", maxDocumentSize)...), `"}`...), "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, k1)
			km := f.add(testTenant, f.def("idp"))
			f.build()
			_, err := f.auth(mint(t, k1, f.claims(), nil))
			checkErr(t, err, nil)

			f.jwks.Serve(tc.status, tc.ctype, tc.body)
			err = km.RefreshNow(context.Background())
			if err == nil {
				t.Fatal("RefreshNow of a broken JWKS returned nil")
			}
			if Classify(err).Kind != KindUnavailable {
				t.Fatalf("RefreshNow error kind %d, want KindUnavailable", Classify(err).Kind)
			}
			st := km.Status()
			if !strings.Contains(st.LastError, tc.errHas) {
				t.Fatalf("LastError = %q, want it to mention %q", st.LastError, tc.errHas)
			}
			if st.LastErrorAt.IsZero() || st.FetchFailures == 0 {
				t.Fatalf("status = %+v", st)
			}
			if len(st.KeyIDs) != 1 || st.KeyIDs[0] != "k1" {
				t.Fatalf("KeyIDs after a broken refresh = %q, want the last good [k1]", st.KeyIDs)
			}
			// A new token (not cached) still validates with the kept keys.
			_, err = f.auth(mint(t, k1, f.claims(), nil))
			checkErr(t, err, nil)
			// An unknown kid's refresh fails too, and the keys stay.
			f.clock.Advance(DefaultJWKSMinRefreshInterval + time.Second)
			_, err = f.auth(mint(t, rsaKey(t, "rsa-b", "k2", "RS256"), f.claims(), nil))
			checkErr(t, err, ErrUnknownKey)
			_, err = f.auth(mint(t, k1, f.claims(), nil))
			checkErr(t, err, nil)

			// Repaired: the next refresh clears the error.
			f.jwks.Publish(t, k1)
			must(t, km.RefreshNow(context.Background()))
			if st := km.Status(); st.LastError != "" || !st.LastErrorAt.IsZero() {
				t.Fatalf("LastError after repair = %q", st.LastError)
			}
		})
	}
}

// discoServer serves an OIDC discovery document and a JWKS, and counts.
type discoServer struct {
	*httptest.Server
	docHits, jwksHits atomic.Int64
	mu                sync.Mutex
	issuer            string // "" = the server's URL
	docStatus         int
	jwks              []byte
}

func newDiscoServer(tb testing.TB, keys ...testKey) *discoServer {
	s := &discoServer{docStatus: 200, jwks: jwksDoc(tb, keys...)}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.docHits.Add(1)
		s.mu.Lock()
		iss, status := s.issuer, s.docStatus
		s.mu.Unlock()
		if iss == "" {
			iss = s.URL
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 iss,
			"jwks_uri":               s.URL + "/jwks",
			"token_endpoint":         s.URL + "/token",
			"introspection_endpoint": s.URL + "/introspect",
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		s.jwksHits.Add(1)
		s.mu.Lock()
		b := s.jwks
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	s.Server = httptest.NewServer(mux)
	tb.Cleanup(s.Close)
	return s
}

func (s *discoServer) WellKnown() string { return s.URL + "/.well-known/openid-configuration" }

func TestKeyManager_DiscoveryViaWellKnownURLFindsIssuerAndJWKS(t *testing.T) {
	k1 := ecKey(t, "p256-a", "e1")
	ds := newDiscoServer(t, k1)
	f := newFixture(t)
	km := f.add(testTenant, Definition{Name: "disc", WellKnownURL: ds.WellKnown()})
	f.build()
	if km.Issuer() != ds.URL {
		t.Fatalf("Issuer() = %q, want %q", km.Issuer(), ds.URL)
	}
	st := km.Status()
	if st.JWKSURL != ds.URL+"/jwks" || len(st.KeyIDs) != 1 || st.LastError != "" {
		t.Fatalf("status = %+v", st)
	}
	p, err := f.auth(mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil))
	checkErr(t, err, nil)
	if p.Issuer != ds.URL || p.KeyManager != "disc" {
		t.Fatalf("principal = %+v", p)
	}
	_, err = f.auth(mint(t, k1, claimsAt(ds.URL+"/", f.clock.Now()), nil))
	checkErr(t, err, ErrUnknownIssuer)
}

func TestKeyManager_DiscoveryHappensOnFirstTokenWhenNotStarted(t *testing.T) {
	k1 := edKey(t, "ed-a", "d1")
	ds := newDiscoServer(t, k1)
	clock := newTestClock()
	km := newKM(t, clock.Now, testTenant, Definition{Name: "disc", WellKnownURL: ds.WellKnown()})
	reg, err := NewRegistry(map[string][]*KeyManager{testTenant: {km}}, nil)
	must(t, err)
	c, err := NewResultCache(CacheConfig{})
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	g := NewGateway(reg, c, nil, clock.Now)
	_, err = g.Authenticate(context.Background(), testTenant, nil, mint(t, k1, claimsAt(ds.URL, clock.Now()), nil))
	checkErr(t, err, nil)
	if ds.docHits.Load() != 1 || ds.jwksHits.Load() != 1 {
		t.Fatalf("discovery %d, jwks %d fetches; want 1 and 1", ds.docHits.Load(), ds.jwksHits.Load())
	}
}

func TestKeyManager_DiscoveryIssuerDifferentFromConfiguredIssuerIsAnError(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	ds := newDiscoServer(t, k1)
	f := newFixture(t)
	km := f.add(testTenant, Definition{Name: "idp", Issuer: "https://configured.example.com", WellKnownURL: ds.WellKnown()})
	f.build()
	err := km.RefreshNow(context.Background())
	if err == nil || Classify(err).Kind != KindUnavailable {
		t.Fatalf("RefreshNow = %v, want a KindUnavailable error", err)
	}
	st := km.Status()
	if !strings.Contains(st.LastError, "differs from the configured issuer") {
		t.Fatalf("LastError = %q", st.LastError)
	}
	if len(st.KeyIDs) != 0 || ds.jwksHits.Load() != 0 || st.JWKSURL != "" {
		t.Fatalf("keys were fetched from a discovery document whose issuer is wrong: %+v, jwks hits %d", st, ds.jwksHits.Load())
	}
	if km.Issuer() != "https://configured.example.com" {
		t.Fatalf("Issuer() = %q", km.Issuer())
	}
	// Tokens of the configured issuer cannot be verified: unavailable.
	_, err = f.auth(mint(t, k1, claimsAt("https://configured.example.com", f.clock.Now()), nil))
	checkErr(t, err, ErrNoKeys)
	// Tokens of the document's issuer are not trusted at all.
	_, err = f.auth(mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil))
	checkErr(t, err, ErrUnknownIssuer)
}

func TestKeyManager_DiscoveryDocumentWithoutIssuerIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"jwks_uri":"http://127.0.0.1:1/jwks"}`))
	}))
	t.Cleanup(srv.Close)
	km := newKM(t, newTestClock().Now, testTenant, Definition{Name: "disc", WellKnownURL: srv.URL})
	if err := km.RefreshNow(context.Background()); err == nil {
		t.Fatal("RefreshNow succeeded on a discovery document without issuer")
	}
	if !strings.Contains(km.Status().LastError, "no issuer") {
		t.Fatalf("LastError = %q", km.Status().LastError)
	}
	if _, err := FetchMetadata(context.Background(), http.DefaultClient, srv.URL); err == nil {
		t.Fatal("FetchMetadata accepted a document without issuer")
	}
}

func TestKeyManager_FailingDiscoveryMakesUnknownIssuersUnavailableAndIsFloored(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	ds := newDiscoServer(t, k1)
	ds.docStatus = 503
	f := newFixture(t)
	f.add(testTenant, Definition{Name: "disc", WellKnownURL: ds.WellKnown()})
	f.build()
	hits := ds.docHits.Load()
	_, err := f.auth(mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil))
	checkErr(t, err, ErrUnavailable)
	_, err = f.auth(mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil))
	checkErr(t, err, ErrUnavailable)
	if d := ds.docHits.Load() - hits; d != 0 {
		t.Fatalf("discovery retried %d times within the floor", d)
	}
	// Discovery recovers after the floor.
	ds.mu.Lock()
	ds.docStatus = 200
	ds.mu.Unlock()
	f.clock.Advance(DefaultJWKSMinRefreshInterval + time.Second)
	_, err = f.auth(mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil))
	checkErr(t, err, nil)
}

func TestKeyManager_CertificatePEMVerifiesWhateverTheKidWithoutFetching(t *testing.T) {
	k := rsaKey(t, "rsa-a", "", "RS256")
	rsaPriv := k.Priv.(*rsa.PrivateKey)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fakeidp.SelfSigned(t, rsaPriv, "attacker", false)}))
	ek := ecKey(t, "p256-a", "")
	pkix, err := x509.MarshalPKIXPublicKey(ek.Public())
	must(t, err)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))
	pkcs1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)}))

	for _, tc := range []struct {
		name string
		pem  string
		good testKey
		bad  testKey
	}{
		{"certificate", certPEM, k, rsaKey(t, "rsa-b", "", "RS256")},
		{"PKIX public key", pubPEM, ek, ecKey(t, "p256-b", "")},
		{"PKCS1 public key", pkcs1PEM, k, rsaKey(t, "rsa-b", "", "RS256")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			km := f.add(testTenant, Definition{Name: "pinned", Issuer: testIssuer, CertificatePEM: tc.pem})
			f.build()
			for _, kid := range []string{"", "anything", "k1"} {
				g := tc.good
				g.KID = kid
				_, err := f.auth(mint(t, g, f.claims(), nil))
				checkErr(t, err, nil)
				b := tc.bad
				b.KID = kid
				_, err = f.auth(mint(t, b, f.claims(), nil))
				checkErr(t, err, ErrBadSignature)
			}
			if st := km.Status(); st.Fetches != 0 {
				t.Fatalf("a pinned Key Manager fetched %d times", st.Fetches)
			}
			if f.jwks.Hits.Load() != 0 {
				t.Fatal("JWKS server was contacted")
			}
		})
	}
	t.Run("PS256 with the pinned RSA key", func(t *testing.T) {
		f := newFixture(t)
		f.add(testTenant, Definition{Name: "pinned", Issuer: testIssuer, CertificatePEM: certPEM})
		f.build()
		_, err := f.auth(mint(t, testKey{KID: "x", Alg: "PS256", Priv: rsaPriv}, f.claims(), nil))
		checkErr(t, err, nil)
		_, err = f.auth(mint(t, ek, f.claims(), nil))
		checkErr(t, err, ErrUnknownKey)
	})
}

func TestKeyManager_JWKSOverTLSWithCAFileAndRedirectToPlainHTTPIsRefused(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	plain := newJWKSServer(t, k1)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, plain.JWKSURL(), http.StatusFound)
			return
		}
		_, _ = w.Write(jwksDoc(t, k1))
	}))
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600))

	clock := newTestClock()
	good := newKM(t, clock.Now, testTenant, Definition{Name: "tls", Issuer: testIssuer, JWKSURL: tlsSrv.URL + "/jwks", TLS: &TLSConfig{CAFile: caFile}})
	must(t, good.RefreshNow(context.Background()))

	untrusted := newKM(t, clock.Now, testTenant, Definition{Name: "untrusted", Issuer: testIssuer, JWKSURL: tlsSrv.URL + "/jwks"})
	if err := untrusted.RefreshNow(context.Background()); err == nil {
		t.Fatal("fetched over TLS from a server whose CA is not trusted")
	}

	down := newKM(t, clock.Now, testTenant, Definition{Name: "redir", Issuer: testIssuer, JWKSURL: tlsSrv.URL + "/redirect", TLS: &TLSConfig{CAFile: caFile}})
	if err := down.RefreshNow(context.Background()); err == nil {
		t.Fatal("followed a redirect from https to http")
	}
	if !strings.Contains(down.Status().LastError, "redirect changes scheme") {
		t.Fatalf("LastError = %q", down.Status().LastError)
	}
	if plain.Hits.Load() != 0 {
		t.Fatal("the plain-HTTP target of the redirect was fetched")
	}

	_, err := NewKeyManager(testTenant, mustPrepare(t, Definition{Name: "bad-ca", Issuer: testIssuer, JWKSURL: tlsSrv.URL, TLS: &TLSConfig{CAFile: filepath.Join(t.TempDir(), "missing.pem")}}), Options{})
	assertFieldError(t, err, "tls.ca_file")
}

func mustPrepare(tb testing.TB, def Definition) Definition {
	tb.Helper()
	d, err := Prepare(def, nil)
	if err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
	return d
}

func TestKeyManager_CloseIsIdempotentAndWorksWithoutStart(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	jwks := newJWKSServer(t, k1)
	def := mustPrepare(t, Definition{Name: "idp", Issuer: testIssuer, JWKSURL: jwks.JWKSURL()})
	for _, start := range []bool{false, true} {
		km, err := NewKeyManager(testTenant, def, Options{})
		must(t, err)
		if start {
			km.Start()
			km.Start()
		}
		done := make(chan struct{})
		go func() { km.Close(); km.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Close hangs (started=%v)", start)
		}
	}
}

func TestParseJWKS_KeepsOnlyUsablePublicSigningKeys(t *testing.T) {
	rk := rsaKey(t, "rsa-a", "rsa", "RS256")
	ek := ecKey(t, "p256-a", "ec")
	edk := edKey(t, "ed-a", "ed")
	priv, err := jwk.FromRaw(rk.Priv)
	must(t, err)
	must(t, priv.Set(jwk.KeyIDKey, "private"))
	privJSON := mustJSON(t, priv)
	enc := rk
	enc.KID, enc.Use = "enc", "enc"
	noAlg := ek
	noAlg.KID, noAlg.NoAlg = "no-alg", true
	doc := `{"keys":[` + strings.Join([]string{
		string(mustJSON(t, jwkOf(t, rk))),
		string(mustJSON(t, jwkOf(t, ek))),
		string(mustJSON(t, jwkOf(t, edk))),
		string(mustJSON(t, jwkOf(t, noAlg))),
		string(privJSON),
		string(mustJSON(t, jwkOf(t, enc))),
		string(mustJSON(t, jwkOf(t, testKey{KID: "weak", Alg: "RS256", Priv: poolKey(t, "rsa1024-a")}))),
		`{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`,
	}, ",") + `]}`
	ks, err := parseJWKS([]byte(doc))
	must(t, err)
	got := strings.Join(ks.kids(), ",")
	if got != "rsa,ec,ed,no-alg,private" {
		t.Fatalf("kids = %s, want rsa,ec,ed,no-alg,private", got)
	}
	for _, k := range ks.all {
		switch k.pub.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			t.Fatalf("key %s kept as %T, want a public key", k.kid, k.pub)
		}
	}
	if ks.byKid["rsa"][0].alg != "RS256" || ks.byKid["no-alg"][0].alg != "" {
		t.Fatalf("JWK alg not carried over")
	}
	if ks.pinned {
		t.Fatal("a fetched set must not be pinned")
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a set with only a symmetric key was accepted")
	}
}

func TestKeyMatchesAlg_KeyTypeDecidesTheAlgorithmFamily(t *testing.T) {
	rsaPub := poolKey(t, "rsa-a").Public()
	p256 := poolKey(t, "p256-a").Public()
	p384 := poolKey(t, "p384-a").Public()
	edPub := poolKey(t, "ed-a").Public()
	cases := []struct {
		name string
		pub  any
		alg  string
		want bool
	}{
		{"rsa RS256", rsaPub, "RS256", true},
		{"rsa PS512", rsaPub, "PS512", true},
		{"rsa HS256", rsaPub, "HS256", false},
		{"rsa ES256", rsaPub, "ES256", false},
		{"rsa none", rsaPub, "none", false},
		{"p256 ES256", p256, "ES256", true},
		{"p256 ES384", p256, "ES384", false},
		{"p384 ES384", p384, "ES384", true},
		{"p384 ES256", p384, "ES256", false},
		{"p256 RS256", p256, "RS256", false},
		{"ed EdDSA", edPub, "EdDSA", true},
		{"ed ES256", edPub, "ES256", false},
		{"ed HS256", edPub, "HS256", false},
		{"bytes HS256", []byte("secret"), "HS256", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := keyMatchesAlg(tc.pub, tc.alg); got != tc.want {
				t.Fatalf("keyMatchesAlg = %v, want %v", got, tc.want)
			}
		})
	}
}
