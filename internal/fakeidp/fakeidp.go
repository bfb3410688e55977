// Package fakeidp is the one set of fake key publishers and token minters
// for the project's tests: signing keys generated once per test binary,
// their JWK sets, tokens signed with them, a settable document server and
// a minimal IdP (JWKS plus discovery). Real IdPs (Hydra, oidc-provider)
// live in internal/testidp; vendor-shaped fixtures in caddymodule build on
// this package.
//
// It is imported by tests only.
package fakeidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
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

// ---------------------------------------------------------------------------
// Keys

// Private keys are generated once per test binary, lazily, and shared:
// RSA 2048 generation is slow under -race.
var (
	poolMu sync.Mutex
	pool   = map[string]crypto.Signer{}
)

// PoolKey returns the private key named label, generating it on first
// use. The label's prefix picks the kind: "rsa1024", "rsa" (2048),
// "p256", "p384", "ed" (Ed25519); distinct labels are distinct keys
// ("rsa-a" and "rsa-b").
func PoolKey(tb testing.TB, label string) crypto.Signer {
	tb.Helper()
	poolMu.Lock()
	defer poolMu.Unlock()
	if k, ok := pool[label]; ok {
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
	pool[label] = k
	return k
}

// Key is one signing key as a Key Manager would publish it.
type Key struct {
	KID    string
	Alg    string        // JWS alg used to sign and published in the JWK
	Priv   crypto.Signer // nil for HMAC keys
	Secret []byte        // HMAC keys
	NoAlg  bool          // publish the JWK without "alg"
	Use    string        // JWK "use" (default "sig")
}

// Public is the key's public half.
func (k Key) Public() crypto.PublicKey { return k.Priv.Public() }

// SigningKey is what a signer takes: the HMAC secret or the private key.
func (k Key) SigningKey() any {
	if k.Secret != nil {
		return k.Secret
	}
	return k.Priv
}

// RSA, EC (ES256) and Ed (EdDSA) name a pooled key (see PoolKey) with a
// kid and an alg.
func RSA(tb testing.TB, label, kid, alg string) Key {
	return Key{KID: kid, Alg: alg, Priv: PoolKey(tb, label)}
}
func EC(tb testing.TB, label, kid string) Key {
	return Key{KID: kid, Alg: "ES256", Priv: PoolKey(tb, label)}
}
func Ed(tb testing.TB, label, kid string) Key {
	return Key{KID: kid, Alg: "EdDSA", Priv: PoolKey(tb, label)}
}

// JWK returns the public JWK of k (kid, alg unless NoAlg, use).
func JWK(tb testing.TB, k Key) jwk.Key {
	tb.Helper()
	j, err := jwk.FromRaw(k.Public())
	if err != nil {
		tb.Fatalf("jwk.FromRaw: %v", err)
	}
	must(tb, j.Set(jwk.KeyIDKey, k.KID))
	if !k.NoAlg {
		must(tb, j.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(k.Alg)))
	}
	use := k.Use
	if use == "" {
		use = "sig"
	}
	must(tb, j.Set(jwk.KeyUsageKey, use))
	return j
}

// Set is the JWK set of the public halves of keys.
func Set(tb testing.TB, keys ...Key) jwk.Set {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		must(tb, set.AddKey(JWK(tb, k)))
	}
	return set
}

// JWKS renders Set(keys...) as JSON.
func JWKS(tb testing.TB, keys ...Key) []byte {
	tb.Helper()
	b, err := json.Marshal(Set(tb, keys...))
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

// Mint signs claims with k as a JWT (claims take jwx's types: a time.Time
// exp is a NumericDate); hdr adds protected header fields (kid is set from
// k unless hdr names it).
func Mint(tb testing.TB, k Key, claims map[string]any, hdr map[string]any) string {
	tb.Helper()
	tok := jwt.New()
	for n, v := range claims {
		if err := tok.Set(n, v); err != nil {
			tb.Fatalf("set claim %s: %v", n, err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.SignatureAlgorithm(k.Alg), k.SigningKey(), jws.WithProtectedHeaders(headers(tb, k, hdr))))
	if err != nil {
		tb.Fatalf("jwt.Sign %s: %v", k.Alg, err)
	}
	return string(b)
}

// SignJSON signs payload as it is (vendor fixtures keep their exact JSON);
// hdr as for Mint.
func SignJSON(tb testing.TB, k Key, payload []byte, hdr map[string]any) string {
	tb.Helper()
	b, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.Alg), k.SigningKey(), jws.WithProtectedHeaders(headers(tb, k, hdr))))
	if err != nil {
		tb.Fatalf("jws.Sign %s: %v", k.Alg, err)
	}
	return string(b)
}

