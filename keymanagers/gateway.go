package keymanagers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
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

	projected   atomic.Pointer[projection]
	revocations atomic.Pointer[Revocations]
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

// b64tokenChar marks the characters of RFC 6750's b64token before any
// trailing "=": ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
var b64tokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/" {
		t[c] = true
	}
	return t
}()

// ValidTokenSyntax checks RFC 6750's b64token syntax: 1*( ALPHA / DIGIT /
// "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func ValidTokenSyntax(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

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
					now < p.ExpiresAt+int64(time.Duration(km.def.StaleIfError)/time.Second):
					stale = p // usable only if the Key Manager fails now
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

func (g *Gateway) validate(ctx context.Context, t *Tenant, route *Route, token string, p *Principal, proj *projection) (*Principal, error) {
	jws, err := parseCompact(token)
	if errors.Is(err, ErrOpaqueToken) {
		km, eerr := g.electOpaque(ctx, t, route, token, nil)
		if eerr != nil {
			return nil, eerr
		}
		return g.introspectAndCache(ctx, t, km, token, p, proj, "")
	}
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
	if errors.Is(err, ErrUnknownIssuer) {
		// A Key Manager may claim JWTs of other issuers through jwt token
		// handling rules (it then introspects them).
		if km2, eerr := g.electOpaque(ctx, t, route, token, claims); eerr == nil {
			return g.introspectAndCache(ctx, t, km2, token, p, proj, iss)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !route.accepts(km.def.Name) {
		return nil, detailed(ErrNotAccepted, "key manager "+km.def.Name+" not accepted by route")
	}
	if km.def.TokenValidation == ValidationIntrospection || (!km.hasKeySource() && km.hmacSecret == nil && km.canIntrospect()) {
		// Revocation-sensitive (or no keys to verify with): ask the Key
		// Manager even about JWTs.
		return g.introspectAndCache(ctx, t, km, token, p, proj, "")
	}
	if hc, ok := km.connector.(HeaderChecker); ok {
		h := TokenHeader{Alg: jws.header.Alg, Kid: jws.header.Kid, Typ: jws.header.Typ, HasNonce: len(jws.header.Nonce) > 0}
		if err := hc.CheckHeader(h, claims); err != nil {
			return nil, err
		}
	}
	kid, err := km.verify(ctx, jws)
	if err != nil {
		return nil, err
	}
	p.keyID = kid
	now := g.now()
	exp, err := km.checkClaims(claims, now)
	if err != nil {
		return nil, err
	}
	if km.def.RequireATJWT && !isATJWT(jws.header.Typ) {
		return nil, ErrWrongType
	}
	if cc, ok := km.connector.(ClaimsChecker); ok {
		if err := cc.CheckClaims(claims); err != nil {
			return nil, err
		}
	}
	pf := PrincipalFields{Subject: km.subject(claims), ClientID: km.clientID(claims), Scopes: km.scopes(claims)}
	if pm, ok := km.connector.(PrincipalMapper); ok {
		pm.MapPrincipal(claims, &pf)
	}
	p.Subject = pf.Subject
	p.ClientID = pf.ClientID
	p.JTI, _ = claimString(claims["jti"])
	p.Scopes = strings.Join(pf.Scopes, " ")
	p.hardExpiry = exp
	soft := exp
	if lim := now.Add(g.cache.maxTTL).Unix(); lim < soft {
		soft = lim
	}
	entry, err := g.finish(km, iss, p, proj, claims, soft)
	if err != nil {
		return nil, err
	}
	return g.store(t, km, p, entry), nil
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

// store caches entry and returns the principal decoded from it (so every
// principal, fresh or cached, is built the same way).
func (g *Gateway) store(t *Tenant, km *KeyManager, p *Principal, entry []byte) *Principal {
	g.cache.set(&p.key, entry)
	key := p.key
	*p = Principal{}
	p.key = key
	_ = decodeEntry(entry, p)
	p.fill(km, t.Name)
	return p
}

// electOpaque picks the one Key Manager that introspects a token: the
// route's Key Managers in the route's order (else the tenant's, own then
// Global, in definition order), the first that can introspect and whose
// token handling rules claim the token. claims is nil for opaque tokens;
// for JWTs of an unknown issuer only an explicit jwt rule elects.
func (g *Gateway) electOpaque(ctx context.Context, t *Tenant, route *Route, token string, claims map[string]json.RawMessage) (*KeyManager, error) {
	try := func(km *KeyManager) bool {
		if km == nil || !km.canIntrospect() {
			return false
		}
		if claims != nil {
			return km.intro.rules.handlesJWT(claims)
		}
		return km.intro.rules.handlesOpaque(token)
	}
	if route != nil && len(route.KeyManagers) > 0 {
		for _, n := range route.KeyManagers {
			if km := t.byName[n]; km != nil && km.def.IsEnabled() && try(km) {
				return km, nil
			}
		}
	} else {
		for _, km := range t.kms {
			if km.def.IsEnabled() && try(km) {
				return km, nil
			}
		}
	}
	if claims != nil {
		return nil, ErrUnknownIssuer
	}
	// Nobody introspects it: let a vendor explain why, if one can.
	for _, km := range t.kms {
		if route.accepts(km.def.Name) && km.def.IsEnabled() {
			if r, ok := km.connector.(OpaqueRefuser); ok {
				return nil, r.RefuseOpaque()
			}
		}
	}
	return nil, ErrOpaqueToken
}

// introspectAndCache introspects token at km once for all concurrent
// callers (singleflight per Key Manager and token hash) and caches the
// answer: positive until min(exp, introspection_cache_ttl, max_ttl),
// negative for negative_cache_ttl.
func (g *Gateway) introspectAndCache(ctx context.Context, t *Tenant, km *KeyManager, token string, p *Principal, proj *projection, tokenIss string) (*Principal, error) {
	type flight struct {
		entry []byte
		err   error
	}
	key := "i" + string(p.key[:])
	ch := km.sf.DoChan(key, func() (any, error) {
		// Detached from any one request: a caller that gives up does not
		// fail the others.
		// A caller that missed the cache just before an earlier flight
		// finished would otherwise ask again.
		if entry := g.cache.get(&p.key); entry != nil {
			var c Principal
			if decodeEntry(entry, &c) == nil && c.claimSet == proj.id && c.fpHash == km.fpHash && g.now().Unix() < c.ExpiresAt {
				if c.negative {
					return flight{err: c.negativeError()}, nil
				}
				return flight{entry: entry}, nil
			}
		}
		ictx, cancel := context.WithTimeout(km.ctx, time.Duration(km.def.Timeout)+time.Second)
		defer cancel()
		res, err := km.introspect(ictx, token)
		if err != nil {
			return flight{err: err}, nil
		}
		now := g.now()
		q := &Principal{key: p.key, introspected: true}
		maxLife := now.Add(g.cache.maxTTL).Unix()
		if verr := km.principalFromIntrospection(res, now, tokenIss); verr != nil {
			if reason, ok := reasonIndex(verr); ok {
				q.negative = true
				q.reason = reason
				soft := now.Add(time.Duration(km.def.NegativeCacheTTL)).Unix()
				soft = min(soft, maxLife)
				q.hardExpiry = soft
				if entry, ferr := g.finish(km, km.Issuer(), q, proj, nil, soft); ferr == nil && km.def.NegativeCacheTTL > 0 {
					g.cache.set(&q.key, entry)
				}
			}
			return flight{err: verr}, nil
		}
		q.Subject = res.subject
		q.ClientID = res.clientID
		q.JTI, _ = claimString(res.claims["jti"])
		q.Scopes = strings.Join(res.scopes, " ")
		soft := min(now.Add(time.Duration(km.def.IntrospectionCacheTTL)).Unix(), maxLife)
		// Without exp, a stale entry may live stale_if_error past its TTL.
		q.hardExpiry = soft + int64(time.Duration(km.def.StaleIfError)/time.Second)
		if res.hasExp {
			q.hardExpiry = res.exp
			soft = min(soft, res.exp)
		}
		iss := res.iss
		if iss == "" {
			iss = tokenIss
		}
		if iss == "" {
			iss = km.Issuer()
		}
		entry, ferr := g.finish(km, iss, q, proj, res.claims, soft)
		if ferr != nil {
			return flight{err: ferr}, nil
		}
		g.cache.set(&q.key, entry)
		return flight{entry: entry}, nil
	})
	select {
	case r := <-ch:
		f := r.Val.(flight)
		if f.err != nil {
			return nil, f.err
		}
		key := p.key
		*p = Principal{}
		p.key = key
		_ = decodeEntry(f.entry, p)
		p.fill(km, t.Name)
		return p, nil
	case <-ctx.Done():
		return nil, detailed(ErrIntrospection, "request ended while waiting for introspection")
	}
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

// verify checks the JWS signature with this Key Manager's keys only and
// returns the verifying key's id (0 for HMAC).
func (km *KeyManager) verify(ctx context.Context, jws *parsedJWT) (uint32, error) {
	alg := jws.header.Alg
	if !km.allowedAlgs[alg] {
		return 0, detailed(ErrAlgorithm, "alg "+safeAlg(alg)+" not allowed")
	}
	if strings.HasPrefix(alg, "HS") {
		if km.hmacSecret == nil || !verifyHMAC(alg, km.hmacSecret, jws.signingInput, jws.sig) {
			return 0, ErrBadSignature
		}
		return 0, nil
	}
	ks := km.keys.Load()
	if ks == nil && !km.hasKeySource() {
		return 0, ErrUnknownKey // no asymmetric key source at all (shared secret only)
	}
	if ks == nil {
		// First fetch not done (or failed): try now, within the floor.
		km.refreshKeysForToken(ctx)
		if ks = km.keys.Load(); ks == nil {
			return 0, ErrNoKeys
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
		return 0, ErrUnknownKey
	}
	if !verifySignature(alg, key.pub, jws.signingInput, jws.sig) {
		return 0, ErrBadSignature
	}
	return key.id, nil
}

// hasKeySource reports whether the Key Manager has (or can discover) a key
// set or pinned key.
func (km *KeyManager) hasKeySource() bool {
	return km.def.JWKSURL != "" || km.def.CertificatePEM != "" || km.def.WellKnownURL != ""
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
			return cleanScopes(l)
		}
	}
	return nil
}

// cleanScopes drops empty elements and elements with white space (an
// array element "a b" must not grant b).
func cleanScopes(l []string) []string {
	out := l[:0]
	for _, s := range l {
		if s != "" && !strings.ContainsAny(s, " \t\n\r\f\v") {
			out = append(out, s)
		}
	}
	return out
}
