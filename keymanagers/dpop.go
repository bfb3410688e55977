package keymanagers

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/url"
	"strings"
	"time"
	"unsafe"
)

// DPoP proofs (RFC 9449). A proof is a JWT the client signs with its own
// key for one request; the key travels in the proof's jwk header and the
// access token is bound to its RFC 7638 thumbprint (cnf.jkt).

// DPoPAlgorithms are the proof algorithms accepted: asymmetric only
// (RFC 9449 4.2 forbids none and MAC algorithms). The edge advertises them
// in algs= and in the protected-resource metadata.
var DPoPAlgorithms = []string{"ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}

// DPoP proof limits.
const (
	// MaxDPoPProofSize bounds a proof before any parsing.
	MaxDPoPProofSize = 8 << 10
	// DPoPProofMaxAge is how long after its iat a proof is accepted.
	DPoPProofMaxAge = 60 * time.Second
	// DPoPProofFutureSkew is how far in the future an iat may be (client
	// clocks run fast).
	DPoPProofFutureSkew = 5 * time.Second
	// maxJTILen bounds a proof's jti.
	maxJTILen = 256
)

// dpopProof is a proof whose signature, header and claim types have been
// checked; the request-specific checks (htm, htu, iat, ath, nonce, jti)
// follow in checkDPoPProof.
type dpopProof struct {
	thumbprint [32]byte // RFC 7638 SHA-256 thumbprint of the jwk
	jti        string
	htm        string
	htu        string
	iat        int64
	ath        string
	nonce      string
	hasNonce   bool
}

// ParseDPoPProof parses and verifies a DPoP proof JWT on its own: the typ
// dpop+jwt, an asymmetric alg of DPoPAlgorithms, a public jwk header (any
// private member is refused), the signature with that key, and the claim
// types (jti, htm, htu and iat required). It returns the proof key's RFC
// 7638 thumbprint (base64url) for callers outside the request path (tests,
// tools); the gateway uses the unexported form.
func ParseDPoPProof(proof string) (thumbprint string, err error) {
	p, err := parseDPoPProof(proof)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(p.thumbprint[:]), nil
}

func proofErr(detail string) error { return detailed(ErrDPoPProof, detail) }

func parseDPoPProof(proof string) (*dpopProof, error) {
	if len(proof) > MaxDPoPProofSize {
		return nil, proofErr("proof too large")
	}
	i := strings.IndexByte(proof, '.')
	j := strings.LastIndexByte(proof, '.')
	if i < 0 || i == j || strings.IndexByte(proof[i+1:j], '.') >= 0 {
		return nil, proofErr("proof is not a compact JWS")
	}
	hb, err := b64(proof[:i])
	if err != nil {
		return nil, proofErr("header is not base64url")
	}
	hdr, err := decodeObject(hb)
	if err != nil {
		return nil, proofErr("header: " + err.Error())
	}
	if typ, _ := jsonString(hdr["typ"]); !strings.EqualFold(typ, "dpop+jwt") {
		return nil, proofErr("typ is not dpop+jwt")
	}
	alg, _ := jsonString(hdr["alg"])
	if !dpopAlgAllowed(alg) {
		return nil, proofErr("alg " + safeAlg(alg) + " is not an allowed DPoP algorithm")
	}
	if c, ok := hdr["crit"]; ok && !bytes.Equal(c, []byte("null")) {
		return nil, proofErr("crit header not understood")
	}
	pub, tp, err := parseProofJWK(hdr["jwk"])
	if err != nil {
		return nil, err
	}
	if !keyMatchesAlg(pub, alg) {
		return nil, proofErr("jwk does not fit alg " + alg)
	}
	sig, err := b64(proof[j+1:])
	if err != nil || len(sig) == 0 {
		return nil, proofErr("signature is not base64url")
	}
	if !verifySignature(alg, pub, proof[:j], sig) {
		return nil, proofErr("signature invalid")
	}
	pb, err := b64(proof[i+1 : j])
	if err != nil {
		return nil, proofErr("payload is not base64url")
	}
	claims, err := decodeObject(pb)
	if err != nil {
		return nil, proofErr("payload: " + err.Error())
	}
	p := &dpopProof{thumbprint: tp}
	var ok bool
	if p.jti, ok = jsonString(claims["jti"]); !ok || p.jti == "" || len(p.jti) > maxJTILen {
		return nil, proofErr("jti missing, not a string or too long")
	}
	if p.htm, ok = jsonString(claims["htm"]); !ok || p.htm == "" {
		return nil, proofErr("htm missing or not a string")
	}
	if p.htu, ok = jsonString(claims["htu"]); !ok || p.htu == "" {
		return nil, proofErr("htu missing or not a string")
	}
	if p.iat, ok = numericDate(claims["iat"]); !ok {
		return nil, proofErr("iat missing or not a NumericDate")
	}
	if raw, present := claims["ath"]; present {
		if p.ath, ok = jsonString(raw); !ok {
			return nil, proofErr("ath is not a string")
		}
	}
	if raw, present := claims["nonce"]; present {
		if p.nonce, ok = jsonString(raw); !ok {
			return nil, proofErr("nonce is not a string")
		}
		p.hasNonce = true
	}
	return p, nil
}

// jsonString reads a JSON string member (numbers and other types are
// refused, unlike claimString). Plain ASCII strings alias raw, which the
// caller never changes: no allocation on the request path.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			var v string
			if json.Unmarshal(raw, &v) != nil {
				return "", false
			}
			return v, true
		}
	}
	if len(inner) == 0 {
		return "", true
	}
	return unsafe.String(&inner[0], len(inner)), true
}

