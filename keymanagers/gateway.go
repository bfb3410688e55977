package keymanagers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"hash/fnv"
	"slices"
	"sort"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// Gateway validates tokens against the current Registry and caches the
// results. Registry swaps are atomic; the request path takes no lock.
type Gateway struct {
	reg    atomic.Pointer[Registry]
	cache  *ResultCache
	logger *zap.Logger
	now    func() time.Time

	projected   atomic.Pointer[projection]
	revocations atomic.Pointer[Revocations]
	// revocationsSynced is the unix-nano time of the last successful
	// revocation sync (0: never; see MarkRevocationsSynced).
	revocationsSynced atomic.Int64

	// DPoP (dpop_replay.go): accepted proofs' jti, and server nonces.
	replay *replayCache
	nonces *nonceSource
}

type projection struct {
	names []string
	id    uint32
}

// NewGateway builds a gateway over a registry and a (possibly shared)
// result cache.
func NewGateway(reg *Registry, cache *ResultCache, logger *zap.Logger, now func() time.Time) *Gateway {
	if logger == nil {
		logger = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	g := &Gateway{cache: cache, logger: logger, now: now, replay: newReplayCache(0), nonces: newNonceSource()}
	g.reg.Store(reg)
	g.SetProjectedClaims(nil)
	return g
}

// MarkRevocationsSynced records that the revocations known at t have been
// synced (the storage sync calls it after each successful sync). From then
// on stale_if_error serves a cached introspection result only if the Key
// Manager confirmed the token at or after the last sync: a token revoked
// before the sync and not confirmed since is never served stale. Before the
// first call, stale results are served as stale_if_error says. The mark
// never moves backwards.
func (g *Gateway) MarkRevocationsSynced(t time.Time) {
	if t.IsZero() {
		return
	}
	ns := t.UnixNano()
	for {
		cur := g.revocationsSynced.Load()
		if ns <= cur || g.revocationsSynced.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// Registry returns the current snapshot.
func (g *Gateway) Registry() *Registry { return g.reg.Load() }

// Swap installs a new snapshot and returns the old one.
func (g *Gateway) Swap(r *Registry) *Registry { return g.reg.Swap(r) }

// Cache returns the result cache.
func (g *Gateway) Cache() *ResultCache { return g.cache }

// SetProjectedClaims names the claims, beyond subject, client id and
// scopes, that results keep for placeholders and forwarded headers.
// Cached results made with another set are treated as misses.
func (g *Gateway) SetProjectedClaims(names []string) {
	names = slices.Clone(names)
	sort.Strings(names)
	names = slices.Compact(names)
	h := fnv.New32a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	g.projected.Store(&projection{names: names, id: h.Sum32()})
}

// MaxTokenSize is the largest token the gateway considers at all; hosts
// normally enforce a much smaller limit before calling Authenticate.
const MaxTokenSize = 1 << 20

// maxFieldLen is the longest principal field a cache entry holds.
const maxFieldLen = 0xffff

// Authenticate validates token for tenant on route, without the route's
// authorization rules (see Authorize, which hosts call). It returns the
// principal, or an error that Classify maps to the edge response. The
// token is taken as a plain bearer token with no client certificate: a
// bound token is refused (only Authorize checks proofs and certificates).
func (g *Gateway) Authenticate(ctx context.Context, tenant string, route *Route, token string) (*Principal, error) {
	t := g.reg.Load().tenants[tenant]
	if t == nil {
		return nil, ErrUnknownTenant
	}
	p, err := g.authenticate(ctx, t, route, token)
	if err != nil {
		return nil, err
	}
	if err := checkBinding(&Request{Route: route, Scheme: SchemeBearer}, p, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// authenticate validates token against one tenant of one registry
// snapshot. A cache hit does no signature work and no I/O.
func (g *Gateway) authenticate(ctx context.Context, t *Tenant, route *Route, token string) (*Principal, error) {
	tenant := t.Name
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > MaxTokenSize {
		return nil, ErrTokenTooLarge
	}
	p := new(Principal)
	p.key = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	proj := g.projected.Load()
	now := g.now().Unix()
	var stale *Principal
	if entry := g.cache.get(&p.key); entry != nil {
		if decodeEntry(entry, p) == nil && p.claimSet == proj.id {
			km := t.byName[p.KeyManager]
			if km != nil && km.fpHash == p.fpHash && km.def.IsEnabled() && route.accepts(km.def.Name) &&
				(p.keyID == 0 || km.keys.Load().has(p.keyID)) { // a key removed by a refresh drops its results
				p.fill(km, tenant)
				switch {
				case now < p.ExpiresAt && p.negative:
					return nil, p.negativeError()
				case now < p.ExpiresAt:
					if g.revocations.Load().revoked(&p.key, p.Issuer, p.JTI) {
						return nil, ErrRevoked
					}
					p.Cached = true
					return p, nil
				case !p.negative && km.def.StaleIfError > 0 && now < p.hardExpiry &&
					now < p.ExpiresAt+int64(time.Duration(km.def.StaleIfError)/time.Second) &&
					int64(p.confirmedAt)*int64(time.Second) >= g.revocationsSynced.Load():
					// Usable only if the Key Manager fails now, and only if
					// it confirmed the token at or after the last revocation
					// sync (confirmedAt is rounded down: within the sync's
					// second, stale is refused).
					stale = p
				}
			}
			// Otherwise (other tenant, changed Key Manager, expired):
			// validate afresh against this tenant.
		}
		key := p.key
		p = new(Principal)
		p.key = key
	}
	if !ValidTokenSyntax(token) {
		return nil, ErrTokenSyntax
	}
	if rv := g.revocations.Load(); rv.Len() > 0 && rv.revoked(&p.key, "", "") {
		return nil, ErrRevoked // by token hash: no need to ask anyone
	}
	res, err := g.validate(ctx, t, route, token, p, proj)
	if err == nil && g.revocations.Load().revoked(&res.key, res.Issuer, res.JTI) {
		return nil, ErrRevoked
	}
	if err != nil && stale != nil && Classify(err).Kind == KindUnavailable && !g.revocations.Load().revoked(&stale.key, stale.Issuer, stale.JTI) {
		if c := g.logger.Check(zap.DebugLevel, "serving a stale introspection result while the key manager fails"); c != nil {
			c.Write(zap.String("tenant", tenant), zap.String("key_manager", stale.KeyManager))
		}
		return stale, nil
	}
	return res, err
}

// finish fills the Key Manager fields and encodes the cache entry.
func (g *Gateway) finish(km *KeyManager, iss string, p *Principal, proj *projection, claims map[string]json.RawMessage, soft int64) ([]byte, error) {
	p.KeyManager = km.def.Name
	p.KeyManagerTenant = km.tenant
	p.Issuer = iss
	if iss == km.Issuer() {
		p.Issuer = "" // implied by the Key Manager: not stored
	}
	p.fpHash = km.fpHash
	p.claimSet = proj.id
	p.ExpiresAt = soft
	var err error
	if p.binding, err = bindingOf(claims); err != nil {
		return nil, err
	}
	var kept [][2]string
	for _, n := range proj.names {
		if raw, ok := claims[n]; ok {
			kept = append(kept, [2]string{n, string(raw)})
		}
	}
	// The cache entry stores each field with a 16-bit length: refuse rather
	// than truncate (a cut scope list could grant a shorter scope).
	for _, f := range []string{p.Issuer, p.Subject, p.ClientID, p.Scopes, p.JTI} {
		if len(f) > maxFieldLen {
			return nil, detailed(ErrTokenTooLarge, "a claim is longer than the gateway keeps")
		}
	}
	for _, c := range kept {
		if len(c[1]) > maxFieldLen {
			return nil, detailed(ErrTokenTooLarge, "a claim is longer than the gateway keeps")
		}
	}
	return encodeEntry(p, kept), nil
}

// cacheResult caches entry and returns the principal decoded from it (so every
// principal, fresh or cached, is built the same way).
func (g *Gateway) cacheResult(t *Tenant, km *KeyManager, p *Principal, entry []byte) *Principal {
	g.cache.set(&p.key, entry)
	key := p.key
	*p = Principal{}
	p.key = key
	_ = decodeEntry(entry, p)
	p.fill(km, t.Name)
	return p
}
