package keymanagers

import (
	"context"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"
)

// CacheConfig sizes the result cache.
type CacheConfig struct {
	// SizeBytes bounds the cache's entry storage (default 64 MiB).
	SizeBytes int64
	// MaxTTL bounds how long any result is kept (default 15m).
	MaxTTL time.Duration
}

// Cache defaults.
const (
	DefaultCacheSize = 64 << 20
	DefaultMaxTTL    = 15 * time.Minute
)

// ResultCache holds validation results keyed by the SHA-256 of the token;
// the token itself is never stored. Each entry carries its own expiry,
// checked on read (bigcache only has one global life window).
type ResultCache struct {
	bc     *bigcache.BigCache
	maxTTL time.Duration
}

// NewResultCache builds a cache. Close it when done.
func NewResultCache(cfg CacheConfig) (*ResultCache, error) {
	if cfg.SizeBytes <= 0 {
		cfg.SizeBytes = DefaultCacheSize
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	mb := int(cfg.SizeBytes >> 20)
	if mb < 1 {
		mb = 1
	}
	shards := 256
	for shards > 16 && mb/shards < 1 {
		shards /= 2
	}
	// Stopped through Close (bigcache prints to stdout when its context is
	// cancelled instead, so it gets one that never is).
	bc, err := bigcache.New(context.Background(), bigcache.Config{
		Shards:             shards,
		LifeWindow:         cfg.MaxTTL,
		CleanWindow:        time.Minute,
		MaxEntriesInWindow: 1024 * shards,
		MaxEntrySize:       256,
		HardMaxCacheSize:   mb,
		Verbose:            false,
		StatsEnabled:       false,
		Logger:             nopLogger{},
	})
	if err != nil {
		return nil, err
	}
	return &ResultCache{bc: bc, maxTTL: cfg.MaxTTL}, nil
}

// nopLogger silences bigcache, which otherwise prints to the standard
// logger (e.g. on shutdown) whatever Verbose says.
type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// MaxTTL returns the longest time a result is kept.
func (c *ResultCache) MaxTTL() time.Duration { return c.maxTTL }

func keyString(k *[32]byte) string { return unsafe.String(&k[0], len(k)) }

// get returns the raw entry for key, or nil.
func (c *ResultCache) get(key *[32]byte) []byte {
	b, err := c.bc.Get(keyString(key))
	if err != nil {
		return nil
	}
	return b
}

func (c *ResultCache) set(key *[32]byte, entry []byte) {
	_ = c.bc.Set(keyString(key), entry) // a full cache evicts; nothing to report
}

func (c *ResultCache) delete(key *[32]byte) {
	_ = c.bc.Delete(keyString(key))
}

// Len returns the number of entries (expired ones included until swept).
func (c *ResultCache) Len() int { return c.bc.Len() }

// Capacity returns the bytes the cache occupies.
func (c *ResultCache) Capacity() int { return c.bc.Capacity() }

// Purge drops every entry.
func (c *ResultCache) Purge() error {
	return c.bc.Reset()
}

// Close releases the cache.
func (c *ResultCache) Close() error {
	return c.bc.Close()
}
