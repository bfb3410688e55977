package backendjwt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MinTTL is the shortest JWT lifetime accepted. A JWT is reused until a
// fifth of its life is left, so an upstream always gets at least ttl/5 (6s
// at the floor) to check it; shorter lifetimes would expire on the way
// under ordinary clock skew and network delay, and would make nearly
// every request sign afresh.
const MinTTL = 30 * time.Second

// DefaultTTL is the JWT lifetime when none is configured.
const DefaultTTL = 5 * time.Minute

// ReservedClaims are the claims the signer sets itself; a chosen claim
// must not land on one of them (rename it with the claim mapping).
var ReservedClaims = []string{"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "tenant", "key_manager", "client_id", "application", "scope"}

// Config configures a Signer.
type Config struct {
	// Issuer is the iss claim (required): the gateway's name for itself.
	Issuer string
	// Audience is the aud claim (omitted when empty).
	Audience []string
	// TTL is the JWT lifetime (default 5m, at least MinTTL, at most the
	// key store's RotateEvery minus ClockSkew).
	TTL time.Duration
	// Claims are copied by name from the token or introspection answer
	// (they must be projected claims of the principal).
	Claims []string
	// ClaimMapping renames chosen claims in the JWT (WSO2 claimMapping:
	// token claim name to backend claim name).
	ClaimMapping map[string]string
	Keys         *KeyStore
	// Cache keeps signed JWTs (nil: sign on every call).
	Cache *Cache
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Caller is what the JWT states about the request's principal.
type Caller struct {
	// CacheKey is the principal's result-cache key (a hash of the token);
	// zero disables JWT caching for the call.
	CacheKey    [32]byte
	Tenant      string
	KeyManager  string
	Subject     string
	ClientID    string
	Application string
	// Scopes is the space-separated effective scope list.
	Scopes string
	// Claims answers the chosen claims as raw JSON.
	Claims ClaimSource
}

// ClaimSource answers claims as raw JSON (keymanagers.Principal does).
type ClaimSource interface {
	ClaimRaw(name string) (string, bool)
}

// Signer builds and signs backend JWTs. It is safe for concurrent use.
type Signer struct {
	cfg    Config
	prefix []byte // {"iss":..,"aud":..
	claims []outClaim
	id     [8]byte
	reuse  time.Duration // a cached JWT is reused until exp minus this
}

// callerSeed seeds the caller hashes: one per process, so that signers of
// one configuration (several routes) share their cached JWTs.
var callerSeed = maphash.MakeSeed()

type outClaim struct {
	name string // in the principal
	key  []byte // `,"<json name>":`
}

// NewSigner checks cfg. Errors name the field.
func NewSigner(cfg Config) (*Signer, error) {
	if cfg.Keys == nil {
		return nil, errors.New("backend JWT signer needs a key store")
	}
	if strings.TrimSpace(cfg.Issuer) == "" {
		return nil, errors.New("issuer: is required (the iss upstreams check)")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < MinTTL {
		return nil, fmt.Errorf("ttl: %v is too short (at least %v: the JWT must survive the trip to the upstream and clock skew)", cfg.TTL, MinTTL)
	}
	if limit := cfg.Keys.RotateEvery() - ClockSkew; cfg.TTL > limit {
		return nil, fmt.Errorf("ttl: %v is too long for keys rotated every %v (at most %v, so that a retired key outlives every JWT it signed)", cfg.TTL, cfg.Keys.RotateEvery(), limit)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for src := range cfg.ClaimMapping {
		if !slices.Contains(cfg.Claims, src) {
			return nil, fmt.Errorf("claim_mapping: %q is not one of the chosen claims", src)
		}
	}
	s := &Signer{cfg: cfg, reuse: cfg.TTL / 5}
	s.prefix = append(s.prefix, `{"iss":`...)
	s.prefix = appendJSONString(s.prefix, cfg.Issuer)
	switch len(cfg.Audience) {
	case 0:
	case 1:
		s.prefix = append(s.prefix, `,"aud":`...)
		s.prefix = appendJSONString(s.prefix, cfg.Audience[0])
	default:
		s.prefix = append(s.prefix, `,"aud":[`...)
		for i, a := range cfg.Audience {
			if i > 0 {
				s.prefix = append(s.prefix, ',')
			}
			s.prefix = appendJSONString(s.prefix, a)
		}
		s.prefix = append(s.prefix, ']')
	}
	seen := map[string]string{}
	for _, c := range cfg.Claims {
		out := c
		if m, ok := cfg.ClaimMapping[c]; ok {
			out = m
		}
		if c == "" || out == "" {
			return nil, errors.New("claims: empty claim name")
		}
		if slices.Contains(ReservedClaims, out) {
			return nil, fmt.Errorf("claims: %q would overwrite the %s claim the gateway sets; rename it with claim_mapping", c, out)
		}
		if prev, dup := seen[out]; dup {
			return nil, fmt.Errorf("claims: %q and %q both become %q", prev, c, out)
		}
		seen[out] = c
		k := appendJSONString([]byte{','}, out)
		s.claims = append(s.claims, outClaim{name: c, key: append(k, ':')})
	}
	// The id ties cached JWTs to this exact configuration and key store.
	idIn, _ := json.Marshal([]any{cfg.Issuer, cfg.Audience, cfg.TTL, cfg.Claims, cfg.ClaimMapping, cfg.Keys.Algorithm()})
	sum := sha256.Sum256(idIn)
	copy(s.id[:], sum[:])
	return s, nil
}

// TTL returns the JWT lifetime.
func (s *Signer) TTL() time.Duration { return s.cfg.TTL }

// Token returns a signed JWT for c: from the cache when one signed for
// the same principal and configuration has more than a fifth of its life
// left, else freshly signed (and cached).
func (s *Signer) Token(ctx context.Context, c *Caller) (string, error) {
	now := s.cfg.Now()
	var key [cacheKeyLen]byte
	cache := s.cfg.Cache != nil && c.CacheKey != [32]byte{}
	var sum uint64
	if cache {
		copy(key[:32], c.CacheKey[:])
		copy(key[32:], s.id[:])
		sum = s.callerHash(c)
		if tok, ok := s.cfg.Cache.get(&key, sum, now); ok {
			return tok, nil
		}
	}
	k, err := s.cfg.Keys.signer(ctx, now)
	if err != nil {
		return "", err
	}
	tok, err := s.sign(k, c, now)
	if err != nil {
		return "", err
	}
	if cache {
		s.cfg.Cache.set(&key, sum, now.Add(s.cfg.TTL-s.reuse), tok)
	}
	return tok, nil
}

// callerHash sums every caller field the JWT is built from.
func (s *Signer) callerHash(c *Caller) uint64 {
	var h maphash.Hash
	h.SetSeed(callerSeed)
	for _, f := range [...]string{c.Tenant, c.KeyManager, c.Subject, c.ClientID, c.Application, c.Scopes} {
		_, _ = h.WriteString(f)
		_ = h.WriteByte(0)
	}
	if c.Claims == nil {
		return h.Sum64()
	}
	for _, cl := range s.claims {
		if v, ok := c.Claims.ClaimRaw(cl.name); ok {
			_ = h.WriteByte(1)
			_, _ = h.WriteString(v)
		}
		_ = h.WriteByte(0)
	}
	return h.Sum64()
}

// sign builds the claims and signs them with k.
func (s *Signer) sign(k *signingKey, c *Caller, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	p := make([]byte, 0, 384)
	p = append(p, s.prefix...)
	p = appendField(p, "sub", c.Subject)
	p = append(p, `,"iat":`...)
	p = strconv.AppendInt(p, now.Unix(), 10)
	p = append(p, `,"exp":`...)
	p = strconv.AppendInt(p, now.Add(s.cfg.TTL).Unix(), 10)
	p = append(p, `,"jti":"`...)
	p = base64.RawURLEncoding.AppendEncode(p, jti[:])
	p = append(p, '"')
	p = appendField(p, "tenant", c.Tenant)
	p = appendField(p, "key_manager", c.KeyManager)
	p = appendField(p, "client_id", c.ClientID)
	p = appendField(p, "application", c.Application)
	p = appendField(p, "scope", c.Scopes)
	if c.Claims != nil {
		for _, cl := range s.claims {
			if v, ok := c.Claims.ClaimRaw(cl.name); ok && json.Valid([]byte(v)) {
				p = append(p, cl.key...)
				p = append(p, v...)
			}
		}
	}
	p = append(p, '}')

	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(k.header)+1+enc.EncodedLen(len(p))+1+enc.EncodedLen(512))
	out = append(out, k.header...)
	out = append(out, '.')
	out = enc.AppendEncode(out, p)
	sig, err := k.sign(out)
	if err != nil {
		return "", fmt.Errorf("signing the backend JWT: %v", err)
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	return string(out), nil
}

// appendField appends ,"name":"value" unless value is empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
