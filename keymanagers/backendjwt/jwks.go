package backendjwt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// JWKS returns the public keys as an RFC 7517 JWK Set (kid, alg, use sig
// on each), or nil before the first successful Sync. The caller must not
// modify it.
func (ks *KeyStore) JWKS() []byte {
	if s := ks.snap.Load(); s != nil {
		return s.jwks
	}
	return nil
}

// MaxAge is how long an upstream may cache the JWKS: a quarter of the
// publication lead (at most an hour), so it has fetched a new key several
// times over before the key signs.
func (ks *KeyStore) MaxAge() time.Duration { return min(ks.cfg.PublishAhead/4, time.Hour) }

// JWKS merges the public keys of several key stores into one JWK Set and
// returns the shortest MaxAge (0 with no store: the set is empty only
// until a route uses backend_jwt, so it must not be cached). A store that
// has no keys yet syncs first; if it still has none the call fails rather
// than serve a partial set an upstream would cache.
func JWKS(ctx context.Context, stores ...*KeyStore) ([]byte, time.Duration, error) {
	out := []byte(`{"keys":[`)
	maxAge := time.Hour
	if len(stores) == 0 {
		maxAge = 0
	}
	n := 0
	for _, ks := range stores {
		s, err := ks.loaded(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", ks.cfg.Algorithm, err)
		}
		for _, pj := range s.pub {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, pj...)
			n++
		}
		maxAge = min(maxAge, ks.MaxAge())
	}
	return append(out, "]}"...), maxAge, nil
}

// KeyInfo describes one published key (for the admin API).
type KeyInfo struct {
	KID       string    `json:"kid"`
	Algorithm Algorithm `json:"alg"`
	// Status is next (published, not signing yet), current (signing) or
	// retired (published for JWTs it signed).
	Status    string          `json:"status"`
	Activates time.Time       `json:"activates"`
	Retires   *time.Time      `json:"retires,omitempty"`
	Public    json.RawMessage `json:"jwk"`
}

// Keys describes the published keys, oldest first.
func (ks *KeyStore) Keys() []KeyInfo {
	s := ks.snap.Load()
	if s == nil {
		return []KeyInfo{}
	}
	now := ks.cfg.Now()
	cur := s.current(now)
	out := make([]KeyInfo, 0, len(s.keys))
	for i, k := range s.keys {
		info := KeyInfo{KID: k.kid, Algorithm: k.alg, Activates: k.activates, Status: "retired"}
		if !k.retires.IsZero() {
			r := k.retires
			info.Retires = &r
		}
		switch {
		case k.signingKey == cur:
			info.Status = "current"
		case now.Before(k.activates):
			info.Status = "next"
		}
		info.Public = s.pub[i]
		out = append(out, info)
	}
	return out
}
