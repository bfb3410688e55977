package keymanagers

import (
	"context"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
)

// Start begins background discovery and JWKS refresh. It returns at once.
func (km *KeyManager) Start() {
	km.startOnce.Do(func() {
		if !km.needsNetwork() {
			close(km.done)
			return
		}
		go km.run()
	})
}

// Close stops the background work and idle connections.
func (km *KeyManager) Close() {
	km.startOnce.Do(func() { close(km.done) }) // never started: nothing to wait for
	km.cancel()
	<-km.done
	km.client.CloseIdleConnections()
}

func (km *KeyManager) needsNetwork() bool {
	return km.def.WellKnownURL != "" || km.def.JWKSURL != ""
}

func (km *KeyManager) run() {
	defer close(km.done)
	defer func() {
		if r := recover(); r != nil {
			km.logger.Error("key manager refresh loop panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	backoff := time.Second
	for {
		err := km.sync(km.ctx)
		wait := time.Duration(km.def.JWKSRefreshInterval)
		if err != nil {
			if backoff < wait {
				wait = backoff
			}
			backoff *= 2
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-km.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sync runs discovery when still needed, then refetches the key set.
func (km *KeyManager) sync(ctx context.Context) error {
	derr := km.ensureDiscovered(ctx, true)
	if km.jwksURL.Load() == nil {
		return derr // (a configured jwks_url is fetched even while discovery fails)
	}
	_, err, _ := km.sf.Do("jwks", func() (any, error) { return nil, km.fetchKeys(ctx) })
	if err == nil {
		err = derr
	}
	return err
}

func (km *KeyManager) fail(what string, err error) error {
	km.lastError.Store(&statusError{at: km.now(), msg: what + ": " + err.Error()})
	km.logger.Warn("key manager "+what+" failed", zap.Error(err))
	return detailed(ErrUnavailable, what+" failed")
}

// fetchKeys fetches the JWKS now. Callers go through singleflight.
func (km *KeyManager) fetchKeys(ctx context.Context) error {
	up := km.jwksURL.Load()
	if up == nil {
		return detailed(ErrNoKeys, "no jwks_url known yet")
	}
	km.fetches.Add(1)
	body, err := fetchDocument(ctx, km.client, *up)
	if err == nil {
		var ks *keySet
		if ks, err = parseJWKS(body); err == nil {
			ks.fetched = km.now()
			old := km.keys.Swap(ks)
			km.lastError.Store(nil)
			km.lastFetchFail.Store(0)
			if c := km.logger.Check(zap.DebugLevel, "jwks fetched"); c != nil {
				c.Write(zap.Strings("kids", ks.kids()), zap.Int("previous_keys", len(old.kids())))
			}
			return nil
		}
	}
	km.fetchFailures.Add(1)
	km.lastFetchFail.Store(km.now().UnixNano())
	return km.fail("jwks fetch", err)
}

// refreshKeysForToken refetches the key set because a token named a key we
// do not have (or no key set is loaded yet). It joins a fetch already in
// flight; a new fetch starts at most once per jwks_min_refresh_interval, so
// random kids from an attacker cause at most one fetch per interval. It
// reports whether keys may have changed.
func (km *KeyManager) refreshKeysForToken(ctx context.Context) bool {
	cur := km.keys.Load()
	if cur != nil && cur.pinned {
		return false
	}
	floor := int64(time.Duration(km.def.JWKSMinRefreshInterval))
	if cur != nil && km.now().UnixNano()-km.lastTokenRefresh.Load() < floor {
		return false // cheap pre-check, without the singleflight lock
	}
	if err := km.ensureDiscovered(ctx, false); err != nil && km.jwksURL.Load() == nil {
		return false
	}
	if km.jwksURL.Load() == nil {
		return false
	}
	ch := km.sf.DoChan("jwks", func() (any, error) {
		now := km.now().UnixNano()
		if km.keys.Load() == nil {
			// No key set yet: retry a failed first fetch at most once per
			// floor, and do not spend the unknown-kid budget on it.
			if f := km.lastFetchFail.Load(); f != 0 && now-f < floor {
				return nil, detailed(ErrNoKeys, "jwks fetch failed recently")
			}
		} else {
			if now-km.lastTokenRefresh.Load() < floor {
				return nil, nil
			}
			km.lastTokenRefresh.Store(now)
		}
		fctx, cancel := context.WithTimeout(km.ctx, time.Duration(km.def.Timeout))
		defer cancel()
		return nil, km.fetchKeys(fctx)
	})
	select {
	case res := <-ch:
		return res.Err == nil && km.keys.Load() != cur
	case <-ctx.Done():
		return false
	}
}

// RefreshNow refetches discovery (when used) and the key set, ignoring the
// refresh floor. For operators (admin API, tests).
func (km *KeyManager) RefreshNow(ctx context.Context) error {
	if km.def.WellKnownURL != "" {
		if _, err, _ := km.sf.Do("discovery", func() (any, error) { return nil, km.discover(ctx) }); err != nil {
			return err
		}
	}
	if km.jwksURL.Load() == nil {
		return nil
	}
	_, err, _ := km.sf.Do("jwks", func() (any, error) { return nil, km.fetchKeys(ctx) })
	return err
}
