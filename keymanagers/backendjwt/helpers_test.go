package backendjwt

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

var baseTime = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// clock is a goroutine-safe clock the tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock { c := &clock{}; c.ns.Store(baseTime.UnixNano()); return c }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// memStorage is an in-memory Storage that counts writes and can fail.
type memStorage struct {
	mu     sync.Mutex
	files  map[string][]byte
	locks  map[string]chan struct{}
	stores atomic.Int64
	fail   atomic.Bool
}

func newMemStorage() *memStorage {
	return &memStorage{files: map[string][]byte{}, locks: map[string]chan struct{}{}}
}

var errStorageDown = errors.New("storage is down")

func (m *memStorage) lockChan(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.locks[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.locks[name] = ch
	}
	return ch
}

func (m *memStorage) Lock(ctx context.Context, name string) error {
	if m.fail.Load() {
		return errStorageDown
	}
	select {
	case m.lockChan(name) <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *memStorage) Unlock(_ context.Context, name string) error {
	<-m.lockChan(name)
	return nil
}

func (m *memStorage) Store(_ context.Context, key string, value []byte) error {
	if m.fail.Load() {
		return errStorageDown
	}
	m.stores.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[key] = append([]byte(nil), value...)
	return nil
}

func (m *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	if m.fail.Load() {
		return nil, errStorageDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), b...), nil
}

func newKeyStore(t testing.TB, st Storage, alg Algorithm, c *clock, every time.Duration) *KeyStore {
	t.Helper()
	ks, err := NewKeyStore(KeyStoreConfig{Storage: st, Algorithm: alg, Now: c.Now, RotateEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func mustSync(t testing.TB, ks *KeyStore) {
	t.Helper()
	if err := ks.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func newSigner(t testing.TB, cfg Config) *Signer {
	t.Helper()
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimMap is a ClaimSource over a map of raw JSON claims.
type claimMap map[string]string

func (m claimMap) ClaimRaw(name string) (string, bool) { v, ok := m[name]; return v, ok }

// verify checks tok with jwx against the JWKS at the clock's time, as an
// upstream would, and returns its claims.
func verify(t testing.TB, jwks []byte, tok string, c *clock, opts ...jwt.ParseOption) (map[string]any, error) {
	t.Helper()
	set, err := jwk.Parse(jwks)
	if err != nil {
		t.Fatalf("the JWKS does not parse: %v", err)
	}
	opts = append([]jwt.ParseOption{jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(c.Now)), jwt.WithValidate(true)}, opts...)
	parsed, err := jwt.ParseString(tok, opts...)
	if err != nil {
		return nil, err
	}
	m, err := parsed.AsMap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m, nil
}

// payload decodes a JWT's claims without verifying.
func payload(t testing.TB, tok string) map[string]json.RawMessage {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	b, err := b64(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("claims are not JSON: %v: %s", err, b)
	}
	return m
}

// kids lists the key ids of a JWKS.
func kids(t testing.TB, jwks []byte) []string {
	t.Helper()
	set, err := jwk.Parse(jwks)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	return out
}
