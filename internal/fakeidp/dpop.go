package fakeidp

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// ---------------------------------------------------------------------------
// DPoP (RFC 9449)

// PublicJWK is k's bare public JWK (no kid, alg or use), as a DPoP
// client puts it in its proofs.
func PublicJWK(tb testing.TB, k Key) jwk.Key {
	tb.Helper()
	j, err := jwk.FromRaw(k.Public())
	if err != nil {
		tb.Fatalf("jwk.FromRaw: %v", err)
	}
	return j
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of k's public key,
// base64url: the cnf.jkt of tokens bound to k.
func Thumbprint(tb testing.TB, k Key) string {
	tb.Helper()
	tp, err := PublicJWK(tb, k).Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatalf("thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ATH is a proof's ath for an access token.
func ATH(token string) string {
	s := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// DPoPClaims are the claims of a valid proof for method and uri at now,
// with a fresh jti, bound to token (ath) unless token is "".
func DPoPClaims(method, uri, token string, now time.Time) map[string]any {
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	c := map[string]any{"jti": hex.EncodeToString(jti[:]), "htm": method, "htu": uri, "iat": now.Unix()}
	if token != "" {
		c["ath"] = ATH(token)
	}
	return c
}

// DPoPProof signs a valid proof with k for method and uri at now, bound
// to token; changes are applied to the claims (a nil value deletes).
func DPoPProof(tb testing.TB, k Key, method, uri, token string, now time.Time, changes map[string]any) string {
	tb.Helper()
	c := DPoPClaims(method, uri, token, now)
	for n, v := range changes {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	return SignDPoP(tb, k, c, nil)
}

// SignDPoP signs claims as a proof with k: typ dpop+jwt and k's public
// jwk unless hdr sets them (hdr values replace; no kid is sent).
func SignDPoP(tb testing.TB, k Key, claims map[string]any, hdr map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatalf("marshal proof claims: %v", err)
	}
	h := jws.NewHeaders()
	must(tb, h.Set(jws.TypeKey, "dpop+jwt"))
	must(tb, h.Set(jws.JWKKey, PublicJWK(tb, k)))
	for n, v := range hdr {
		must(tb, h.Set(n, v))
	}
	b, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(k.Alg), k.SigningKey(), jws.WithProtectedHeaders(h)))
	if err != nil {
		tb.Fatalf("sign DPoP proof: %v", err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// A test certificate authority (client certificates for mTLS)

// CA is a throw-away certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate in PEM, for trust pools and files.
	PEM string
}

// NewCA makes a CA with the pooled key label (see PoolKey).
func NewCA(tb testing.TB, label string) *CA {
	tb.Helper()
	k := PoolKey(tb, label)
	der := SelfSigned(tb, k, "test CA "+label, true)
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{Cert: c, Key: k, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

var serial int64 = 100

// Issue signs a certificate for the pooled key label: a client
// certificate for cn, or a server certificate for 127.0.0.1 and
// localhost when server is set. It returns it ready for tls.Config.
func (ca *CA) Issue(tb testing.TB, label, cn string, server bool) tls.Certificate {
	tb.Helper()
	k := PoolKey(tb, label)
	poolMu.Lock()
	serial++
	sn := serial
	poolMu.Unlock()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, k.Public(), ca.Key)
	if err != nil {
		tb.Fatalf("issue certificate: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
}

// CertThumbprint is the base64url SHA-256 of a certificate's DER: the
// cnf.x5t#S256 of tokens bound to it (RFC 8705).
func CertThumbprint(c tls.Certificate) string {
	s := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// CertPEM and KeyPEM write a certificate and its key in PEM (for Caddy
// config files).
func CertPEM(c tls.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

// KeyPEM is the PKCS#8 PEM of a certificate's key.
func KeyPEM(tb testing.TB, c tls.Certificate) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		tb.Fatalf("marshal key: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
