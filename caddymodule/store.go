package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Storage layout (Caddy storage, shared by every instance on it):
//
//	keymanagers/tenants/<tenant>/<name>.json      API-made Key Managers
//	keymanagers/applications/<tenant>/<id>.json   API-made applications
//	keymanagers/revocations/<id>.json             gateway revocations
//	keymanagers/lock                           write lock
const (
	storageTenants      = "keymanagers/tenants"
	storageApplications = "keymanagers/applications"
	storageRevocations  = "keymanagers/revocations"
	storageLock         = "keymanagers/lock"
)

// DefaultSyncInterval is how often storage is re-read.
const DefaultSyncInterval = 10 * time.Second

// storedRecord is one API-made Key Manager as stored.
type storedRecord struct {
	Definition keymanagers.Definition `json:"definition"`
	Created    time.Time              `json:"created"`
	Updated    time.Time              `json:"updated"`
}

// apiKM is a loaded API-made Key Manager.
type apiKM struct {
	tenant  string
	rec     storedRecord
	etag    string
	km      *keymanagers.KeyManager
	poolKey string
}

// apiApp is a loaded API-made application.
type apiApp struct {
	tenant  string
	app     keymanagers.Application
	etag    string
	created time.Time
	updated time.Time
}

// storedApp is one API-made application as stored.
type storedApp struct {
	Application keymanagers.Application `json:"application"`
	Created     time.Time               `json:"created"`
	Updated     time.Time               `json:"updated"`
}

// dynState is the app's run-time state: API-made Key Managers and
// revocations. It is touched only by the admin API and the storage sync,
// under mu; the request path sees it through the Gateway's snapshots.
type dynState struct {
	writeMu     sync.Mutex // serialises this instance's admin writes
	mu          sync.Mutex
	kms         map[string]map[string]*apiKM  // tenant -> name
	apps        map[string]map[string]*apiApp // tenant -> id
	revocations map[string]keymanagers.Revocation
	broken      map[string]string // storage key -> why it was not loaded (logged once)
	cancel      context.CancelFunc
	done        chan struct{}
}

func storageKey(tenant, name string) string {
	return path.Join(storageTenants, tenant, name+".json")
}

