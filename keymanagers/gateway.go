package keymanagers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
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

	projected atomic.Pointer[projection]
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
	g := &Gateway{cache: cache, logger: logger, now: now}
	g.reg.Store(reg)
	g.SetProjectedClaims(nil)
	return g
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

// Route is what one protected route accepts.
type Route struct {
	// KeyManagers limits the accepted Key Managers by name; empty accepts
	// every Key Manager the tenant can see.
	KeyManagers []string
}

func (r *Route) accepts(name string) bool {
	if r == nil || len(r.KeyManagers) == 0 {
		return true
	}
	for _, n := range r.KeyManagers {
		if n == name {
			return true
		}
	}
	return false
}

// Authenticate validates token for tenant on route. It returns the
// principal, or an error that Classify maps to the edge response. A cache
// hit does no signature work and no I/O.
func (g *Gateway) Authenticate(ctx context.Context, tenant string, route *Route, token string) (*Principal, error) {
	reg := g.reg.Load()
	t := reg.tenants[tenant]
	if t == nil {
		return nil, ErrUnknownTenant
	}
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
	if entry := g.cache.get(&p.key); entry != nil {
		if decodeEntry(entry, p) == nil && p.claimSet == proj.id && now < p.ExpiresAt {
			km := t.byName[p.KeyManager]
			if km != nil && km.fingerprint == p.fingerprint && km.def.IsEnabled() && route.accepts(km.def.Name) {
				p.Tenant = tenant
				return p, nil
			}
			// Same token, other tenant or changed Key Manager: validate
			// afresh against this tenant.
		}
	}
	return g.validate(ctx, t, route, token, p, proj)
}

func (g *Gateway) validate(ctx context.Context, t *Tenant, route *Route, token string, p *Principal, proj *projection) (*Principal, error) {
	jws, err := parseCompact(token)
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(jws.payload)
	if err != nil {
		return nil, err
	}
	iss, err := issuerOf(claims)
	if err != nil {
		return nil, err
	}
	km, err := g.resolve(ctx, t, iss)
	if err != nil {
		return nil, err
	}
	if !route.accepts(km.def.Name) {
		return nil, detailed(ErrNotAccepted, "key manager "+km.def.Name+" not accepted by route")
	}
	if km.def.TokenValidation == ValidationIntrospection {
		return nil, detailed(ErrKeyManagerFailed, "key manager "+km.def.Name+" requires introspection, which this build does not support yet")
	}
	if err := km.verify(ctx, jws); err != nil {
		return nil, err
	}
	now := g.now()
	exp, err := km.checkClaims(claims, now)
	if err != nil {
		return nil, err
	}
	if jws.header.Typ != "" || km.def.RequireATJWT {
		if km.def.RequireATJWT && !isATJWT(jws.header.Typ) {
			return nil, ErrWrongType
		}
	}
	p.KeyManager = km.def.Name
	p.KeyManagerTenant = km.tenant
	p.Issuer = iss
	p.fingerprint = km.fingerprint
	p.claimSet = proj.id
	p.Subject = km.subject(claims)
	p.ClientID = km.clientID(claims)
	p.Scopes = strings.Join(km.scopes(claims), " ")
	p.ExpiresAt = exp
	if lim := now.Add(g.cache.maxTTL).Unix(); lim < p.ExpiresAt {
		p.ExpiresAt = lim
	}
	var kept [][2]string
	for _, n := range proj.names {
		if raw, ok := claims[n]; ok {
			kept = append(kept, [2]string{n, string(raw)})
		}
	}
	// The cache entry stores each field with a 16-bit length: refuse rather
	// than truncate (a cut scope list could grant a shorter scope).
	for _, f := range []string{p.Issuer, p.Subject, p.ClientID, p.Scopes} {
		if len(f) > maxFieldLen {
			return nil, detailed(ErrTokenTooLarge, "a claim is longer than the gateway keeps")
		}
	}
	for _, c := range kept {
		if len(c[1]) > maxFieldLen {
			return nil, detailed(ErrTokenTooLarge, "a claim is longer than the gateway keeps")
		}
	}
	entry := encodeEntry(p, kept)
	g.cache.set(&p.key, entry)
	key := p.key
	*p = Principal{}
	p.key = key
	_ = decodeEntry(entry, p)
	p.Tenant = t.Name
	return p, nil
}

// resolve picks the Key Manager for an issuer, discovering pending ones.
func (g *Gateway) resolve(ctx context.Context, t *Tenant, iss string) (*KeyManager, error) {
	km, pending, ambiguous := t.byIssuerLookup(iss)
	if ambiguous {
		g.logger.Error("two key managers of one tenant have the same discovered issuer; refusing their tokens",
			zap.String("tenant", t.Name), zap.String("issuer", iss))
		return nil, detailed(ErrKeyManagerFailed, "ambiguous issuer")
	}
	if km != nil {
		return km, nil
	}
	if len(pending) == 0 {
		return nil, ErrUnknownIssuer
	}
	// Some Key Managers' issuers are not known yet: try discovery (bounded
	// by each one's timeout and retry floor), then look again.
	var failed bool
	for _, d := range pending {
		dctx, cancel := context.WithTimeout(ctx, time.Duration(d.def.Timeout))
		if d.ensureDiscovered(dctx, false) != nil {
			failed = true
		}
		cancel()
	}
	km, _, ambiguous = t.byIssuerLookup(iss)
	switch {
	case ambiguous:
		return nil, detailed(ErrKeyManagerFailed, "ambiguous issuer")
	case km != nil:
		return km, nil
	case failed:
		return nil, detailed(ErrUnavailable, "issuer unknown while discovery of some key managers fails")
	}
	return nil, ErrUnknownIssuer
}

