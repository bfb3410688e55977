package keymanagers

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"strings"
)

// jwtHeader holds the JOSE header fields the gateway reads. jku, x5u and x5c
// are deliberately not read: keys come only from the Key Manager's
// configured JWKS or pinned certificate.
type jwtHeader struct {
	Alg   string          `json:"alg"`
	Kid   string          `json:"kid"`
	Typ   string          `json:"typ"`
	Crit  json.RawMessage `json:"crit"`
	Nonce json.RawMessage `json:"nonce"`
}

// parsedJWT is a compact JWS split and decoded, not yet verified.
type parsedJWT struct {
	header       jwtHeader
	signingInput string
	payload      []byte
	sig          []byte
}

// parseCompact splits and decodes a compact JWS. It never verifies.
func parseCompact(token string) (*parsedJWT, error) {
	dots := strings.Count(token, ".")
	if dots == 4 {
		return nil, ErrEncryptedToken
	}
	if dots != 2 {
		return nil, ErrOpaqueToken
	}
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	p := &parsedJWT{signingInput: token[:j]}
	hdr, err := b64(token[:i])
	if err != nil {
		return nil, detailed(ErrMalformedToken, "header is not base64url")
	}
	if err := decodeHeader(hdr, &p.header); err != nil {
		return nil, err
	}
	if p.payload, err = b64(token[i+1 : j]); err != nil {
		return nil, detailed(ErrMalformedToken, "payload is not base64url")
	}
	if p.sig, err = b64(token[j+1:]); err != nil {
		return nil, detailed(ErrMalformedToken, "signature is not base64url")
	}
	if len(p.header.Crit) > 0 && !bytes.Equal(p.header.Crit, []byte("null")) {
		// RFC 7515 4.1.11: we understand no extension, so any crit is fatal.
		return nil, ErrCritHeader
	}
	if p.header.Alg == "" || strings.EqualFold(p.header.Alg, "none") {
		return nil, detailed(ErrAlgorithm, "alg none or missing")
	}
	if len(p.sig) == 0 {
		return nil, detailed(ErrBadSignature, "empty signature")
	}
	return p, nil
}

func b64(s string) ([]byte, error) {
	// Accept the unpadded form only, as RFC 7515 requires.
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// decodeHeader reads the JOSE header with exact member names.
func decodeHeader(b []byte, h *jwtHeader) error {
	m, err := decodeObject(b)
	if err != nil {
		return detailed(ErrMalformedToken, "header: "+err.Error())
	}
	for name, dst := range map[string]*string{"alg": &h.Alg, "kid": &h.Kid, "typ": &h.Typ} {
		raw, ok := m[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return detailed(ErrMalformedToken, "header "+name+" is not a string")
		}
	}
	h.Crit = m["crit"]
	h.Nonce = m["nonce"]
	return nil
}

// decodeClaims decodes a payload's top-level claims with exact names,
// refusing duplicates.
func decodeClaims(payload []byte) (map[string]json.RawMessage, error) {
	claims, err := decodeObject(payload)
	if err != nil {
		return nil, detailed(ErrMalformedToken, "payload: "+err.Error())
	}
	return claims, nil
}

func hashFor(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[2:] {
	case "256":
		return crypto.SHA256, sha256.New
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return 0, nil
}

// verifySignature checks sig over input with pub for alg. The caller has
// already checked that alg is allowed and matches the key type.
func verifySignature(alg string, pub crypto.PublicKey, input string, sig []byte) bool {
	if alg == "EdDSA" {
		k, ok := pub.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize && ed25519.Verify(k, []byte(input), sig)
	}
	if len(alg) != 5 {
		return false
	}
	h, newHash := hashFor(alg)
	if newHash == nil {
		return false
	}
	hh := newHash()
	hh.Write([]byte(input))
	digest := hh.Sum(nil)
	switch alg[:2] {
	case "RS":
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case "PS":
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case "ES":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// verifyHMAC checks an HS* signature with a configured shared secret.
func verifyHMAC(alg string, secret []byte, input string, sig []byte) bool {
	if len(alg) != 5 || alg[:2] != "HS" {
		return false
	}
	_, newHash := hashFor(alg)
	if newHash == nil {
		return false
	}
	m := hmac.New(newHash, secret)
	m.Write([]byte(input))
	return hmac.Equal(m.Sum(nil), sig)
}

// MirrorECDSAToken returns the other token string that carries the same
// ES256/384/512 signature: ECDSA accepts (r, s) and (r, n-s) alike, so
// anyone holding a token can make a second, different string that
// verifies. Revocation by token hash revokes both. ok is false for
// anything that is not a readable ECDSA-signed JWS.
func MirrorECDSAToken(token string) (string, bool) {
	p, err := parseCompact(token)
	if err != nil {
		return "", false
	}
	var curve elliptic.Curve
	switch p.header.Alg {
	case "ES256":
		curve = elliptic.P256()
	case "ES384":
		curve = elliptic.P384()
	case "ES512":
		curve = elliptic.P521()
	default:
		return "", false
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(p.sig) != 2*size {
		return "", false
	}
	n := curve.Params().N
	sv := new(big.Int).SetBytes(p.sig[size:])
	if sv.Sign() == 0 || sv.Cmp(n) >= 0 {
		return "", false
	}
	sig := make([]byte, 2*size)
	copy(sig, p.sig[:size])
	new(big.Int).Sub(n, sv).FillBytes(sig[size:])
	return p.signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), true
}
