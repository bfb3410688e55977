package keymanagers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// minRSABits is the smallest RSA modulus accepted for signature checks.
const minRSABits = 2048

// verificationKey is one public key usable to verify signatures.
type verificationKey struct {
	kid string
	alg string // "" when the JWK does not name one
	pub crypto.PublicKey
	// id identifies (kid, key material); cached results record it, so a key
	// removed or replaced by a refresh invalidates what it vouched for.
	id uint32
}

func keyID(kid string, pub crypto.PublicKey) uint32 {
	h := fnv.New32a()
	h.Write([]byte(kid))
	h.Write([]byte{0})
	if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
		h.Write(der)
	}
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}

// keySet is an immutable set of verification keys.
type keySet struct {
	byKid   map[string][]*verificationKey
	all     []*verificationKey
	ids     map[uint32]struct{}
	pinned  bool // certificate_pem: used whatever the token's kid
	fetched time.Time
}

// has reports whether a key with that id is still in the set.
func (s *keySet) has(id uint32) bool {
	if s == nil {
		return false
	}
	_, ok := s.ids[id]
	return ok
}

func (s *keySet) index() {
	s.ids = make(map[uint32]struct{}, len(s.all))
	for _, k := range s.all {
		k.id = keyID(k.kid, k.pub)
		s.ids[k.id] = struct{}{}
	}
}

func (s *keySet) kids() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.all))
	for _, k := range s.all {
		out = append(out, k.kid)
	}
	return out
}

// parseJWKS parses a JWKS document into a keySet. Keys meant for encryption
// (use=enc), private parts, symmetric keys and weak RSA keys are dropped;
// a set with no usable signing key is an error.
func parseJWKS(body []byte) (*keySet, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("not a valid JWK set: %w", err)
	}
	ks := &keySet{byKid: map[string][]*verificationKey{}}
	var skipped int
	for i := 0; i < set.Len(); i++ {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
			skipped++
			continue
		}
		var raw any
		if err := k.Raw(&raw); err != nil {
			skipped++
			continue
		}
		pub, err := publicOnly(raw)
		if err != nil {
			skipped++
			continue
		}
		vk := &verificationKey{kid: k.KeyID(), pub: pub}
		if a := k.Algorithm(); a != nil {
			vk.alg = a.String()
		}
		ks.all = append(ks.all, vk)
		ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
	}
	if len(ks.all) == 0 {
		return nil, fmt.Errorf("JWK set has no usable signing key (%d skipped)", skipped)
	}
	ks.index()
	return ks, nil
}

// publicOnly returns the public half of raw, refusing symmetric and weak keys.
func publicOnly(raw any) (crypto.PublicKey, error) {
	switch k := raw.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too weak", k.N.BitLen())
		}
		return k, nil
	case *rsa.PrivateKey:
		return publicOnly(&k.PublicKey)
	case *ecdsa.PublicKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return &k.PublicKey, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return k, nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("Ed25519 private key of %d bytes", len(k))
		}
		return k.Public(), nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
}

// parsePinnedKey reads a PEM certificate or public key.
func parsePinnedKey(pemText string) (*keySet, error) {
	rest := []byte(pemText)
	ks := &keySet{byKid: map[string][]*verificationKey{}, pinned: true}
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var raw any
		var err error
		switch block.Type {
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				raw = cert.PublicKey
			}
		case "PUBLIC KEY":
			raw, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			raw, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q is not a certificate or public key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot parse PEM %s: %v", block.Type, err)
		}
		pub, err := publicOnly(raw)
		if err != nil {
			return nil, err
		}
		ks.all = append(ks.all, &verificationKey{pub: pub})
	}
	if len(ks.all) == 0 {
		return nil, errors.New("no PEM certificate or public key found")
	}
	ks.index()
	return ks, nil
}

// keyMatchesAlg reports whether pub can verify alg (the key type decides the
// algorithm family, so a public key is never used as an HMAC secret).
func keyMatchesAlg(pub crypto.PublicKey, alg string) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
