package keymanagers

// Shared test helpers: a controllable clock, key material generated at test
// time (never committed), token minting (with jwx for ordinary tokens and a
// raw stdlib signer for hand-crafted hostile ones), counting JWKS servers
// and a fixture that wires Key Managers, a Registry, a ResultCache and a
// Gateway together.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const (
	testTenant   = "acme"
	testIssuer   = "https://idp.example.com"
	testAudience = "api://orders"
)

// baseTime is the fixed instant every injected clock starts at.
var baseTime = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// testClock is a goroutine-safe clock the tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(baseTime.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// ---------------------------------------------------------------------------
// Keys

// Private keys are generated once per test binary, lazily, and shared:
// RSA 2048 generation is slow under -race.
var (
	keyPoolMu sync.Mutex
	keyPool   = map[string]crypto.Signer{}
)

func poolKey(tb testing.TB, label string) crypto.Signer {
	tb.Helper()
	keyPoolMu.Lock()
	defer keyPoolMu.Unlock()
	if k, ok := keyPool[label]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch {
	case strings.HasPrefix(label, "rsa1024"):
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case strings.HasPrefix(label, "rsa"):
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case strings.HasPrefix(label, "p256"):
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case strings.HasPrefix(label, "p384"):
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case strings.HasPrefix(label, "ed"):
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("unknown key label %q", label)
	}
	if err != nil {
		tb.Fatalf("generating %s: %v", label, err)
	}
	keyPool[label] = k
	return k
}

// testKey is one signing key as a Key Manager would publish it.
type testKey struct {
	kid    string
	alg    string        // JWS alg used to sign and published in the JWK
	priv   crypto.Signer // nil for HMAC keys
	secret []byte        // HMAC keys
	noAlg  bool          // publish the JWK without "alg"
	use    string        // JWK "use" (default "sig")
}

func (k testKey) public() crypto.PublicKey { return k.priv.Public() }

func (k testKey) signingKey() any {
	if k.secret != nil {
		return k.secret
	}
	return k.priv
}

// Convenience constructors. label picks the key material ("rsa-a" and
// "rsa-b" are distinct RSA keys, and so on).
func rsaKey(tb testing.TB, label, kid, alg string) testKey {
	return testKey{kid: kid, alg: alg, priv: poolKey(tb, label)}
}
func ecKey(tb testing.TB, label, kid string) testKey {
	return testKey{kid: kid, alg: "ES256", priv: poolKey(tb, label)}
}
func edKey(tb testing.TB, label, kid string) testKey {
	return testKey{kid: kid, alg: "EdDSA", priv: poolKey(tb, label)}
}

// jwkJSON returns the public JWK of k.
func jwkOf(tb testing.TB, k testKey) jwk.Key {
	tb.Helper()
	j, err := jwk.FromRaw(k.public())
	if err != nil {
		tb.Fatalf("jwk.FromRaw: %v", err)
	}
	must(tb, j.Set(jwk.KeyIDKey, k.kid))
	if !k.noAlg {
		must(tb, j.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(k.alg)))
	}
	use := k.use
	if use == "" {
		use = "sig"
	}
	must(tb, j.Set(jwk.KeyUsageKey, use))
	return j
}

// jwksDoc renders a JWK set of the public halves of keys.
func jwksDoc(tb testing.TB, keys ...testKey) []byte {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		must(tb, set.AddKey(jwkOf(tb, k)))
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatalf("marshal JWKS: %v", err)
	}
	return b
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Tokens

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// claimsAt returns a valid claim set for iss at now (a fresh jti each call,
// so two calls never produce the same token or cache key).
func claimsAt(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":   iss,
		"sub":   "alice",
		"aud":   testAudience,
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"azp":   "client-1",
		"scope": "read write",
		"jti":   randomID(),
	}
}

