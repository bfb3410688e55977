package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// RevokeRequest revokes by token, or by (issuer, jti).
type RevokeRequest struct {
	Token  string `json:"token,omitempty"`
	Issuer string `json:"issuer,omitempty"`
	JTI    string `json:"jti,omitempty"`
	// ExpiresAt bounds how long the revocation is kept (default: the JWT's
	// exp plus the largest clock skew, else 24h).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Revocations are kept this long when nothing says longer.
const (
	DefaultRevocationTTL = 24 * time.Hour
	// revocationSkew covers the largest clock_skew a Key Manager may have
	// (10m), plus a minute.
	revocationSkew = 11 * time.Minute
)

// farFuture is how long a revocation of a token whose exp the strict
// parser refuses (beyond its range) is kept: such a token could be valid
// for as long as anyone can tell.
var farFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Revoke records a revocation in storage and applies it at once. A JWT is
// revoked by its hash, by the hash of its mirrored ECDSA signature (r,
// n-s) for ES256/384/512, and, when it has one, by (iss, jti), so another
// string carrying the same signature is refused too.
func (c *Catalog) Revoke(ctx context.Context, req RevokeRequest) (keymanagers.Revocation, error) {
	var rv keymanagers.Revocation
	switch {
	case req.Token != "" && req.JTI == "":
		rv.TokenHash = keymanagers.TokenHash(req.Token)
		if m, ok := keymanagers.MirrorECDSAToken(req.Token); ok {
			rv.MirrorTokenHash = keymanagers.TokenHash(m)
		}
		if f, ok := keymanagers.InspectJWT(req.Token); ok {
			rv.Issuer, rv.JTI = f.Issuer, f.JTI
			if rv.JTI == "" {
				rv.Issuer = ""
			}
			switch {
			case f.ExpOutOfRange:
				rv.ExpiresAt = farFuture
			case f.HasExp:
				// Until the token could no longer be accepted.
				rv.ExpiresAt = time.Unix(f.Exp, 0).Add(revocationSkew)
			}
		}
	case req.Token == "" && req.JTI != "" && req.Issuer != "":
		rv.Issuer, rv.JTI = req.Issuer, req.JTI
	default:
		return rv, fail(ErrInvalid, `give either "token", or "issuer" and "jti"`)
	}
	if !req.ExpiresAt.IsZero() {
		rv.ExpiresAt = req.ExpiresAt
	}
	if rv.ExpiresAt.IsZero() {
		rv.ExpiresAt = now().Add(DefaultRevocationTTL)
	}
	if !rv.ExpiresAt.After(now()) {
		return rv, fail(ErrInvalid, "expires_at is in the past")
	}
	rv.ExpiresAt = rv.ExpiresAt.UTC().Truncate(time.Second)
	err := c.write(ctx, func() error {
		b, _ := json.Marshal(rv)
		key := revocationKey(rv)
		if err := c.cfg.Storage.Store(ctx, key, b); err != nil {
			return fmt.Errorf("storing: %v", err)
		}
		c.revs[key] = rv
		c.installRevocations()
		return nil
	})
	return rv, err
}

// revocationKey names a revocation in storage.
func revocationKey(rv keymanagers.Revocation) string {
	if rv.TokenHash != "" {
		return path.Join(storageRevocations, "t-"+rv.TokenHash+".json")
	}
	h := sha256.Sum256([]byte(rv.Issuer + "\x00" + rv.JTI))
	return path.Join(storageRevocations, "j-"+hex.EncodeToString(h[:])+".json")
}
