package keymanagers

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"math"
	"math/big"
	"strings"
	"unsafe"
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

// decodeObject decodes a JSON object into its top-level members, matching
// names exactly (encoding/json's struct decoding folds case, which would let
// "ISS" stand in for "iss"; map keys are exact) and refusing duplicate
// member names (RFC 7515 5.2 allows either refusing or taking the last;
// refusing leaves no room for two parsers to disagree).
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		return nil, errors.New("not a JSON object")
	}
	if m, ok, dup := scanObject(b); dup {
		return nil, errors.New("duplicate member name")
	} else if ok {
		return m, nil
	}
	// Names with escapes or non-ASCII bytes: let encoding/json decode them
	// (it unescapes and replaces invalid UTF-8) and count the names.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	// The map keeps one value per (decoded) name: fewer entries than names
	// in the text means a duplicate.
	if n, ok := countMembers(b); !ok || n != len(m) {
		return nil, errors.New("duplicate member name")
	}
	return m, nil
}

// scanObject splits a valid JSON object (json.Valid already passed) into
// its members without copying: names alias b (which the caller never
// changes afterwards) and values are sub-slices of b. It gives up (ok
// false) on anything but an object, and on names with escapes or bytes
// outside ASCII, which need encoding/json's decoding; dup reports a
// repeated name.
func scanObject(b []byte) (m map[string]json.RawMessage, ok, dup bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, false
	}
	m = make(map[string]json.RawMessage, 16)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skipWS(b, i+1) == len(b), false
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, false, false
		}
		start := i + 1
		j := start
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' || b[j] >= 0x80 {
				return nil, false, false
			}
			j++
		}
		if j >= len(b) {
			return nil, false, false
		}
		name := unsafe.String(unsafe.SliceData(b[start:j]), j-start)
		if j == start {
			name = ""
		}
		i = skipWS(b, j+1)
		if i >= len(b) || b[i] != ':' {
			return nil, false, false
		}
		vs := skipWS(b, i+1)
		ve := valueEnd(b, vs)
		if ve < 0 {
			return nil, false, false
		}
		if _, seen := m[name]; seen {
			return nil, false, true
		}
		m[name] = json.RawMessage(b[vs:ve:ve])
		i = skipWS(b, ve)
		if i >= len(b) {
			return nil, false, false
		}
		if b[i] == '}' {
			return m, skipWS(b, i+1) == len(b), false
		}
		if b[i] != ',' {
			return nil, false, false
		}
		i = skipWS(b, i+1)
	}
	return nil, false, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the valid JSON value starting at i, or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				for j++; j < len(b) && b[j] != '"'; j++ {
					if b[j] == '\\' {
						j++
					}
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// countMembers counts the top-level member names of a JSON object that
// encoding/json has already accepted.
func countMembers(b []byte) (int, bool) {
	depth, n := 0, 0
	expectName := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			if depth == 1 && expectName {
				n++
				expectName = false
			}
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth == 1 && c == '{' {
				expectName = true
			}
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				expectName = true
			}
		}
	}
	return n, depth == 0
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

// issuerOf reads iss from decoded claims.
func issuerOf(claims map[string]json.RawMessage) (string, error) {
	raw, ok := claims["iss"]
	if !ok {
		return "", detailed(ErrUnknownIssuer, "no iss claim")
	}
	var iss string
	if err := json.Unmarshal(raw, &iss); err != nil {
		return "", detailed(ErrMalformedToken, "iss is not a string")
	}
	return iss, nil
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

// numericDate reads a JWT NumericDate. Strings, negative, fractional
// beyond int64 range and non-numbers are refused.
func numericDate(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false // strings, null, booleans, arrays, objects
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e15 {
		return 0, false
	}
	return int64(f), true
}

// stringOrList reads a claim that may be a string or an array of strings.
// A space-separated string is split when split is true.
func stringOrList(raw json.RawMessage, split bool) ([]string, bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, true
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false
		}
		if split {
			return strings.Fields(s), true
		}
		return []string{s}, true
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, false
	}
	return l, true
}

// claimString reads a claim as a string: strings as they are, numbers and
// booleans in their JSON form, anything else not at all.
func claimString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true
}
