// Package caddymodule is the Caddy glue of caddy-keymanager: the
// keymanagers app, the keymanager HTTP handler, connector modules and the
// Caddyfile. The domain lives in package keymanagers.
package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/keymanagers/catalog"
)

func init() {
	caddy.RegisterModule(App{})
}

// pool keeps Key Manager runtimes (with their fetched keys) and the result
// cache across config reloads: the new config acquires the same values
// before the old one releases them, so nothing is refetched or dropped.
var pool = caddy.NewUsagePool()

// App is the `keymanagers` app: tenants with their Key Managers, Global
// Key Managers that every tenant sees, and the shared result cache.
type App struct {
	// CacheSize bounds the result cache, in bytes (default 64 MiB).
	CacheSize int64 `json:"cache_size,omitempty"`
	// MaxTTL bounds how long any validation result is cached (default 15m).
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`
	// SyncInterval is how often each instance re-reads what the admin API
	// keeps in Caddy's storage (Key Managers, applications, revocations),
	// so instances on one shared storage converge within it (default 10s).
	SyncInterval caddy.Duration `json:"sync_interval,omitempty"`
	// CADir is the one directory whose files admin-API definitions may
	// name in tls.ca_file (they may always give tls.ca_pem). Default: none.
	CADir string `json:"ca_dir,omitempty"`
	// ExposeClaims names claims kept with each result so that
	// {keymanager.claims.NAME} resolves them; forward_claim claims are kept
	// automatically.
	ExposeClaims []string `json:"expose_claims,omitempty"`
	// DisableMetrics turns off the keymanagers Prometheus metrics.
	DisableMetrics bool `json:"disable_metrics,omitempty"`
	// BackendJWT configures the backend JWT signing keys (backend_jwt.go).
	BackendJWT *BackendJWTKeys `json:"backend_jwt,omitempty"`
	// Global are Global Key Managers, seen by every tenant.
	Global []*keymanagers.Definition `json:"global,omitempty"`
	// Tenants maps tenant names to their configuration.
	Tenants map[string]*TenantConfig `json:"tenants,omitempty"`

	gateway  *keymanagers.Gateway
	catalog  *catalog.Catalog
	logger   *zap.Logger
	ctx      caddy.Context
	poolKeys []string
	kms      []*keymanagers.KeyManager // config runtimes

	claimsMu  *sync.Mutex
	projected []string
	// resources are the protected resources of this config's keymanager
	// handlers (resource_metadata.go).
	resources *resourceRegistry

	backendJWT *backendJWTState // under claimsMu
}

// TenantConfig is one tenant's configuration (keymanagers.Tenant is the
// tenant's view in a running snapshot).
type TenantConfig struct {
	// KeyManagers are the tenant's own Key Managers, in election order.
	KeyManagers []*keymanagers.Definition `json:"key_managers,omitempty"`
	// Applications are the tenant's applications (application scopes and
	// subscriptions), keyed by Key Manager and client id.
	Applications []*keymanagers.Application `json:"applications,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "keymanagers",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds every Key Manager and the registry. It does no network
// I/O: keys are fetched in the background once the app starts.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.ctx = ctx
	a.claimsMu = new(sync.Mutex)
	a.resources = new(resourceRegistry) // resource_metadata.go
	maxTTL := time.Duration(a.MaxTTL)
	if maxTTL == 0 {
		maxTTL = keymanagers.DefaultMaxTTL
	}
	if a.CacheSize < 0 {
		return errors.New("keymanagers: cache_size must not be negative")
	}
	cacheKey := fmt.Sprintf("cache|%d|%s", a.CacheSize, maxTTL)
	cv, _, err := pool.LoadOrNew(cacheKey, func() (caddy.Destructor, error) {
		c, err := keymanagers.NewResultCache(keymanagers.CacheConfig{SizeBytes: a.CacheSize, MaxTTL: maxTTL})
		if err != nil {
			return nil, err
		}
		return &pooledCache{c}, nil
	})
	if err != nil {
		return fmt.Errorf("keymanagers: result cache: %v", err)
	}
	a.poolKeys = append(a.poolKeys, cacheKey)
	cache := cv.(*pooledCache).ResultCache

	globals, err := a.buildAll(ctx, keymanagers.GlobalTenant, "global", a.Global)
	if err != nil {
		return err
	}
	tenants := map[string][]*keymanagers.KeyManager{}
	for name, t := range a.Tenants {
		if t == nil {
			t = &TenantConfig{}
		}
		if name == keymanagers.GlobalTenant {
			return fmt.Errorf("keymanagers: tenant name %q is reserved for Global Key Managers; use the global list", name)
		}
		kms, err := a.buildAll(ctx, name, "tenants."+name+".key_managers", t.KeyManagers)
		if err != nil {
			return err
		}
		tenants[name] = kms
	}
	a.gateway = keymanagers.NewGateway(nil, cache, a.logger, nil)
	// The catalog composes config and API-made Key Managers into the
	// gateway's snapshots; reading storage is local I/O only.
	a.catalog, err = catalog.New(catalog.Config{
		Gateway:       a.gateway,
		Storage:       ctx.Storage(),
		Build:         a.buildAPI,
		Logger:        a.logger,
		ConfigTenants: tenants,
		ConfigGlobals: globals,
		ConfigApps:    a.configApplications(),
		SyncInterval:  time.Duration(a.SyncInterval),
		CADir:         a.CADir,
	})
	if err != nil {
		return fmt.Errorf("keymanagers: %v", err)
	}
	a.addProjectedClaims(a.ExposeClaims)
	if err := a.registerMetrics(ctx); err != nil {
		return fmt.Errorf("keymanagers: registering metrics: %v", err)
	}
	if err := a.catalog.Load(ctx); err != nil {
		a.logger.Error("reading API-made key managers from storage; continuing with the configured ones", zap.Error(err))
	}
	return nil
}

