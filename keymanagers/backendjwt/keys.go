// Package backendjwt signs the backend JWT: a short-lived statement of the
// authenticated caller that the gateway sends to the upstream (WSO2's
// X-JWT-Assertion), so the upstream trusts the gateway's decision without
// seeing the client's token. It holds the signing keys (generated on first
// use, kept in shared storage, rotated on a schedule), their JWKS, the
// signer and a cache of signed JWTs. No Caddy types.
package backendjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Algorithm is a JWS algorithm the gateway signs with.
type Algorithm string

// The algorithms the gateway signs with.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
	EdDSA Algorithm = "EdDSA"
)

// Algorithms lists the supported algorithms.
var Algorithms = []Algorithm{RS256, ES256, EdDSA}

// ParseAlgorithm checks an algorithm name (exact spelling, as in JWS).
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range Algorithms {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown algorithm %q (use RS256, ES256 or EdDSA)", s)
}

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// generate makes a new private key for alg.
func generate(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown algorithm %q", alg)
}

// signingKey is one usable key: its private half and the precomputed
// protected header of the JWTs it signs.
type signingKey struct {
	kid    string
	alg    Algorithm
	priv   crypto.Signer
	header string // base64url of {"alg":..,"kid":..,"typ":"JWT"}
	public jwk.Key
}

// newSigningKey prepares priv for signing: the kid is the RFC 7638
// thumbprint of its public key.
func newSigningKey(alg Algorithm, priv crypto.Signer) (*signingKey, error) {
	if err := checkKeyType(alg, priv); err != nil {
		return nil, err
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg), jwk.KeyUsageKey: jwk.ForSignature} {
		if err := pub.Set(k, v); err != nil {
			return nil, err
		}
	}
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(alg), kid, "JWT"})
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: kid, alg: alg, priv: priv, header: base64.RawURLEncoding.EncodeToString(hdr), public: pub}, nil
}

func checkKeyType(alg Algorithm, priv crypto.Signer) error {
	ok := false
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		ok = alg == RS256 && k.N.BitLen() >= 2048
	case *ecdsa.PrivateKey:
		ok = alg == ES256 && k.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		ok = alg == EdDSA
	}
	if !ok {
		return fmt.Errorf("a %T key cannot sign %s", priv, alg)
	}
	return nil
}

// sign returns the JWS signature of input (RFC 7518 encodings: PKCS#1
// v1.5 for RS256, r||s for ES256, Ed25519 for EdDSA).
func (k *signingKey) sign(input []byte) ([]byte, error) {
	switch priv := k.priv.(type) {
	case *rsa.PrivateKey:
		sum := sha256.Sum256(input)
		return rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, input), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", k.priv)
}

// marshalPrivate encodes a private key as a JWK for storage.
func marshalPrivate(priv crypto.Signer) (json.RawMessage, error) {
	k, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(k)
}

// parsePrivate decodes a stored private JWK.
func parsePrivate(b []byte) (crypto.Signer, error) {
	k, err := jwk.ParseKey(b)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, err
	}
	switch v := raw.(type) {
	case *rsa.PrivateKey:
		return v, nil
	case *ecdsa.PrivateKey:
		return v, nil
	case ed25519.PrivateKey:
		return v, nil
	}
	return nil, fmt.Errorf("stored key is not a private signing key (%T)", raw)
}
