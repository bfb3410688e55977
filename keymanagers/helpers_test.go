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
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
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

// Keys, JWK sets, minting and the document server come from the one
// fake-IdP package; these names keep the tests short.
type (
	testKey   = fakeidp.Key
	docServer = fakeidp.DocServer
)

var (
	poolKey       = fakeidp.PoolKey
	rsaKey        = fakeidp.RSA
	ecKey         = fakeidp.EC
	edKey         = fakeidp.Ed
	jwkOf         = fakeidp.JWK
	jwksDoc       = fakeidp.JWKS
	mint          = fakeidp.Mint
	newDocServer  = fakeidp.NewDocServer
	newJWKSServer = fakeidp.NewJWKSServer
)

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
	h := map[string]any{"alg": k.Alg, "typ": "JWT"}
	if k.KID != "" {
		h["kid"] = k.KID
	}
	for n, v := range extra {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	return craft(tb, k.Alg, k.SigningKey(), h, payload)
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