// buildAPI prepares an admin-API definition exactly as config ones are,
// without placeholder expansion: {file.*} and {env.*} would let an admin
// API caller read the host's files and environment (sent on as
// credentials to a URL of their choice).
func (a *App) buildAPI(tenant string, def keymanagers.Definition) (catalog.Runtime, error) {
	prepared, conn, err := a.prepare(def, false)
	if err != nil {
		return catalog.Runtime{}, err
	}
	km, key, err := a.acquire(tenant, prepared, conn)
	if err != nil {
		return catalog.Runtime{}, err
	}
	return catalog.Runtime{KeyManager: km, Release: func() { _, _ = pool.Delete(key) }}, nil
}

type pooledCache struct{ *keymanagers.ResultCache }

func (p *pooledCache) Destruct() error { return p.Close() }

// buildAll prepares and instantiates definitions (or reuses pooled
// runtimes of identical definitions).
func (a *App) buildAll(ctx caddy.Context, tenant, path string, defs []*keymanagers.Definition) ([]*keymanagers.KeyManager, error) {
	var out []*keymanagers.KeyManager
	seen := map[string]bool{}
	for i, d := range defs {
		if d == nil {
			return nil, fmt.Errorf("keymanagers: %s[%d]: empty definition", path, i)
		}
		where := fmt.Sprintf("keymanagers: %s[%d] (%s)", path, i, d.Name)
		if seen[d.Name] {
			return nil, fmt.Errorf("%s: name: %q is defined twice", where, d.Name)
		}
		seen[d.Name] = true
		prepared, conn, err := a.prepare(*d, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		km, key, err := a.acquire(tenant, prepared, conn)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		a.poolKeys = append(a.poolKeys, key)
		a.kms = append(a.kms, km)
		out = append(out, km)
	}
	return out, nil
}

// configApplications returns the applications of the config's tenants.
func (a *App) configApplications() map[string][]*keymanagers.Application {
	out := map[string][]*keymanagers.Application{}
	for name, t := range a.Tenants {
		if t != nil && len(t.Applications) > 0 {
			out[name] = t.Applications
		}
	}
	return out
}

// prepare is the one validation path for a definition, from the config or
// the admin API: connector, secrets placeholders, defaults, checks.
//
// Placeholders ({env.*}, {file.*}) are expanded only for definitions from
// the Caddy config (expand), never for admin API ones.
func (a *App) prepare(def keymanagers.Definition, expand bool) (keymanagers.Definition, keymanagers.Connector, error) {
	conn, err := connectorFor(&def)
	if err != nil {
		return def, nil, keymanagers.FieldErrors{{Field: "connector", Message: err.Error()}}
	}
	if expand && def.CertificateFile != "" {
		// Read now, not when the Caddyfile is adapted: the JSON keeps the
		// path, and a reload picks up a renewed file.
		b, err := os.ReadFile(def.CertificateFile)
		if err != nil {
			return def, nil, keymanagers.FieldErrors{{Field: "certificate_file", Message: fmt.Sprintf("cannot read: %v", err)}}
		}
		def.CertificatePEM = string(b)
	}
	if expand {
		repl := caddy.NewReplacer()
		def.ClientID = repl.ReplaceKnown(def.ClientID, "")
		def.ClientSecret = repl.ReplaceKnown(def.ClientSecret, "")
		def.SharedSecret = repl.ReplaceKnown(def.SharedSecret, "")
		def.RegistrationAccessToken = repl.ReplaceKnown(def.RegistrationAccessToken, "")
	}
	prepared, err := keymanagers.Prepare(def, conn)
	return prepared, conn, err
}

type pooledKM struct{ *keymanagers.KeyManager }

func (p *pooledKM) Destruct() error { p.Close(); return nil }

func (a *App) acquire(tenant string, def keymanagers.Definition, conn keymanagers.Connector) (*keymanagers.KeyManager, string, error) {
	key := "km|" + keymanagers.Fingerprint(tenant, def)
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		km, err := keymanagers.NewKeyManager(tenant, def, keymanagers.Options{
			// A pooled runtime may outlive this config: give it a logger
			// that does not depend on the config's context.
			Logger:    caddy.Log().Named("keymanagers"),
			Connector: conn,
		})
		if err != nil {
			return nil, err
		}
		return &pooledKM{km}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*pooledKM).KeyManager, key, nil
}

// Validate is part of caddy.Validator; Provision already checked
// everything that can be checked without the network.
func (a *App) Validate() error { return nil }

// Start begins background discovery and key fetches, and the storage
// sync.
func (a *App) Start() error {
	for _, km := range a.kms {
		km.Start()
	}
	a.catalog.Start()
	return nil
}

// Stop ends the storage sync. Pooled runtimes stop when the last config
// using them is cleaned up.
func (a *App) Stop() error {
	a.catalog.Stop()
	return nil
}

// Cleanup releases pooled values.
func (a *App) Cleanup() error {
	if a.catalog != nil {
		a.catalog.Close()
	}
	for _, k := range a.poolKeys {
		_, _ = pool.Delete(k)
	}
	a.poolKeys = nil
	return nil
}

// Gateway returns the validation entry point.
func (a *App) Gateway() *keymanagers.Gateway { return a.gateway }

// addProjectedClaims adds claim names that results must keep. Handlers
// call it while provisioning, before any request is served.
func (a *App) addProjectedClaims(names []string) {
	a.claimsMu.Lock()
	defer a.claimsMu.Unlock()
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n != "" && !slices.Contains(a.projected, n) {
			a.projected = append(a.projected, n)
		}
	}
	a.gateway.SetProjectedClaims(a.projected)
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
