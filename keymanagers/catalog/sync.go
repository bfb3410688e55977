package catalog

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

func zapErr(err error) zap.Field { return zap.Error(err) }

// syncLocked re-reads storage and installs a new snapshot when anything
// changed. c.mu must be held.
func (c *Catalog) syncLocked(ctx context.Context) error {
	if c.cfg.Storage == nil {
		return nil
	}
	s, release, changed, err := c.syncKMsLocked(ctx)
	if err != nil {
		return err // keep the current state; the next sync retries
	}
	// Runtimes of replaced or removed Key Managers are released only once
	// the snapshot that used them is gone.
	defer func() {
		for _, r := range release {
			r()
		}
	}()
	if changed, ok := c.syncRevocationsLocked(ctx); ok {
		if changed {
			c.installRevocations()
		}
		// Stale results (stale_if_error) are served only for tokens the
		// IdP confirmed after this moment.
		c.cfg.Gateway.MarkRevocationsSynced(now())
	}
	if s2, ok := c.syncAppsLocked(ctx, s); ok {
		s, changed = s2, true
	}
	if !changed {
		return nil
	}
	reg, err := c.compose(s)
	if err != nil {
		c.logger.Error("key managers from storage conflict with the configuration; keeping the previous set", zap.Error(err))
		return err
	}
	c.commit(s, reg)
	return nil
}

// syncKMsLocked reads the stored Key Managers into a new state.
func (c *Catalog) syncKMsLocked(ctx context.Context) (s state, release []func(), changed bool, err error) {
	files, err := c.readStored(ctx, storageTenants)
	if err != nil {
		return state{}, nil, false, err
	}
	s = c.current()
	present := map[string]bool{}
	for _, f := range files {
		present[f.tenant+"/"+f.name] = true
		if cur := s.kms[f.tenant][f.name]; cur != nil && cur.sum == f.sum {
			continue
		}
		if c.broken[f.key] == f.sum {
			continue
		}
		var rec kmRecord
		if err := decodeStrict(f.data, &rec); err != nil || rec.Definition.Name != f.name || !keymanagers.ValidName(f.tenant) {
			c.markBroken(f.key, f.sum, "not a valid stored Key Manager", err)
			continue
		}
		rt, err := c.build(f.tenant, rec.Definition)
		if err != nil {
			c.markBroken(f.key, f.sum, "invalid definition", err)
			continue
		}
		cand := &apiKM{tenant: f.tenant, rec: rec, sum: f.sum, rt: rt}
		next := s.withKM(f.tenant, f.name, cand)
		// One that does not fit this instance's configuration (same issuer
		// as a config Key Manager, say) must not block every later rebuild.
		if _, err := c.compose(next); err != nil {
			rt.Release()
			c.markBroken(f.key, f.sum, "conflicts with the configuration", err)
			continue
		}
		if old := s.kms[f.tenant][f.name]; old != nil {
			release = append(release, old.rt.Release)
		}
		s = next
		if c.started {
			rt.KeyManager.Start()
		}
		changed = true
	}
	for tenant, m := range s.kms {
		for name, k := range m {
			if !present[tenant+"/"+name] {
				release = append(release, k.rt.Release)
				s = s.withKM(tenant, name, nil)
				changed = true
			}
		}
	}
	return s, release, changed, nil
}

// syncAppsLocked reads the stored applications into s; it reports a change.
func (c *Catalog) syncAppsLocked(ctx context.Context, s state) (state, bool) {
	files, err := c.readStored(ctx, storageApplications)
	if err != nil {
		c.logger.Warn("reading applications; keeping the current ones", zap.Error(err))
		return s, false
	}
	changed := false
	present := map[string]bool{}
	for _, f := range files {
		present[f.tenant+"/"+f.name] = true
		if cur := s.apps[f.tenant][f.name]; cur != nil && cur.sum == f.sum {
			continue
		}
		if c.broken[f.key] == f.sum {
			continue
		}
		var rec appRecord
		if err := decodeStrict(f.data, &rec); err != nil || rec.Application.ID != f.name || rec.Application.Validate() != nil {
			c.markBroken(f.key, f.sum, "not a valid stored application", err)
			continue
		}
		s = s.withApp(f.tenant, f.name, &apiApp{tenant: f.tenant, app: rec.Application, rec: rec, sum: f.sum})
		changed = true
	}
	for tenant, m := range s.apps {
		for id := range m {
			if !present[tenant+"/"+id] {
				s = s.withApp(tenant, id, nil)
				changed = true
			}
		}
	}
	return s, changed
}

// syncRevocationsLocked re-reads revocations; it reports a change, and
// whether the listing succeeded.
func (c *Catalog) syncRevocationsLocked(ctx context.Context) (changed, ok bool) {
	keys, err := c.list(ctx, storageRevocations, false)
	if err != nil {
		c.logger.Warn("listing revocations; keeping the current ones", zap.Error(err))
		return false, false
	}
	t := now()
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
		b, err := c.cfg.Storage.Load(ctx, k)
		if err != nil {
			continue
		}
		var rv keymanagers.Revocation
		if json.Unmarshal(b, &rv) != nil {
			continue
		}
		if !rv.ExpiresAt.After(t) {
			_ = c.cfg.Storage.Delete(ctx, k) // expired: forget it
			delete(seen, k)
			continue
		}
		if cur, ok := c.revs[k]; ok && cur == rv {
			continue
		}
		c.revs[k] = rv
		changed = true
	}
	for k := range c.revs {
		if !seen[k] {
			delete(c.revs, k)
			changed = true
		}
	}
	return changed, true
}

func (c *Catalog) markBroken(key string, sum [32]byte, what string, err error) {
	c.broken[key] = sum
	fields := []zap.Field{zap.String("storage_key", key), zap.String("reason", what)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	c.logger.Error("ignoring a stored record", fields...)
}

// startSync re-reads storage every sync interval until Close.
func (c *Catalog) startSync() {
	if c.cfg.Storage == nil {
		return
	}
	interval := c.cfg.SyncInterval
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		defer func() {
			if r := recover(); r != nil {
				c.logger.Error("storage sync panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			}
		}()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.mu.Lock()
				sctx, scancel := context.WithTimeout(ctx, interval)
				if err := c.syncLocked(sctx); err != nil && ctx.Err() == nil {
					c.logger.Warn("storage sync failed", zap.Error(err))
				}
				c.mu.Unlock()
				scancel()
			}
		}
	}()
}

func (c *Catalog) stopSync() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}
