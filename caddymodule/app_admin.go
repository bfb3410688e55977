package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// kmView is a Key Manager as the admin API shows it (secrets masked).
type kmView struct {
	Tenant     string                 `json:"tenant"`
	Name       string                 `json:"name"`
	Source     string                 `json:"source"` // "config" or "api"
	ETag       string                 `json:"etag"`
	Created    time.Time              `json:"created,omitzero"`
	Updated    time.Time              `json:"updated,omitzero"`
	Definition keymanagers.Definition `json:"definition"`
}

func configView(km *keymanagers.KeyManager) kmView {
	h := sha256.Sum256([]byte(km.FingerprintValue()))
	return kmView{Tenant: km.Tenant(), Name: km.Name(), Source: "config", ETag: `"` + hex.EncodeToString(h[:12]) + `"`,
		Definition: km.Definition().Redacted()}
}

func apiView(k *apiKM) kmView {
	return kmView{Tenant: k.tenant, Name: k.km.Name(), Source: "api", ETag: k.etag, Created: k.rec.Created,
		Updated: k.rec.Updated, Definition: k.rec.Definition.Redacted()}
}

// listAll lists Key Managers (of one tenant when tenant is set; "global"
// lists the Global ones), config ones first, in election order.
func (a *App) listAll(tenant string) []kmView {
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	out := []kmView{}
	if tenant == "" || tenant == keymanagers.GlobalTenant {
		for _, km := range a.cfgGlobals {
			out = append(out, configView(km))
		}
	}
	names := make([]string, 0, len(a.cfgTenants))
	for n := range a.cfgTenants {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if tenant == "" || tenant == n {
			for _, km := range a.cfgTenants[n] {
				out = append(out, configView(km))
			}
		}
	}
	for _, k := range a.sortedAPIKMsLocked() {
		if tenant == "" || tenant == k.tenant {
			out = append(out, apiView(k))
		}
	}
	return out
}

func (a *App) tenantExists(tenant string) bool {
	if tenant == keymanagers.GlobalTenant {
		return true
	}
	return a.gateway.Registry().Tenant(tenant) != nil
}

func (a *App) configKM(tenant, name string) *keymanagers.KeyManager {
	list := a.cfgTenants[tenant]
	if tenant == keymanagers.GlobalTenant {
		list = a.cfgGlobals
	}
	for _, km := range list {
		if km.Name() == name {
			return km
		}
	}
	return nil
}

// find returns a running Key Manager (config or API).
func (a *App) find(tenant, name string) *keymanagers.KeyManager {
	if km := a.configKM(tenant, name); km != nil {
		return km
	}
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	if k := a.dyn.kms[tenant][name]; k != nil {
		return k.km
	}
	return nil
}

func (a *App) getOne(tenant, name string) (kmView, error) {
	if km := a.configKM(tenant, name); km != nil {
		return configView(km), nil
	}
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	if k := a.dyn.kms[tenant][name]; k != nil {
		return apiView(k), nil
	}
	return kmView{}, apiErr(http.StatusNotFound, "key manager %q of tenant %q not found", name, tenant)
}

func (a *App) cacheStatus() map[string]any {
	c := a.gateway.Cache()
	return map[string]any{"entries": c.Len(), "bytes": c.Capacity(), "max_ttl": c.MaxTTL().String()}
}

// writeLocked runs fn under the in-process lock and the storage lock,
// after re-reading storage so that changes by other instances are seen.
func (a *App) writeLocked(ctx context.Context, fn func() error) error {
	if a.storage == nil {
		return apiErr(http.StatusServiceUnavailable, "no storage is configured")
	}
	// Writers of this instance queue on writeMu (file storage polls its
	// lock once a second, so they must not all poll it), then take the
	// storage lock, and only then the state lock: waiting for another
	// instance's write must not hold up this instance's sync and reads.
	a.dyn.writeMu.Lock()
	defer a.dyn.writeMu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.storage.Lock(lctx, storageLock); err != nil {
		return apiErr(http.StatusServiceUnavailable, "could not take the storage lock: %v", err)
	}
	defer func() { _ = a.storage.Unlock(context.Background(), storageLock) }()
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	if err := a.syncLocked(ctx); err != nil {
		a.logger.Warn("re-reading storage before a change", zap.Error(err))
	}
	return fn()
}