func headers(tb testing.TB, k Key, hdr map[string]any) jws.Headers {
	tb.Helper()
	h := jws.NewHeaders()
	if k.KID != "" {
		must(tb, h.Set(jws.KeyIDKey, k.KID))
	}
	for n, v := range hdr {
		if err := h.Set(n, v); err != nil {
			tb.Fatalf("header %s: %v", n, err)
		}
	}
	return h
}

// ---------------------------------------------------------------------------
// Servers

// DocServer serves one document, at every path, whose status, content
// type and body the test changes at will, and counts requests.
type DocServer struct {
	*httptest.Server
	Hits atomic.Int64

	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

// NewDocServer serves an empty JWK set until told otherwise; it stops
// when the test ends.
func NewDocServer(tb testing.TB) *DocServer {
	tb.Helper()
	s := &DocServer{status: http.StatusOK, ctype: "application/json", body: []byte(`{"keys":[]}`)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Hits.Add(1)
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

// NewJWKSServer serves the JWK set of keys.
func NewJWKSServer(tb testing.TB, keys ...Key) *DocServer {
	s := NewDocServer(tb)
	s.Publish(tb, keys...)
	return s
}

// Publish serves the JWK set of keys from now on.
func (s *DocServer) Publish(tb testing.TB, keys ...Key) {
	s.Serve(http.StatusOK, "application/json", JWKS(tb, keys...))
}

// Serve serves status, ctype and body from now on.
func (s *DocServer) Serve(status int, ctype string, body []byte) {
	s.mu.Lock()
	s.status, s.ctype, s.body = status, ctype, body
	s.mu.Unlock()
}

// JWKSURL is the URL Key Managers are pointed at.
func (s *DocServer) JWKSURL() string { return s.URL + "/jwks" }

// IdP is a minimal key publisher: a JWK set at /jwks and a discovery
// document under its issuer (URL + "/issuer", as OIDC Discovery binds it).
// It stands in for a Key Manager whose only job in a test is to publish
// keys and sign tokens.
type IdP struct {
	Srv     *httptest.Server
	Issuer  string
	Key     Key // signs Mint's tokens
	Fetches atomic.Int64

	tb   testing.TB
	mu   sync.Mutex
	keys []Key
	jwks []byte // rendered in the test's goroutine, never the server's
}

// NewIdP publishes k and signs with it; it stops when the test ends.
func NewIdP(tb testing.TB, k Key) *IdP {
	tb.Helper()
	idp := &IdP{tb: tb, Key: k, keys: []Key{k}, jwks: JWKS(tb, k)}
	idp.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			idp.Fetches.Add(1)
			idp.mu.Lock()
			body := idp.jwks
			idp.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		case "/issuer/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.Issuer, "jwks_uri": idp.Srv.URL + "/jwks"})
		default:
			http.NotFound(w, r)
		}
	}))
	idp.Issuer = idp.Srv.URL + "/issuer"
	tb.Cleanup(idp.Srv.Close)
	return idp
}

// WellKnownURL is the IdP's discovery document.
func (idp *IdP) WellKnownURL() string { return idp.Issuer + "/.well-known/openid-configuration" }

// AddKey publishes another key (Mint still signs with Key).
func (idp *IdP) AddKey(k Key) {
	idp.mu.Lock()
	idp.keys = append(idp.keys, k)
	idp.jwks = JWKS(idp.tb, idp.keys...)
	idp.mu.Unlock()
}

// Mint signs an at+jwt access token: iss, iat and a 5-minute exp filled
// in unless claims give them.
func (idp *IdP) Mint(claims map[string]any) string {
	idp.tb.Helper()
	now := time.Now()
	all := map[string]any{jwt.IssuerKey: idp.Issuer, jwt.IssuedAtKey: now, jwt.ExpirationKey: now.Add(5 * time.Minute)}
	for k, v := range claims {
		all[k] = v
	}
	return Mint(idp.tb, idp.Key, all, map[string]any{jws.TypeKey: "at+jwt"})
}

// ---------------------------------------------------------------------------
// Certificates

// SelfSigned is a certificate (DER) for k's public key, signed by k,
// valid from an hour ago to an hour from now; ca makes it a CA.
func SelfSigned(tb testing.TB, k crypto.Signer, cn string, ca bool) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: ca}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		tb.Fatalf("self-signed certificate: %v", err)
	}
	return der
}

// SelfSignedPEM is SelfSigned as a PEM CERTIFICATE block.
func SelfSignedPEM(tb testing.TB, k crypto.Signer, cn string, ca bool) string {
	tb.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: SelfSigned(tb, k, cn, ca)}))
}
