package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

// Backend JWT defaults.
const (
	DefaultBackendJWTHeader    = "X-JWT-Assertion"
	DefaultBackendJWTAlgorithm = backendjwt.RS256
	// backendJWTCacheMB bounds the cache of signed JWTs (shared by every
	// handler of every config).
	backendJWTCacheMB = 32
)

// BackendJWT is the `backend_jwt` option of the keymanager handler: after
// a request is allowed, the upstream gets a JWT signed by the gateway that
// states the caller (iss, sub, aud, iat, exp, jti, tenant, key_manager,
// client_id, application, scope and the chosen claims), and nothing of the
// client's token. The inbound header of the same name is always removed.
// The public keys are served by the keymanager_backend_jwks handler.
type BackendJWT struct {
	// Header carries the JWT (default X-JWT-Assertion).
	Header string `json:"header,omitempty"`
	// Issuer is the iss claim (required).
	Issuer string `json:"issuer"`
	// Audience is the aud claim: one or more values (default none).
	Audience []string `json:"audience,omitempty"`
	// TTL is the JWT lifetime (default 5m, at least 30s, below the key
	// rotation period minus a minute).
	TTL caddy.Duration `json:"ttl,omitempty"`
	// Claims are copied by name from the token or introspection answer.
	Claims []string `json:"claims,omitempty"`
	// ClaimMapping renames chosen claims (WSO2 claimMapping: token claim
	// to backend claim, e.g. groups to http://wso2.org/claims/role).
	ClaimMapping map[string]string `json:"claim_mapping,omitempty"`
	// Algorithm is RS256 (default), ES256 or EdDSA.
	Algorithm string `json:"algorithm,omitempty"`

	signer *backendjwt.Signer
	header string // canonical
	folded string
	reg    func() *keymanagers.Registry
	logger *zap.Logger
}

// BackendJWTKeys configures the signing keys of the app (global option
// `keymanagers { backend_jwt { rotate_every 24h } }`).
type BackendJWTKeys struct {
	// RotateEvery is how long a key signs before its successor takes
	// over (default 24h, at least 10m). Instances on one storage must
	// agree on it.
	RotateEvery caddy.Duration `json:"rotate_every,omitempty"`
}

// backendJWTState is the app's share of pooled key stores and the JWT
// cache, filled while handlers provision.
type backendJWTState struct {
	stores map[backendjwt.Algorithm]*backendjwt.KeyStore
	cache  *backendjwt.Cache
}

// backendJWTClockShift moves the backend JWT clock (tests only: key
// rotation under load without waiting a day).
var backendJWTClockShift atomic.Int64

func backendJWTNow() time.Time { return time.Now().Add(time.Duration(backendJWTClockShift.Load())) }

type pooledKeyStore struct {
	*backendjwt.KeyStore
	cancel context.CancelFunc
}

func (p *pooledKeyStore) Destruct() error { p.cancel(); return nil }

type pooledJWTCache struct{ *backendjwt.Cache }

func (p *pooledJWTCache) Destruct() error { return p.Close() }

func (a *App) rotateEvery() (time.Duration, error) {
	if a.BackendJWT == nil || a.BackendJWT.RotateEvery == 0 {
		return backendjwt.DefaultRotateEvery, nil
	}
	d := time.Duration(a.BackendJWT.RotateEvery)
	if d < backendjwt.MinRotateEvery {
		return 0, fmt.Errorf("keymanagers: backend_jwt: rotate_every: %v is too short (at least %v: a new key is published a quarter period before it signs, for upstreams that cache the JWKS)", d, backendjwt.MinRotateEvery)
	}
	return d, nil
}

