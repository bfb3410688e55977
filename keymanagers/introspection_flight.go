package keymanagers

import (
	"context"
	"strings"
	"time"
)

// introspectAndCache introspects token at km once for all concurrent
// callers (singleflight per Key Manager and token hash) and caches the
// answer: positive until min(exp, introspection_cache_ttl, max_ttl),
// negative for negative_cache_ttl (in the cache's separate negative
// store). A token with no positive result of this Key Manager in the cache
// (never seen, or only refused) spends one unit of the Key Manager's
// unknown-token budget per flight, however many callers share it.
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
		known := false // a positive result of this Key Manager, even expired
		if entry := g.cache.get(&p.key); entry != nil {
			var c Principal
			if decodeEntry(entry, &c) == nil && c.fpHash == km.fpHash {
				if c.claimSet == proj.id && g.now().Unix() < c.ExpiresAt {
					if c.negative {
						return flight{err: c.negativeError()}, nil
					}
					return flight{entry: entry}, nil
				}
				known = !c.negative
			}
		}
		ictx, cancel := context.WithTimeout(km.ctx, time.Duration(km.def.Timeout)+time.Second)
		defer cancel()
		asked := g.now() // the answer confirms the token as of (at least) now
		res, err := km.introspect(ictx, token, !known)
		if err != nil {
			return flight{err: err}, nil // budget, busy, breaker, failures: never cached
		}
		now := g.now()
		q := &Principal{key: p.key, introspected: true, confirmedAt: uint32(max(asked.Unix(), 0))}
		maxLife := now.Add(g.cache.maxTTL).Unix()
		if verr := km.principalFromIntrospection(res, now, tokenIss); verr != nil {
			if reason, ok := reasonIndex(verr); ok {
				q.negative = true
				q.reason = reason
				soft := cacheUntil(now, time.Duration(km.def.NegativeCacheTTL))
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
		soft := min(cacheUntil(now, time.Duration(km.def.IntrospectionCacheTTL)), maxLife)
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

// cacheUntil is the whole second at which a result cached for d at now
// dies. It rounds up: the cache keeps whole seconds, and rounding down
// would let a 1s introspection_cache_ttl last anywhere from 0 to 1s (an
// entry made at .999 died a millisecond later). Rounded up, an entry lives
// at least d and less than d+1s.
func cacheUntil(now time.Time, d time.Duration) int64 {
	t := now.Add(d)
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}