// mint signs claims with k using jwx; hdr adds protected header fields
// (kid is set from k unless hdr names it).
func mint(tb testing.TB, k testKey, claims map[string]any, hdr map[string]any) string {
	tb.Helper()
	tok := jwt.New()
	for n, v := range claims {
		if err := tok.Set(n, v); err != nil {
			tb.Fatalf("set claim %s: %v", n, err)
		}
	}
	h := jws.NewHeaders()
	if k.kid != "" {
		must(tb, h.Set(jws.KeyIDKey, k.kid))
	}
	for n, v := range hdr {
		must(tb, h.Set(n, v))
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.SignatureAlgorithm(k.alg), k.signingKey(), jws.WithProtectedHeaders(h)))
	if err != nil {
		tb.Fatalf("jwt.Sign %s: %v", k.alg, err)
	}
	return string(b)
}

func b64e(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jsonOf marshals v, or passes a string/[]byte through as raw JSON.
func jsonOf(tb testing.TB, v any) []byte {
	tb.Helper()
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

// craft builds a compact JWS from arbitrary header and payload JSON (maps
// are marshalled, strings used verbatim), signed over exactly those bytes
// with alg and key using only the standard library. It is how the tests
// make tokens no well-behaved library would produce.
func craft(tb testing.TB, alg string, key any, header, payload any) string {
	tb.Helper()
	input := b64e(jsonOf(tb, header)) + "." + b64e(jsonOf(tb, payload))
	return input + "." + b64e(rawSign(tb, alg, key, []byte(input)))
}

// craftWith is craft with the default header {alg, kid, typ} of k merged
// with extra (a nil value deletes a field).
func craftWith(tb testing.TB, k testKey, extra map[string]any, payload any) string {
	tb.Helper()
	h := map[string]any{"alg": k.alg, "typ": "JWT"}
	if k.kid != "" {
		h["kid"] = k.kid
	}
	for n, v := range extra {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	return craft(tb, k.alg, k.signingKey(), h, payload)
}

func hashOf(tb testing.TB, alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[len(alg)-3:] {
	case "256":
		return crypto.SHA256, sha256.New
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	tb.Fatalf("no hash for %s", alg)
	return 0, nil
}

func rawSign(tb testing.TB, alg string, key any, input []byte) []byte {
	tb.Helper()
	if alg == "EdDSA" {
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	}
	if len(alg) != 5 {
		tb.Fatalf("rawSign: unsupported alg %q", alg)
	}
	h, newHash := hashOf(tb, alg)
	if alg[:2] == "HS" {
		m := hmac.New(newHash, key.([]byte))
		m.Write(input)
		return m.Sum(nil)
	}
	hh := newHash()
	hh.Write(input)
	digest := hh.Sum(nil)
	var sig []byte
	var err error
	switch alg[:2] {
	case "RS":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, digest)
	case "PS":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		k := key.(*ecdsa.PrivateKey)
		r, s, e := ecdsa.Sign(rand.Reader, k, digest)
		if e != nil {
			tb.Fatalf("ecdsa.Sign: %v", e)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	default:
		tb.Fatalf("rawSign: unsupported alg %q", alg)
	}
	if err != nil {
		tb.Fatalf("rawSign %s: %v", alg, err)
	}
	return sig
}

// ---------------------------------------------------------------------------
// HTTP servers

// docServer serves one document whose status, content type and body the
// test changes at will, and counts requests.
type docServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

func newDocServer(tb testing.TB) *docServer {
	tb.Helper()
	s := &docServer{status: http.StatusOK, ctype: "application/json", body: []byte(`{"keys":[]}`)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, ctype, body := s.status, s.ctype, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	tb.Cleanup(s.Close)
	return s
}

// newJWKSServer serves the JWK set of keys.
func newJWKSServer(tb testing.TB, keys ...testKey) *docServer {
	s := newDocServer(tb)
	s.publish(tb, keys...)
	return s
}

func (s *docServer) publish(tb testing.TB, keys ...testKey) {
	s.serve(http.StatusOK, "application/json", jwksDoc(tb, keys...))
}

func (s *docServer) serve(status int, ctype string, body []byte) {
	s.mu.Lock()
	s.status, s.ctype, s.body = status, ctype, body
	s.mu.Unlock()
}

// JWKSURL is the URL Key Managers are pointed at.
func (s *docServer) JWKSURL() string { return s.URL + "/jwks" }

// ---------------------------------------------------------------------------
// Fixture

// fixture wires Key Managers, a Registry, a ResultCache and a Gateway with
// one injected clock.
type fixture struct {
	t       testing.TB
	clock   *testClock
	jwks    *docServer
	cache   *ResultCache
	g       *Gateway
	tenants map[string][]*KeyManager
	globals []*KeyManager
}

// newFixture starts a JWKS server publishing keys.
func newFixture(tb testing.TB, keys ...testKey) *fixture {
	tb.Helper()
	f := &fixture{t: tb, clock: newTestClock(), tenants: map[string][]*KeyManager{}}
	f.jwks = newJWKSServer(tb, keys...)
	c, err := NewResultCache(CacheConfig{SizeBytes: 4 << 20})
	if err != nil {
		tb.Fatalf("NewResultCache: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	f.cache = c
	return f
}

// def is a minimal JWT Key Manager definition on the fixture's JWKS server.
func (f *fixture) def(name string) Definition {
	return Definition{Name: name, Issuer: testIssuer, JWKSURL: f.jwks.JWKSURL()}
}

// newKM prepares def and builds its runtime, closed at cleanup. It is not
// started and not registered.
func newKM(tb testing.TB, now func() time.Time, tenant string, def Definition) *KeyManager {
	tb.Helper()
	prepared, err := Prepare(def, nil)
	if err != nil {
		tb.Fatalf("Prepare(%s): %v", def.Name, err)
	}
	km, err := NewKeyManager(tenant, prepared, Options{Now: now})
	if err != nil {
		tb.Fatalf("NewKeyManager(%s): %v", def.Name, err)
	}
	tb.Cleanup(km.Close)
	return km
}

// add builds a Key Manager for tenant (GlobalTenant for a Global one) and
// registers it for the next build.
func (f *fixture) add(tenant string, def Definition) *KeyManager {
	f.t.Helper()
	km := newKM(f.t, f.clock.Now, tenant, def)
	if tenant == GlobalTenant {
		f.globals = append(f.globals, km)
	} else {
		f.tenants[tenant] = append(f.tenants[tenant], km)
	}
	return km
}

// build starts every Key Manager, waits for each one's first fetch to end,
// and installs a new Registry (creating the Gateway the first time).
func (f *fixture) build() *Gateway {
	f.t.Helper()
	reg, err := NewRegistry(f.tenants, f.globals)
	if err != nil {
		f.t.Fatalf("NewRegistry: %v", err)
	}
	for _, km := range reg.All() {
		km.Start()
	}
	for _, km := range reg.All() {
		waitSettled(f.t, km)
	}
	if f.g == nil {
		f.g = NewGateway(reg, f.cache, nil, f.clock.Now)
	} else {
		f.g.Swap(reg)
	}
	return f.g
}

// waitSettled waits until a started Key Manager has keys or has recorded
// an error (its first background sync is over).
func waitSettled(tb testing.TB, km *KeyManager) {
	tb.Helper()
	if !km.needsNetwork() {
		return
	}
	waitFor(tb, "key manager "+km.Name()+" to settle", func() bool {
		s := km.Status()
		return len(s.KeyIDs) > 0 || s.LastError != ""
	})
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// claims returns a valid claim set for the default issuer at the fixture's
// current time.
func (f *fixture) claims() map[string]any { return claimsAt(testIssuer, f.clock.Now()) }

// auth authenticates token for the default tenant on an unrestricted route.
func (f *fixture) auth(token string) (*Principal, error) {
	return f.g.Authenticate(context.Background(), testTenant, nil, token)
}

// checkErr asserts err is want (nil: success), both by errors.Is and by
// the Kind Classify reports.
func checkErr(tb testing.TB, err error, want *Error) {
	tb.Helper()
	if want == nil {
		if err != nil {
			tb.Fatalf("want success, got %v (kind %d)", err, Classify(err).Kind)
		}
		return
	}
	if err == nil {
		tb.Fatalf("want %q, got success", want.Description)
	}
	if !errors.Is(err, want) {
		tb.Fatalf("want %q, got %v", want.Description, err)
	}
	if got := Classify(err).Kind; got != want.Kind {
		tb.Fatalf("Classify(%v).Kind = %d, want %d", err, got, want.Kind)
	}
}

// with returns a copy of m with the changes applied (a nil value deletes).
func with(m map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(m)+len(changes))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}
