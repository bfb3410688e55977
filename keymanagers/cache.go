package keymanagers

import (
	"context"
	"errors"
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
//
// Negative results (cached refusals from introspection) live in a second,
// smaller bigcache (1/16 of the size, at least 1 MiB): a flood of junk
// tokens evicts only other negative entries, never a valid token's result.
type ResultCache struct {
	bc     *bigcache.BigCache // positive results
	neg    *bigcache.BigCache // negative results
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
	bc, err := newBigcache(mb, cfg.MaxTTL)
	if err != nil {
		return nil, err
	}
	neg, err := newBigcache(negativeCacheMB(mb), cfg.MaxTTL)
	if err != nil {
		_ = bc.Close()
		return nil, err
	}
	return &ResultCache{bc: bc, neg: neg, maxTTL: cfg.MaxTTL}, nil
}

// negativeCacheMB sizes the negative store: 1/16 of the positive one, at
// least 1 MiB.
func negativeCacheMB(mb int) int { return max(mb/16, 1) }

func newBigcache(mb int, life time.Duration) (*bigcache.BigCache, error) {
	shards := 256
	for shards > 16 && mb/shards < 1 {
		shards /= 2
	}
	// Stopped through Close (bigcache prints to stdout when its context is
	// cancelled instead, so it gets one that never is).
	return bigcache.New(context.Background(), bigcache.Config{
		Shards:             shards,
		LifeWindow:         life,
		CleanWindow:        time.Minute,
		MaxEntriesInWindow: 1024 * shards,
		MaxEntrySize:       256,
		HardMaxCacheSize:   mb,
		Verbose:            false,
		StatsEnabled:       false,
		Logger:             nopLogger{},
	})
}

// nopLogger silences bigcache, which otherwise prints to the standard
// logger (e.g. on shutdown) whatever Verbose says.
type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// MaxTTL returns the longest time a result is kept.
func (c *ResultCache) MaxTTL() time.Duration { return c.maxTTL }

func keyString(k *[32]byte) string { return unsafe.String(&k[0], len(k)) }

// get returns the raw entry for key, or nil: the positive result if there
// is one (a single lookup on the hot path), else the negative one.
func (c *ResultCache) get(key *[32]byte) []byte {
	k := keyString(key)
	if b, err := c.bc.Get(k); err == nil {
		return b
	}
	if b, err := c.neg.Get(k); err == nil {
		return b
	}
	return nil
}

// set stores entry in the store its kind belongs to and drops the key from
// the other, so a lookup never finds an older result of the other kind (a
// refusal left behind a later positive result, or an expired positive
// result, servable stale, left in front of a later refusal).
func (c *ResultCache) set(key *[32]byte, entry []byte) {
	k := keyString(key)
	// A full cache evicts; nothing to report.
	if isNegativeEntry(entry) {
		_ = c.bc.Delete(k)
		_ = c.neg.Set(k, entry)
		return
	}
	_ = c.bc.Set(k, entry)
	_ = c.neg.Delete(k)
}

func isNegativeEntry(entry []byte) bool {
	return len(entry) >= 2 && entry[0] == entryVersion && entry[1]&flagNegative != 0
}

func (c *ResultCache) delete(key *[32]byte) {
	k := keyString(key)
	_ = c.bc.Delete(k)
	_ = c.neg.Delete(k)
}

// Len returns the number of entries, positive and negative (expired ones
// included until swept).
func (c *ResultCache) Len() int { return c.bc.Len() + c.neg.Len() }

// NegativeLen returns the number of negative entries.
func (c *ResultCache) NegativeLen() int { return c.neg.Len() }

// Capacity returns the bytes the cache occupies (both stores).
func (c *ResultCache) Capacity() int { return c.bc.Capacity() + c.neg.Capacity() }

// Purge drops every entry.
func (c *ResultCache) Purge() error {
	return errors.Join(c.bc.Reset(), c.neg.Reset())
}

// Close releases the cache.
func (c *ResultCache) Close() error {
	return errors.Join(c.bc.Close(), c.neg.Close())
}