func (a *App) readOnly(tenant, name string) error {
	if a.configKM(tenant, name) != nil {
		return apiErr(http.StatusConflict, "key manager %q of tenant %q is defined in the Caddy configuration and is read-only here; change the config instead", name, tenant)
	}
	return nil
}

// putLocked validates def as config definitions are, checks it fits the
// registry, stores it and installs it.
func (a *App) putLocked(ctx context.Context, tenant string, def keymanagers.Definition, created time.Time) (kmView, error) {
	km, poolKey, err := a.buildAPIKM(tenant, def)
	if err != nil {
		return kmView{}, err
	}
	now := time.Now().UTC()
	cand := &apiKM{tenant: tenant, km: km, poolKey: poolKey, rec: storedRecord{Definition: def, Created: created, Updated: now}}
	if created.IsZero() {
		cand.rec.Created = now
	}
	reg, err := a.composeLocked(cand)
	if err != nil {
		_, _ = pool.Delete(poolKey)
		return kmView{}, apiErr(http.StatusConflict, "%v", err)
	}
	b, err := json.MarshalIndent(cand.rec, "", "  ")
	if err != nil {
		_, _ = pool.Delete(poolKey)
		return kmView{}, apiErr(http.StatusInternalServerError, "encoding: %v", err)
	}
	if err := a.storage.Store(ctx, storageKey(tenant, def.Name), b); err != nil {
		_, _ = pool.Delete(poolKey)
		return kmView{}, apiErr(http.StatusInternalServerError, "storing: %v", err)
	}
	cand.etag = etagOf(b)
	if a.dyn.kms[tenant] == nil {
		a.dyn.kms[tenant] = map[string]*apiKM{}
	}
	old := a.dyn.kms[tenant][def.Name]
	a.dyn.kms[tenant][def.Name] = cand
	if a.started {
		km.Start()
	}
	a.gateway.Swap(reg)
	if old != nil {
		_, _ = pool.Delete(old.poolKey) // after the swap: nothing uses it any more
	}
	return apiView(cand), nil
}

func (a *App) createKM(ctx context.Context, tenant string, def keymanagers.Definition) (kmView, error) {
	var v kmView
	err := a.writeLocked(ctx, func() error {
		if err := a.readOnly(tenant, def.Name); err != nil {
			return err
		}
		if a.dyn.kms[tenant][def.Name] != nil {
			return apiErr(http.StatusConflict, "key manager %q of tenant %q already exists; PUT /keymanagers/%s/%s replaces it", def.Name, tenant, tenant, def.Name)
		}
		var err error
		v, err = a.putLocked(ctx, tenant, def, time.Time{})
		return err
	})
	return v, err
}

func (a *App) replaceKM(ctx context.Context, tenant string, def keymanagers.Definition, ifMatch string) (kmView, error) {
	var v kmView
	err := a.writeLocked(ctx, func() error {
		if err := a.readOnly(tenant, def.Name); err != nil {
			return err
		}
		cur := a.dyn.kms[tenant][def.Name]
		if cur == nil {
			return apiErr(http.StatusNotFound, "key manager %q of tenant %q not found; POST /keymanagers/%s/ creates it", def.Name, tenant, tenant)
		}
		if ifMatch != "" && !etagMatches(ifMatch, cur.etag) {
			return apiErr(http.StatusPreconditionFailed, "If-Match %s does not match the current ETag %s", ifMatch, cur.etag)
		}
		def = def.KeepMaskedSecrets(cur.rec.Definition)
		var err error
		v, err = a.putLocked(ctx, tenant, def, cur.rec.Created)
		return err
	})
	return v, err
}

