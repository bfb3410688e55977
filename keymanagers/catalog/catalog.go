// Package catalog is the run-time state behind the admin API: Key
// Managers and applications made through it, gateway revocations, and the
// sync loop that keeps every instance on one storage in step. It owns the
// one registry builder: config and API-made Key Managers and applications
// are composed into each snapshot the Gateway serves.
//
// It has no Caddy types: storage is the small Storage interface (which
// certmagic.Storage satisfies) and Key Manager runtimes come from the
// host's Builder. Failures are typed (ErrNotFound, ErrConflict,
// ErrPrecondition, ErrUnavailable, keymanagers.FieldErrors); only the
// host turns them into HTTP statuses.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Storage is what the catalog needs of a storage back end; certmagic's
// Storage (Caddy's file system, Redis, Consul, database modules) has it.
type Storage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	Exists(ctx context.Context, key string) bool
	List(ctx context.Context, path string, recursive bool) ([]string, error)
}

// Runtime is a running Key Manager and the function that releases it.
type Runtime struct {
	KeyManager *keymanagers.KeyManager
	Release    func()
}

// Builder prepares an admin-API definition exactly as config ones are
// (connector, defaults, validation; no placeholder expansion) and returns
// its runtime. Errors are keymanagers.FieldErrors for invalid input.
type Builder func(tenant string, def keymanagers.Definition) (Runtime, error)

// Typed failures. Match with errors.Is; messages say what to do.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrPrecondition = errors.New("precondition failed")
	ErrInvalid      = errors.New("invalid")
	ErrUnavailable  = errors.New("unavailable")
)

// Error is a typed failure with its message.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Config is what the host gives the catalog.
type Config struct {
	// Gateway receives every new snapshot and revocation set.
	Gateway *keymanagers.Gateway
	// Storage holds API-made state; nil means the admin API cannot write.
	Storage Storage
	Build   Builder
	Logger  *zap.Logger
	// Key Managers and applications from the configuration (read-only).
	ConfigTenants map[string][]*keymanagers.KeyManager
	ConfigGlobals []*keymanagers.KeyManager
	ConfigApps    map[string][]*keymanagers.Application
	// SyncInterval is how often storage is re-read (default 10s).
	SyncInterval time.Duration
	// CADir is the only directory whose files admin-API definitions may
	// name as tls.ca_file; "" allows none (tls.ca_pem only).
	CADir string
}

// DefaultSyncInterval is how often storage is re-read by default.
const DefaultSyncInterval = 10 * time.Second

// Catalog is the admin state of one app instance. Its methods are safe
// for concurrent use; the request path never calls it.
type Catalog struct {
	cfg     Config
	logger  *zap.Logger
	writeMu sync.Mutex                    // serialises this instance's writes
	mu      sync.Mutex                    // guards the fields below
	kms     map[string]map[string]*apiKM  // tenant -> name
	apps    map[string]map[string]*apiApp // tenant -> id
	revs    map[string]keymanagers.Revocation
	broken  map[string][32]byte // storage key -> sum of the record ignored (logged once)
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New composes the configuration's snapshot and installs it. It does no
// I/O; Load reads storage.
func New(cfg Config) (*Catalog, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	c := &Catalog{cfg: cfg, logger: cfg.Logger, kms: map[string]map[string]*apiKM{}, apps: map[string]map[string]*apiApp{},
		revs: map[string]keymanagers.Revocation{}, broken: map[string][32]byte{}}
	reg, err := c.compose(c.current())
	if err != nil {
		return nil, err
	}
	cfg.Gateway.Swap(reg)
	return c, nil
}

// Writable reports whether the catalog has storage to write to.
func (c *Catalog) Writable() bool { return c.cfg.Storage != nil }

// Load reads what storage holds (local I/O only: no IdP is contacted), so
// that handlers provisioned next see API-made tenants and Key Managers.
func (c *Catalog) Load(ctx context.Context) error {
	if c.cfg.Storage == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncLocked(ctx)
}

// Start starts the API-made runtimes and the sync loop.
func (c *Catalog) Start() {
	c.mu.Lock()
	c.started = true
	for _, m := range c.kms {
		for _, k := range m {
			k.rt.KeyManager.Start()
		}
	}
	c.mu.Unlock()
	c.startSync()
}

// Close stops the sync loop and releases the API-made runtimes.
func (c *Catalog) Close() {
	c.stopSync()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.kms {
		for _, k := range m {
			k.rt.Release()
		}
	}
	c.kms = map[string]map[string]*apiKM{}
}

// Gateway returns the gateway the catalog feeds.
func (c *Catalog) Gateway() *keymanagers.Gateway { return c.cfg.Gateway }

// TenantExists reports whether a tenant (or "global") is known.
func (c *Catalog) TenantExists(tenant string) bool {
	return tenant == keymanagers.GlobalTenant || c.cfg.Gateway.Registry().Tenant(tenant) != nil
}

// Stop ends the sync loop (Close also releases the runtimes).
func (c *Catalog) Stop() { c.stopSync() }
