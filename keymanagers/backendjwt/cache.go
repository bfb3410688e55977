package backendjwt

import (
	"context"
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"
)

// Cache keeps signed JWTs so that a request whose principal came from the
// result cache does not sign again. It is sharded (bigcache), keyed by the
// principal's cache key (a hash of the token) and the signer's
// configuration id; each entry carries its own reuse deadline and a hash
// of the caller fields it was signed from, so a changed principal (new
// effective scopes, another tenant) is a miss, not a stale statement.
//
// Key rotation does not invalidate entries: a JWT is reused only until
// shortly before its exp, and the key that signed it stays published for
// RotateEvery after it is superseded, which is longer than any JWT lives
// (NewSigner refuses a ttl over RotateEvery minus ClockSkew). So every
// cached JWT stays verifiable for its whole life.
type Cache struct {
	bc *bigcache.BigCache
}

// cacheKeyLen is the principal's 32-byte key plus the 8-byte signer id.
const cacheKeyLen = 32 + 8

// entryHeader is the reuse deadline (unix nanoseconds) and the caller
// hash.
const entryHeader = 16

// NewCache makes a cache of at most sizeMB megabytes whose entries live at
// most life (the longest JWT lifetime).
func NewCache(sizeMB int, life time.Duration) (*Cache, error) {
	if sizeMB < 1 {
		sizeMB = 1
	}
	shards := 64
	for shards > 8 && sizeMB/shards < 1 {
		shards /= 2
	}
	// Stopped through Close (bigcache logs when its context is cancelled).
	bc, err := bigcache.New(context.Background(), bigcache.Config{
		Shards:             shards,
		LifeWindow:         life,
		CleanWindow:        time.Minute,
		MaxEntriesInWindow: 256 * shards,
		MaxEntrySize:       1024,
		HardMaxCacheSize:   sizeMB,
		Verbose:            false,
		Logger:             nopLogger{},
	})
	if err != nil {
		return nil, err
	}
	return &Cache{bc: bc}, nil
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func (c *Cache) get(k *[cacheKeyLen]byte, sum uint64, now time.Time) (string, bool) {
	b, err := c.bc.Get(unsafe.String(&k[0], cacheKeyLen))
	if err != nil || len(b) <= entryHeader {
		return "", false
	}
	if now.UnixNano() >= int64(binary.LittleEndian.Uint64(b)) || binary.LittleEndian.Uint64(b[8:]) != sum {
		return "", false
	}
	// b is bigcache's copy, owned by this call: no second copy.
	return unsafe.String(&b[entryHeader], len(b)-entryHeader), true
}

func (c *Cache) set(k *[cacheKeyLen]byte, sum uint64, until time.Time, tok string) {
	b := make([]byte, 0, entryHeader+len(tok))
	b = binary.LittleEndian.AppendUint64(b, uint64(until.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, sum)
	b = append(b, tok...)
	_ = c.bc.Set(string(k[:]), b) // a full cache only costs a signature next time
}

// Len is the number of cached JWTs.
func (c *Cache) Len() int { return c.bc.Len() }

// Purge drops every cached JWT.
func (c *Cache) Purge() error { return c.bc.Reset() }

// Close stops the cache.
func (c *Cache) Close() error { return c.bc.Close() }