func (a *App) deleteKM(ctx context.Context, tenant, name, ifMatch string) error {
	return a.writeLocked(ctx, func() error {
		if err := a.readOnly(tenant, name); err != nil {
			return err
		}
		cur := a.dyn.kms[tenant][name]
		if cur == nil {
			return apiErr(http.StatusNotFound, "key manager %q of tenant %q not found", name, tenant)
		}
		if ifMatch != "" && !etagMatches(ifMatch, cur.etag) {
			return apiErr(http.StatusPreconditionFailed, "If-Match %s does not match the current ETag %s", ifMatch, cur.etag)
		}
		for t, list := range a.allApplicationsLocked(nil) {
			for _, ap := range list {
				if ap.KeyManager == name && (t == tenant || tenant == keymanagers.GlobalTenant) {
					return apiErr(http.StatusConflict, "application %q of tenant %q uses key manager %q; delete or change it first", ap.ID, t, name)
				}
			}
		}
		// Build the registry without it first: commit only if that works.
		delete(a.dyn.kms[tenant], name)
		reg, err := a.composeLocked(nil)
		if err != nil {
			a.dyn.kms[tenant][name] = cur
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		if err := a.storage.Delete(ctx, storageKey(tenant, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.dyn.kms[tenant][name] = cur
			return apiErr(http.StatusInternalServerError, "deleting from storage: %v", err)
		}
		if len(a.dyn.kms[tenant]) == 0 {
			delete(a.dyn.kms, tenant)
		}
		a.gateway.Swap(reg)
		_, _ = pool.Delete(cur.poolKey)
		return nil
	})
}

func etagMatches(ifMatch, etag string) bool {
	for _, v := range strings.Split(ifMatch, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || v == etag || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

// revoke records a revocation in storage and applies it at once.
func (a *App) revoke(ctx context.Context, req revokeRequest) (keymanagers.Revocation, error) {
	var rv keymanagers.Revocation
	switch {
	case req.Token != "" && req.JTI == "":
		rv.TokenHash = keymanagers.TokenHash(req.Token)
		if exp, ok := unverifiedExp(req.Token); ok && req.ExpiresAt.IsZero() {
			// Until the token could no longer be accepted: exp plus the
			// largest clock_skew allowed.
			rv.ExpiresAt = exp.Add(10*time.Minute + time.Minute)
		}
	case req.Token == "" && req.JTI != "" && req.Issuer != "":
		rv.Issuer, rv.JTI = req.Issuer, req.JTI
	default:
		return rv, apiErr(http.StatusBadRequest, `give either "token", or "issuer" and "jti"`)
	}
	if !req.ExpiresAt.IsZero() {
		rv.ExpiresAt = req.ExpiresAt
	}
	if rv.ExpiresAt.IsZero() {
		rv.ExpiresAt = time.Now().Add(24 * time.Hour)
	}
	if !rv.ExpiresAt.After(time.Now()) {
		return rv, apiErr(http.StatusBadRequest, "expires_at is in the past")
	}
	rv.ExpiresAt = rv.ExpiresAt.UTC().Truncate(time.Second)
	err := a.writeLocked(ctx, func() error {
		b, _ := json.Marshal(rv)
		key := revocationID(rv)
		if err := a.storage.Store(ctx, key, b); err != nil {
			return apiErr(http.StatusInternalServerError, "storing: %v", err)
		}
		a.dyn.revocations[key] = rv
		a.gateway.SetRevocations(keymanagers.NewRevocations(a.revocationListLocked(), time.Now()))
		return nil
	})
	return rv, err
}

// unverifiedExp reads exp from a JWT without verifying it: only to bound
// how long a revocation is kept.
func unverifiedExp(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp <= 0 || c.Exp > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(c.Exp), 0), true
}
