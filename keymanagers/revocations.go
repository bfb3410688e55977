package keymanagers

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Revocations is an immutable set of tokens refused at the gateway, by
// token hash or by (issuer, jti). The Gateway holds one behind an atomic
// pointer and checks it on every request, cache hits included.
type Revocations struct {
	hashes map[[32]byte]int64          // token SHA-256 -> unix expiry of the revocation
	jtis   map[string]map[string]int64 // issuer -> jti -> unix expiry
	n      int                         // live entries
}

// Revocation is one entry, as stored and listed.
type Revocation struct {
	// TokenHash is the hex SHA-256 of the token (never the token).
	TokenHash string `json:"token_hash,omitempty"`
	// MirrorTokenHash is the hex SHA-256 of the mirrored ECDSA encoding of
	// the same token (see MirrorECDSAToken), refused alike.
	MirrorTokenHash string `json:"mirror_token_hash,omitempty"`
	Issuer          string `json:"issuer,omitempty"`
	JTI             string `json:"jti,omitempty"`
	// ExpiresAt is when the revocation may be forgotten (the token's own
	// expiry or later).
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenHash returns the hex SHA-256 of a token, the form revocations and
// logs use.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewRevocations builds a set; entries already expired at now are dropped.
func NewRevocations(list []Revocation, now time.Time) *Revocations {
	r := &Revocations{hashes: map[[32]byte]int64{}, jtis: map[string]map[string]int64{}}
	for _, e := range list {
		if !e.ExpiresAt.After(now) {
			continue
		}
		r.n++
		for _, h := range [2]string{e.TokenHash, e.MirrorTokenHash} {
			var k [32]byte
			if b, err := hex.DecodeString(h); err == nil && len(b) == 32 {
				copy(k[:], b)
				r.hashes[k] = e.ExpiresAt.Unix()
			}
		}
		if e.JTI != "" {
			if r.jtis[e.Issuer] == nil {
				r.jtis[e.Issuer] = map[string]int64{}
			}
			r.jtis[e.Issuer][e.JTI] = e.ExpiresAt.Unix()
		}
	}
	return r
}

// Len returns the number of live entries.
func (r *Revocations) Len() int {
	if r == nil {
		return 0
	}
	return r.n
}

func (r *Revocations) revoked(key *[32]byte, issuer, jti string) bool {
	if r == nil {
		return false
	}
	if len(r.hashes) > 0 {
		if _, ok := r.hashes[*key]; ok {
			return true
		}
	}
	if jti != "" && len(r.jtis) > 0 {
		if _, ok := r.jtis[issuer][jti]; ok {
			return true
		}
	}
	return false
}

// SetRevocations installs a new revocation set.
func (g *Gateway) SetRevocations(r *Revocations) { g.revocations.Store(r) }

// JWTFacts are the claims a revocation needs from a JWT, read without
// verifying it.
type JWTFacts struct {
	Issuer, JTI string
	Exp         int64
	HasExp      bool
	// ExpOutOfRange reports an exp present but refused by the strict
	// NumericDate reader (not a number, negative, beyond its range).
	ExpOutOfRange bool
}

// InspectJWT reads iss, jti and exp of a compact JWS with the same strict
// decoder as verification (exact member names, duplicates refused), so
// {"exp":1,"Exp":2} cannot shorten a revocation. ok is false for anything
// that is not a readable JWS.
func InspectJWT(token string) (JWTFacts, bool) {
	p, err := parseCompact(token)
	if err != nil {
		return JWTFacts{}, false
	}
	claims, err := decodeClaims(p.payload)
	if err != nil {
		return JWTFacts{}, false
	}
	var f JWTFacts
	f.Issuer, _ = claimString(claims["iss"])
	f.JTI, _ = claimString(claims["jti"])
	if raw, ok := claims["exp"]; ok {
		f.Exp, f.HasExp = numericDate(raw)
		f.ExpOutOfRange = !f.HasExp
	}
	return f, true
}