func dpopAlgAllowed(alg string) bool {
	for _, a := range DPoPAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// privateJWKMembers are the members that carry private (or symmetric) key
// material (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseProofJWK reads the proof's jwk header: a public EC (P-256, P-384,
// P-521), RSA (2048 bits or more) or OKP Ed25519 key. It returns the key
// and its RFC 7638 SHA-256 thumbprint, computed over the required members
// in lexicographic order; the members are checked to be in their one
// canonical encoding, so the thumbprint is the one the client's
// authorization server computed.
func parseProofJWK(raw json.RawMessage) (crypto.PublicKey, [32]byte, error) {
	var tp [32]byte
	if len(raw) == 0 || raw[0] != '{' {
		return nil, tp, proofErr("jwk header missing or not an object")
	}
	m, err := decodeObject(raw)
	if err != nil {
		return nil, tp, proofErr("jwk: " + err.Error())
	}
	for _, n := range privateJWKMembers {
		if _, ok := m[n]; ok {
			return nil, tp, proofErr("jwk holds private key material")
		}
	}
	member := func(n string) (string, []byte, bool) {
		s, ok := jsonString(m[n])
		if !ok || s == "" {
			return "", nil, false
		}
		b, err := b64(s)
		return s, b, err == nil
	}
	kty, _ := jsonString(m["kty"])
	var canon string
	var pub crypto.PublicKey
	switch kty {
	case "EC":
		crv, _ := jsonString(m["crv"])
		var curve elliptic.Curve
		switch crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, tp, proofErr("jwk: unsupported EC curve")
		}
		xs, x, ok1 := member("x")
		ys, y, ok2 := member("y")
		size := (curve.Params().BitSize + 7) / 8
		if !ok1 || !ok2 || len(x) != size || len(y) != size {
			return nil, tp, proofErr("jwk: bad EC coordinates")
		}
		k := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if !curve.IsOnCurve(k.X, k.Y) {
			return nil, tp, proofErr("jwk: EC point not on the curve")
		}
		pub = k
		canon = `{"crv":"` + crv + `","kty":"EC","x":"` + xs + `","y":"` + ys + `"}`
	case "RSA":
		ns, n, ok1 := member("n")
		es, e, ok2 := member("e")
		if !ok1 || !ok2 || n[0] == 0 || e[0] == 0 || len(e) > 4 {
			return nil, tp, proofErr("jwk: bad RSA modulus or exponent")
		}
		k := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if k.N.BitLen() < 2048 || k.E < 3 || k.E%2 == 0 {
			return nil, tp, proofErr("jwk: RSA key too small or bad exponent")
		}
		pub = k
		canon = `{"e":"` + es + `","kty":"RSA","n":"` + ns + `"}`
	case "OKP":
		crv, _ := jsonString(m["crv"])
		xs, x, ok := member("x")
		if crv != "Ed25519" || !ok || len(x) != ed25519.PublicKeySize {
			return nil, tp, proofErr("jwk: unsupported OKP key")
		}
		pub = ed25519.PublicKey(x)
		canon = `{"crv":"Ed25519","kty":"OKP","x":"` + xs + `"}`
	default:
		return nil, tp, proofErr("jwk: unsupported kty")
	}
	return pub, sha256.Sum256([]byte(canon)), nil
}

// JWKThumbprint returns the RFC 7638 SHA-256 thumbprint (base64url) of a
// public JWK given as JSON, as a cnf.jkt value.
func JWKThumbprint(jwkJSON []byte) (string, error) {
	_, tp, err := parseProofJWK(jwkJSON)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp[:]), nil
}

// checkDPoPProof verifies the one DPoP proof of req for its access token:
// the proof itself, then htm, htu, iat, ath, the nonce when the route
// requires one, and finally that its jti was not seen before (recorded
// only once everything else holds, so junk cannot fill the replay cache).
func (g *Gateway) checkDPoPProof(req *Request, now time.Time) (*dpopProof, error) {
	switch len(req.DPoPProofs) {
	case 0:
		return nil, ErrDPoPProofMissing
	case 1:
	default:
		return nil, proofErr("more than one DPoP header")
	}
	p, err := parseDPoPProof(req.DPoPProofs[0])
	if err != nil {
		return nil, err
	}
	if p.htm != req.Method {
		return nil, proofErr("htm does not match the request method")
	}
	if !sameHTU(p.htu, req.URI) {
		return nil, proofErr("htu does not match the request URI")
	}
	n := now.Unix()
	if p.iat > n+int64(DPoPProofFutureSkew/time.Second) {
		return nil, proofErr("iat is in the future")
	}
	if p.iat < n-int64(DPoPProofMaxAge/time.Second) {
		return nil, proofErr("iat is too old")
	}
	if p.ath == "" {
		return nil, proofErr("ath missing")
	}
	ath := sha256.Sum256(unsafe.Slice(unsafe.StringData(req.Token), len(req.Token)))
	var want [43]byte
	base64.RawURLEncoding.Encode(want[:], ath[:])
	if p.ath != string(want[:]) { // not a secret: the token's hash
		return nil, proofErr("ath does not match the access token")
	}
	if req.Route != nil && req.Route.dpopNonce {
		if !p.hasNonce || !g.nonces.valid(p.nonce, now) {
			return nil, ErrUseDPoPNonce
		}
	}
	if err := g.replay.record(&p.thumbprint, p.jti, now); err != nil {
		return nil, err
	}
	return p, nil
}

// sameHTU compares a proof's htu with the request URI after RFC 9449 4.3
// normalisation: scheme and host in lower case, the default port dropped,
// an empty path as "/", no query and no fragment (the proof's own are
// ignored, the request URI never has them).
func sameHTU(htu, requestURI string) bool {
	a, ok1 := normalizeHTU(htu)
	b, ok2 := normalizeHTU(requestURI)
	return ok1 && ok2 && a == b
}

func normalizeHTU(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}