func etagOf(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

// initDynamic loads what the storage holds (local I/O only: no IdP is
// contacted) so handlers provisioned after the app can see API-made
// tenants and Key Managers.
func (a *App) initDynamic(ctx caddy.Context) error {
	a.dyn = &dynState{kms: map[string]map[string]*apiKM{}, apps: map[string]map[string]*apiApp{}, revocations: map[string]keymanagers.Revocation{}, broken: map[string]string{}}
	a.storage = ctx.Storage()
	if a.storage == nil {
		return nil
	}
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	return a.syncLocked(ctx)
}

// syncLocked re-reads storage and installs a new registry when anything
// changed. A.dyn.mu must be held.
func (a *App) syncLocked(ctx context.Context) error {
	if a.storage == nil {
		return nil
	}
	changed := false
	var release []string
	files, err := a.readStored(ctx, storageTenants)
	if err != nil {
		return err // keep the current state; the next sync retries
	}
	present := map[string]bool{}
	for _, f := range files {
		k, tenant, name, b, etag := f.key, f.tenant, f.name, f.data, f.etag
		present[tenant+"/"+name] = true
		if cur := a.dyn.kms[tenant][name]; cur != nil && cur.etag == etag {
			continue
		}
		if a.dyn.broken[k] == etag {
			continue
		}
		var rec storedRecord
		if err := caddy.StrictUnmarshalJSON(b, &rec); err != nil || rec.Definition.Name != name || !keymanagers.ValidName(tenant) {
			a.markBroken(k, etag, fmt.Sprintf("not a valid stored Key Manager (%v)", err))
			continue
		}
		km, poolKey, err := a.buildAPIKM(tenant, rec.Definition)
		if err != nil {
			a.markBroken(k, etag, err.Error())
			continue
		}
		cand := &apiKM{tenant: tenant, rec: rec, etag: etag, km: km, poolKey: poolKey}
		// One that does not fit this instance's configuration (same issuer
		// as a config Key Manager, say) must not block every later rebuild.
		if _, err := a.composeLocked(cand); err != nil {
			_, _ = pool.Delete(poolKey)
			a.markBroken(k, etag, err.Error())
			continue
		}
		if a.dyn.kms[tenant] == nil {
			a.dyn.kms[tenant] = map[string]*apiKM{}
		}
		if old := a.dyn.kms[tenant][name]; old != nil {
			release = append(release, old.poolKey)
		}
		a.dyn.kms[tenant][name] = cand
		if a.started {
			km.Start()
		}
		changed = true
	}
	for tenant, m := range a.dyn.kms {
		for name, k := range m {
			if !present[tenant+"/"+name] {
				release = append(release, k.poolKey)
				delete(m, name)
				changed = true
			}
		}
		if len(m) == 0 {
			delete(a.dyn.kms, tenant)
		}
	}
	// Runtimes of replaced or removed Key Managers are released only once
	// the registry that used them is gone.
	defer func() {
		for _, k := range release {
			_, _ = pool.Delete(k)
		}
	}()
	if a.syncRevocationsLocked(ctx) {
		changed = true
	}
	if a.syncApplicationsLocked(ctx) {
		changed = true
	}
	if changed || a.gateway == nil {
		return a.rebuildLocked()
	}
	return nil
}

// storedFile is one record read from <prefix>/<tenant>/<name>.json.
type storedFile struct {
	key, tenant, name, etag string
	data                    []byte
}

// readStored lists and loads every <prefix>/<tenant>/<name>.json. A record
// that vanishes between listing and loading is left out; any other failure
// is an error, and callers then keep their current state.
func (a *App) readStored(ctx context.Context, prefix string) ([]storedFile, error) {
	keys, err := a.listStorage(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	var out []storedFile
	for _, k := range keys {
		tenant, file, ok := strings.Cut(strings.TrimPrefix(k, prefix+"/"), "/")
		if !ok || !strings.HasSuffix(file, ".json") || strings.Contains(file, "/") {
			continue
		}
		b, err := a.storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loading %s: %v", k, err)
		}
		out = append(out, storedFile{key: k, tenant: tenant, name: strings.TrimSuffix(file, ".json"), etag: etagOf(b), data: b})
	}
	return out, nil
}

// listStorage lists prefix. A missing folder is an empty list; any other
// failure (including file storage's "not found" when another instance
// renames a record over an old one in the middle of the listing) is an
// error after a few tries, so a partial listing is never taken for the
// whole.
func (a *App) listStorage(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		keys, err := a.storage.List(ctx, prefix, recursive)
		if err == nil {
			return keys, nil
		}
		if errors.Is(err, fs.ErrNotExist) && !a.storage.Exists(ctx, prefix) {
			return nil, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("listing %s in storage: %v", prefix, lastErr)
}

func (a *App) markBroken(key, etag, why string) {
	a.dyn.broken[key] = etag
	a.logger.Error("ignoring a stored key manager", zap.String("storage_key", key), zap.String("reason", why))
}

// buildAPIKM prepares a stored definition exactly as config ones are.
func (a *App) buildAPIKM(tenant string, def keymanagers.Definition) (*keymanagers.KeyManager, string, error) {
	// No placeholder expansion for API-made definitions: {file.*} and
	// {env.*} would let an admin API caller read the host's files and
	// environment (sent on as credentials to a URL of their choice).
	prepared, conn, err := a.prepare(def, false)
	if err != nil {
		return nil, "", err
	}
	return a.acquire(tenant, prepared, conn)
}

// rebuildLocked merges config and API Key Managers into a new registry
// and swaps it in.
func (a *App) rebuildLocked() error {
	// Revocations never depend on the registry: install them whatever.
	a.gateway.SetRevocations(keymanagers.NewRevocations(a.revocationListLocked(), time.Now()))
	reg, err := a.composeLocked(nil)
	if err != nil {
		a.logger.Error("key managers from storage conflict with the configuration; keeping the previous set", zap.Error(err))
		return err
	}
	a.gateway.Swap(reg)
	return nil
}

// composeLocked builds a registry of config plus API Key Managers, with
// extra (tenant, km) added, without installing it.
func (a *App) composeLocked(extra *apiKM) (*keymanagers.Registry, error) {
	tenants := map[string][]*keymanagers.KeyManager{}
	for t, kms := range a.cfgTenants {
		tenants[t] = append([]*keymanagers.KeyManager(nil), kms...)
	}
	globals := append([]*keymanagers.KeyManager(nil), a.cfgGlobals...)
	add := func(k *apiKM) {
		if k.tenant == keymanagers.GlobalTenant {
			globals = append(globals, k.km)
		} else {
			tenants[k.tenant] = append(tenants[k.tenant], k.km)
		}
	}
	for _, k := range a.sortedAPIKMsLocked() {
		if extra != nil && k.tenant == extra.tenant && k.km.Name() == extra.km.Name() {
			continue // replaced by extra
		}
		add(k)
	}
	if extra != nil {
		add(extra)
	}
	reg, err := keymanagers.NewRegistry(tenants, globals)
	if err != nil {
		return nil, err
	}
	return reg.WithApplications(a.allApplicationsLocked(nil))
}

// composeKMsLocked is composeLocked without applications.
func (a *App) composeKMsLocked() (*keymanagers.Registry, error) {
	tenants := map[string][]*keymanagers.KeyManager{}
	for t, kms := range a.cfgTenants {
		tenants[t] = append([]*keymanagers.KeyManager(nil), kms...)
	}
	globals := append([]*keymanagers.KeyManager(nil), a.cfgGlobals...)
	for _, k := range a.sortedAPIKMsLocked() {
		if k.tenant == keymanagers.GlobalTenant {
			globals = append(globals, k.km)
		} else {
			tenants[k.tenant] = append(tenants[k.tenant], k.km)
		}
	}
	return keymanagers.NewRegistry(tenants, globals)
}

// allApplicationsLocked merges config and API applications (extra added or
// replacing its id; drop removes one).
func (a *App) allApplicationsLocked(extra *apiApp, drop ...string) map[string][]*keymanagers.Application {
	out := a.configApplications()
	for tenant, m := range a.dyn.apps {
		ids := make([]string, 0, len(m))
		for id := range m {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if extra != nil && extra.tenant == tenant && extra.app.ID == id {
				continue
			}
			if len(drop) == 2 && drop[0] == tenant && drop[1] == id {
				continue
			}
			app := m[id].app
			out[tenant] = append(out[tenant], &app)
		}
	}
	if extra != nil {
		app := extra.app
		out[extra.tenant] = append(out[extra.tenant], &app)
	}
	return out
}

// syncApplicationsLocked re-reads API-made applications; it reports a
// change.
func (a *App) syncApplicationsLocked(ctx context.Context) bool {
	files, err := a.readStored(ctx, storageApplications)
	if err != nil {
		a.logger.Warn("reading applications; keeping the current ones", zap.Error(err))
		return false
	}
	changed := false
	present := map[string]bool{}
	for _, f := range files {
		k, tenant, id, b, etag := f.key, f.tenant, f.name, f.data, f.etag
		present[tenant+"/"+id] = true
		if cur := a.dyn.apps[tenant][id]; cur != nil && cur.etag == etag {
			continue
		}
		var rec storedApp
		if err := caddy.StrictUnmarshalJSON(b, &rec); err != nil || rec.Application.ID != id || rec.Application.Validate() != nil {
			a.markBroken(k, etag, "not a valid stored application")
			continue
		}
		if a.dyn.apps[tenant] == nil {
			a.dyn.apps[tenant] = map[string]*apiApp{}
		}
		a.dyn.apps[tenant][id] = &apiApp{tenant: tenant, app: rec.Application, etag: etag, created: rec.Created, updated: rec.Updated}
		changed = true
	}
	for tenant, m := range a.dyn.apps {
		for id := range m {
			if !present[tenant+"/"+id] {
				delete(m, id)
				changed = true
			}
		}
		if len(m) == 0 {
			delete(a.dyn.apps, tenant)
		}
	}
	return changed
}

// sortedAPIKMsLocked lists API Key Managers in a stable order: creation
// time, then name (their election order after the config's).
func (a *App) sortedAPIKMsLocked() []*apiKM {
	var out []*apiKM
	for _, m := range a.dyn.kms {
		for _, k := range m {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].rec.Created.Equal(out[j].rec.Created) {
			return out[i].rec.Created.Before(out[j].rec.Created)
		}
		if out[i].tenant != out[j].tenant {
			return out[i].tenant < out[j].tenant
		}
		return out[i].km.Name() < out[j].km.Name()
	})
	return out
}

// syncRevocationsLocked re-reads revocations; it reports a change.
func (a *App) syncRevocationsLocked(ctx context.Context) bool {
	keys, err := a.listStorage(ctx, storageRevocations, false)
	if err != nil {
		a.logger.Warn("listing revocations; keeping the current ones", zap.Error(err))
		return false
	}
	now := time.Now()
	seen := map[string]bool{}
	changed := false
	for _, k := range keys {
		seen[k] = true
		b, err := a.storage.Load(ctx, k)
		if err != nil {
			continue
		}
		var rv keymanagers.Revocation
		if json.Unmarshal(b, &rv) != nil {
			continue
		}
		if !rv.ExpiresAt.After(now) {
			_ = a.storage.Delete(ctx, k) // expired: forget it
			delete(seen, k)
			continue
		}
		if cur, ok := a.dyn.revocations[k]; ok && cur == rv {
			continue
		}
		a.dyn.revocations[k] = rv
		changed = true
	}
	for k := range a.dyn.revocations {
		if !seen[k] {
			delete(a.dyn.revocations, k)
			changed = true
		}
	}
	return changed
}

func (a *App) revocationListLocked() []keymanagers.Revocation {
	out := make([]keymanagers.Revocation, 0, len(a.dyn.revocations))
	for _, r := range a.dyn.revocations {
		out = append(out, r)
	}
	return out
}

// startSync re-reads storage every sync_interval until the app stops.
func (a *App) startSync() {
	if a.storage == nil {
		return
	}
	interval := time.Duration(a.SyncInterval)
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.dyn.cancel = cancel
	a.dyn.done = make(chan struct{})
	go func() {
		defer close(a.dyn.done)
		defer func() {
			if r := recover(); r != nil {
				a.logger.Error("storage sync panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			}
		}()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.dyn.mu.Lock()
				sctx, scancel := context.WithTimeout(ctx, interval)
				if err := a.syncLocked(sctx); err != nil && ctx.Err() == nil {
					a.logger.Warn("storage sync failed", zap.Error(err))
				}
				a.dyn.mu.Unlock()
				scancel()
			}
		}
	}()
}

func (a *App) stopSync() {
	if a.dyn != nil && a.dyn.cancel != nil {
		a.dyn.cancel()
		<-a.dyn.done
		a.dyn.cancel = nil
	}
}

// releaseDynamic releases the pooled runtimes of API Key Managers.
func (a *App) releaseDynamic() {
	if a.dyn == nil {
		return
	}
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	for _, m := range a.dyn.kms {
		for _, k := range m {
			_, _ = pool.Delete(k.poolKey)
		}
	}
	a.dyn.kms = map[string]map[string]*apiKM{}
}