// backendJWTKeys returns the app's key store of alg and the JWT cache,
// acquiring pooled ones (kept across reloads; each runs its storage sync
// until the last config using it is cleaned up).
func (a *App) backendJWTKeys(alg backendjwt.Algorithm) (*backendjwt.KeyStore, *backendjwt.Cache, error) {
	every, err := a.rotateEvery()
	if err != nil {
		return nil, nil, err
	}
	a.claimsMu.Lock()
	defer a.claimsMu.Unlock()
	if a.backendJWT == nil {
		ck := fmt.Sprintf("bjwt|cache|%s", every)
		cv, _, err := pool.LoadOrNew(ck, func() (caddy.Destructor, error) {
			c, err := backendjwt.NewCache(backendJWTCacheMB, every)
			if err != nil {
				return nil, err
			}
			return &pooledJWTCache{c}, nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("backend JWT cache: %v", err)
		}
		a.poolKeys = append(a.poolKeys, ck)
		a.backendJWT = &backendJWTState{stores: map[backendjwt.Algorithm]*backendjwt.KeyStore{}, cache: cv.(*pooledJWTCache).Cache}
	}
	if ks := a.backendJWT.stores[alg]; ks != nil {
		return ks, a.backendJWT.cache, nil
	}
	st := a.ctx.Storage()
	sync := time.Duration(a.SyncInterval)
	if sync <= 0 {
		sync = 10 * time.Second
	}
	if sync >= every/4 {
		return nil, nil, fmt.Errorf("keymanagers: sync_interval (%v) must be shorter than a quarter of backend_jwt rotate_every (%v): every instance must read a new key before it signs", sync, every)
	}
	// The storage's type and value identify it; hashed, as the value may
	// hold credentials.
	sid := sha256.Sum256(fmt.Appendf(nil, "%T|%v", st, st))
	key := fmt.Sprintf("bjwt|keys|%s|%s|%s|%x", alg, every, sync, sid[:16])
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		ks, err := backendjwt.NewKeyStore(backendjwt.KeyStoreConfig{Storage: st, Algorithm: alg, RotateEvery: every,
			Now: backendJWTNow, Logger: caddy.Log().Named("keymanagers.backend_jwt")})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		go ks.Run(ctx, sync)
		return &pooledKeyStore{KeyStore: ks, cancel: cancel}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	a.poolKeys = append(a.poolKeys, key)
	ks := v.(*pooledKeyStore).KeyStore
	ks.SetStorage(st) // this config's storage module instance
	a.backendJWT.stores[alg] = ks
	return ks, a.backendJWT.cache, nil
}

// backendJWTStores lists the app's key stores by algorithm name.
func (a *App) backendJWTStores() []*backendjwt.KeyStore {
	a.claimsMu.Lock()
	defer a.claimsMu.Unlock()
	if a.backendJWT == nil {
		return nil
	}
	out := make([]*backendjwt.KeyStore, 0, len(a.backendJWT.stores))
	for _, ks := range a.backendJWT.stores {
		out = append(out, ks)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Algorithm() < out[j].Algorithm() })
	return out
}

// provisionBackendJWT checks the option, builds its signer and has the
// chosen claims kept with each result. Errors name the field.
func (h *Handler) provisionBackendJWT() error {
	b := h.BackendJWT
	if b == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("keymanager: backend_jwt: "+format, args...)
	}
	if b.Header == "" {
		b.Header = DefaultBackendJWTHeader
	}
	if !validHeaderName(b.Header) {
		return fail("header: %q is not a valid header name", b.Header)
	}
	b.header, b.folded = textproto.CanonicalMIMEHeaderKey(b.Header), foldHeaderName(b.Header)
	if b.folded == "authorization" {
		return fail("header: refusing to overwrite the Authorization header")
	}
	for i, f := range h.forward {
		if f.folded == b.folded {
			return fail("header: %s is also the header of forward_claim[%d] (%s)", b.Header, i, f.claim)
		}
	}
	alg := DefaultBackendJWTAlgorithm
	if b.Algorithm != "" {
		var err error
		if alg, err = backendjwt.ParseAlgorithm(b.Algorithm); err != nil {
			return fail("algorithm: %v", err)
		}
	}
	ks, cache, err := h.app.backendJWTKeys(alg)
	if err != nil {
		return err
	}
	b.signer, err = backendjwt.NewSigner(backendjwt.Config{Issuer: b.Issuer, Audience: b.Audience, TTL: time.Duration(b.TTL),
		Claims: b.Claims, ClaimMapping: b.ClaimMapping, Keys: ks, Cache: cache, Now: backendJWTNow})
	if err != nil {
		return fail("%v", err)
	}
	b.reg, b.logger = h.app.gateway.Registry, h.logger
	h.app.addProjectedClaims(b.Claims)
	return nil
}

// apply replaces the inbound header (and its '_' aliases) with the JWT
// for p. A signing failure (no key yet: storage unreachable) is a 503.
func (b *BackendJWT) apply(r *http.Request, p *keymanagers.Principal) error {
	for k := range r.Header {
		if strings.IndexByte(k, '_') >= 0 && foldHeaderName(k) == b.folded {
			delete(r.Header, k)
		}
	}
	r.Header.Del(b.header)
	c := backendjwt.Caller{CacheKey: p.CacheKey(), Tenant: p.Tenant, KeyManager: p.KeyManager, Subject: p.Subject,
		ClientID: p.ClientID, Scopes: p.Scopes, Claims: p}
	if app := b.reg().Tenant(p.Tenant).Application(p.KeyManager, p.ClientID); app != nil {
		c.Application = app.ID
	}
	tok, err := b.signer.Token(r.Context(), &c)
	if err != nil {
		if ce := b.logger.Check(zap.WarnLevel, "backend JWT not signed"); ce != nil {
			ce.Write(zap.String("tenant", p.Tenant), zap.Error(err))
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	r.Header[b.header] = []string{tok}
	return nil
}

// backendJWTStatus is the admin view of the backend JWT keys.
func (a *App) backendJWTStatus() map[string]any {
	every, _ := a.rotateEvery()
	keys := []backendjwt.KeyInfo{}
	for _, ks := range a.backendJWTStores() {
		keys = append(keys, ks.Keys()...)
	}
	out := map[string]any{"rotate_every": every.String(), "keys": keys, "cached_jwts": 0}
	a.claimsMu.Lock()
	if a.backendJWT != nil {
		out["cached_jwts"] = a.backendJWT.cache.Len()
	}
	a.claimsMu.Unlock()
	return out
}