func isATJWT(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// verify checks the JWS signature with this Key Manager's keys only.
func (km *KeyManager) verify(ctx context.Context, jws *parsedJWT) error {
	alg := jws.header.Alg
	if !km.allowedAlgs[alg] {
		return detailed(ErrAlgorithm, "alg "+safeAlg(alg)+" not allowed")
	}
	if strings.HasPrefix(alg, "HS") {
		if km.hmacSecret == nil || !verifyHMAC(alg, km.hmacSecret, jws.signingInput, jws.sig) {
			return ErrBadSignature
		}
		return nil
	}
	ks := km.keys.Load()
	if ks == nil && km.def.JWKSURL == "" && km.def.WellKnownURL == "" {
		return ErrUnknownKey // no asymmetric key source at all (shared secret only)
	}
	if ks == nil {
		// First fetch not done (or failed): try now, within the floor.
		km.refreshKeysForToken(ctx)
		if ks = km.keys.Load(); ks == nil {
			return ErrNoKeys
		}
	}
	key := pickKey(ks, jws.header.Kid, alg)
	if key == nil && !ks.pinned {
		if km.refreshKeysForToken(ctx) {
			ks = km.keys.Load()
			key = pickKey(ks, jws.header.Kid, alg)
		}
	}
	if key == nil {
		return ErrUnknownKey
	}
	if !verifySignature(alg, key.pub, jws.signingInput, jws.sig) {
		return ErrBadSignature
	}
	return nil
}

// pickKey finds the key for kid usable with alg. Without a kid, a set with
// exactly one usable key serves; pinned keys serve whatever the kid.
func pickKey(ks *keySet, kid, alg string) *verificationKey {
	var cands []*verificationKey
	if ks.pinned || kid == "" {
		cands = ks.all
	} else {
		cands = ks.byKid[kid]
	}
	var found *verificationKey
	for _, k := range cands {
		if k.alg != "" && k.alg != alg {
			continue
		}
		if !keyMatchesAlg(k.pub, alg) {
			continue
		}
		if kid == "" && !ks.pinned && found != nil {
			return nil // ambiguous without a kid
		}
		if found == nil {
			found = k
		}
	}
	return found
}

func safeAlg(a string) string {
	if len(a) > 16 {
		return a[:16] + "..."
	}
	return a
}

// checkClaims validates exp, nbf, iat and aud, and returns exp.
func (km *KeyManager) checkClaims(claims map[string]json.RawMessage, now time.Time) (int64, error) {
	skew := int64(time.Duration(km.def.ClockSkew) / time.Second)
	n := now.Unix()
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return 0, ErrNoExpiry
	}
	if n > exp+skew {
		return 0, ErrExpired
	}
	if raw, present := claims["nbf"]; present {
		nbf, ok := numericDate(raw)
		if !ok {
			return 0, detailed(ErrMalformedToken, "nbf is not a NumericDate")
		}
		if nbf > n+skew {
			return 0, ErrNotYetValid
		}
	}
	if raw, present := claims["iat"]; present {
		iat, ok := numericDate(raw)
		if !ok {
			return 0, detailed(ErrMalformedToken, "iat is not a NumericDate")
		}
		if iat > n+skew {
			return 0, ErrIssuedInFuture
		}
	}
	if km.audiences != nil {
		auds, ok := stringOrList(claims["aud"], false)
		if !ok {
			return 0, detailed(ErrMalformedToken, "aud is neither a string nor a list of strings")
		}
		match := false
		for _, a := range auds {
			if _, ok := km.audiences[a]; ok {
				match = true
				break
			}
		}
		if !match {
			return 0, ErrWrongAudience
		}
	}
	return exp + skew, nil
}

func (km *KeyManager) claimNames() ClaimMapping {
	var m ClaimMapping
	if km.def.Claims != nil {
		m = *km.def.Claims
	}
	return m
}

func (km *KeyManager) subject(claims map[string]json.RawMessage) string {
	name := km.claimNames().Subject
	if name == "" {
		name = "sub"
	}
	s, _ := claimString(claims[name])
	return s
}

// clientID reads the consumer key: the configured claim, then azp, then
// client_id.
func (km *KeyManager) clientID(claims map[string]json.RawMessage) string {
	for _, name := range []string{km.claimNames().ConsumerKey, "azp", "client_id"} {
		if name == "" {
			continue
		}
		if s, ok := claimString(claims[name]); ok && s != "" {
			return s
		}
	}
	return ""
}

// scopes reads the configured scope claim, else scope, else scp; each may
// be a space-separated string or an array.
func (km *KeyManager) scopes(claims map[string]json.RawMessage) []string {
	names := []string{"scope", "scp"}
	if c := km.claimNames().Scopes; c != "" {
		names = []string{c}
	}
	for _, n := range names {
		if raw, ok := claims[n]; ok {
			l, ok := stringOrList(raw, true)
			if !ok {
				return nil
			}
			out := l[:0]
			for _, s := range l {
				if s != "" && !strings.ContainsAny(s, " \t\n") {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return nil
}
