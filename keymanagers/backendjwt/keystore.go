package backendjwt

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
)

// Storage is the part of certmagic.Storage (Caddy's storage) the key store
// uses, so any Caddy storage module satisfies it. Instances on one storage
// share the keys.
type Storage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// Defaults of the key schedule.
const (
	DefaultRotateEvery = 24 * time.Hour
	// MinRotateEvery is the shortest rotation period: a new key is
	// published a quarter of it ahead, which must leave upstreams that
	// cache the JWKS (max-age is a sixteenth of it) time to fetch it.
	MinRotateEvery = 10 * time.Minute
	// ClockSkew is the clock difference between gateway instances and
	// upstreams that the key schedule allows for.
	ClockSkew = time.Minute
)

// storedState is the key set as kept in storage, at StoragePath(alg).
type storedState struct {
	Version   int         `json:"version"`
	Algorithm Algorithm   `json:"algorithm"`
	Keys      []storedKey `json:"keys"` // by activation time, oldest first
}

type storedKey struct {
	KID string `json:"kid"`
	// Activates is when the key starts signing (it is published from its
	// creation, PublishAhead earlier).
	Activates time.Time `json:"activates"`
	// Retires is when the key stops being published; set when its
	// successor is created: the successor's activation plus RotateEvery.
	Retires *time.Time      `json:"retires,omitempty"`
	Private json.RawMessage `json:"private_jwk"`
}

// StoragePath is where the keys of alg are kept; the storage lock of the
// same name with ".lock" serializes writers across instances.
func StoragePath(alg Algorithm) string { return "keymanagers/backend_jwt/" + string(alg) + ".json" }

// KeyStoreConfig configures a KeyStore.
type KeyStoreConfig struct {
	Storage   Storage
	Algorithm Algorithm
	// RotateEvery is how long each key signs (default 24h). A superseded
	// key stays published for RotateEvery more, so JWTs must live shorter
	// than RotateEvery minus ClockSkew (NewSigner checks).
	RotateEvery time.Duration
	// PublishAhead is how long a new key is in the JWKS before it signs,
	// so that upstreams and other instances know it in time (default a
	// quarter of RotateEvery).
	PublishAhead time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *zap.Logger
}

// KeyStore holds the signing keys of one algorithm: the current key, the
// next one (published ahead) and retired ones still published. Reads are
// lock-free (an immutable snapshot behind an atomic pointer).
type KeyStore struct {
	cfg  KeyStoreConfig
	path string
	lock string
	mu   sync.Mutex // one Sync at a time in this instance
	snap atomic.Pointer[snapshot]
	st   atomic.Pointer[storageRef]
}

type storageRef struct{ Storage }

// SetStorage replaces the storage handle (a key store that outlives a
// config takes the same storage from the next config, whose module
// instance is the live one).
func (ks *KeyStore) SetStorage(st Storage) {
	if st != nil {
		ks.st.Store(&storageRef{st})
	}
}

func (ks *KeyStore) storage() Storage { return ks.st.Load().Storage }

type snapshot struct {
	sum  [32]byte // of the stored bytes
	keys []liveKey
	jwks []byte
	pub  []json.RawMessage // each key's public JWK
}

type liveKey struct {
	*signingKey
	activates time.Time
	retires   time.Time // zero: not superseded yet
}

// ErrNoKey means the key store could not read or create its keys yet.
var ErrNoKey = errors.New("backend JWT signing key not available")

// NewKeyStore checks cfg; it does no I/O (Sync reads storage).
func NewKeyStore(cfg KeyStoreConfig) (*KeyStore, error) {
	if cfg.Storage == nil {
		return nil, errors.New("backend JWT keys need a storage")
	}
	if _, err := ParseAlgorithm(string(cfg.Algorithm)); err != nil {
		return nil, err
	}
	if cfg.RotateEvery == 0 {
		cfg.RotateEvery = DefaultRotateEvery
	}
	if cfg.PublishAhead == 0 {
		cfg.PublishAhead = cfg.RotateEvery / 4
	}
	if cfg.RotateEvery < 0 || cfg.PublishAhead < 0 || cfg.PublishAhead >= cfg.RotateEvery {
		return nil, fmt.Errorf("rotate_every (%v) must be positive and longer than the publication lead (%v)", cfg.RotateEvery, cfg.PublishAhead)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := StoragePath(cfg.Algorithm)
	ks := &KeyStore{cfg: cfg, path: p, lock: p + ".lock"}
	ks.SetStorage(cfg.Storage)
	return ks, nil
}

// Algorithm returns the key store's algorithm.
func (ks *KeyStore) Algorithm() Algorithm { return ks.cfg.Algorithm }

// RotateEvery returns the rotation period.
func (ks *KeyStore) RotateEvery() time.Duration { return ks.cfg.RotateEvery }

// Sync reads the keys from storage and, when the schedule asks for it
// (no key yet, the next key is due to be published, a retired key is due
// to be dropped), changes them under the storage lock, re-reading first so
// that of several instances only one generates a key.
func (ks *KeyStore) Sync(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.cfg.Now()
	raw, st, err := ks.read(ctx)
	if err != nil {
		return err
	}
	if ks.due(st, now) {
		raw, st, err = ks.advanceLocked(ctx, now)
		if err != nil {
			return err
		}
	}
	return ks.install(raw, st)
}

func (ks *KeyStore) advanceLocked(ctx context.Context, now time.Time) ([]byte, *storedState, error) {
	store := ks.storage()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := store.Lock(lctx, ks.lock); err != nil {
		return nil, nil, fmt.Errorf("taking the storage lock %s: %v", ks.lock, err)
	}
	defer func() { _ = store.Unlock(context.Background(), ks.lock) }()
	raw, st, err := ks.read(ctx)
	if err != nil || !ks.due(st, now) {
		return raw, st, err // another instance did it meanwhile
	}
	next, created, err := ks.advance(st, now)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := store.Store(ctx, ks.path, b); err != nil {
		return nil, nil, fmt.Errorf("storing %s: %v", ks.path, err)
	}
	if created != "" {
		ks.cfg.Logger.Info("backend JWT key created", zap.String("algorithm", string(ks.cfg.Algorithm)), zap.String("kid", created))
	}
	return b, next, nil
}

// read loads the stored state; a missing file is (nil, nil, nil).
func (ks *KeyStore) read(ctx context.Context) ([]byte, *storedState, error) {
	b, err := ks.storage().Load(ctx, ks.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading %s: %v", ks.path, err)
	}
	var st storedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("%s is corrupt (not rewritten; fix or delete it): %v", ks.path, err)
	}
	if st.Algorithm != ks.cfg.Algorithm {
		return nil, nil, fmt.Errorf("%s holds %q keys, not %q", ks.path, st.Algorithm, ks.cfg.Algorithm)
	}
	return b, &st, nil
}

// due reports whether the stored keys need a change at now.
func (ks *KeyStore) due(st *storedState, now time.Time) bool {
	if st == nil || len(st.Keys) == 0 {
		return true
	}
	for _, k := range st.Keys {
		if k.Retires != nil && !now.Before(*k.Retires) {
			return true
		}
	}
	newest := st.Keys[len(st.Keys)-1]
	return !now.Before(newest.Activates.Add(ks.cfg.RotateEvery - ks.cfg.PublishAhead))
}

// advance returns the next state: retired keys dropped, and a new key
// when the newest one has signed for RotateEvery minus PublishAhead. The
// new key activates RotateEvery after the newest one (at least
// PublishAhead from now, after an outage), and the newest one is kept
// published RotateEvery past that: longer than any JWT it signed lives.
func (ks *KeyStore) advance(st *storedState, now time.Time) (*storedState, string, error) {
	next := &storedState{Version: 1, Algorithm: ks.cfg.Algorithm}
	if st != nil {
		for _, k := range st.Keys {
			if k.Retires == nil || now.Before(*k.Retires) {
				next.Keys = append(next.Keys, k)
			}
		}
	}
	var act time.Time
	switch n := len(next.Keys); {
	case n == 0:
		act = now // the very first key signs at once: nothing to hand over from
	case !now.Before(next.Keys[n-1].Activates.Add(ks.cfg.RotateEvery - ks.cfg.PublishAhead)):
		act = next.Keys[n-1].Activates.Add(ks.cfg.RotateEvery)
		if earliest := now.Add(ks.cfg.PublishAhead); act.Before(earliest) {
			act = earliest
		}
		retires := act.Add(ks.cfg.RotateEvery)
		next.Keys[n-1].Retires = &retires
	default:
		return next, "", nil
	}
	priv, err := generate(ks.cfg.Algorithm)
	if err != nil {
		return nil, "", err
	}
	sk, err := newSigningKey(ks.cfg.Algorithm, priv)
	if err != nil {
		return nil, "", err
	}
	pj, err := marshalPrivate(priv)
	if err != nil {
		return nil, "", err
	}
	next.Keys = append(next.Keys, storedKey{KID: sk.kid, Activates: act.UTC(), Private: pj})
	return next, sk.kid, nil
}

// install makes st the served snapshot, reusing parsed keys by kid.
func (ks *KeyStore) install(raw []byte, st *storedState) error {
	sum := sha256.Sum256(raw)
	old := ks.snap.Load()
	if old != nil && old.sum == sum {
		return nil
	}
	prev := map[string]*signingKey{}
	if old != nil {
		for _, k := range old.keys {
			prev[k.kid] = k.signingKey
		}
	}
	s := &snapshot{sum: sum}
	set := jwk.NewSet()
	for _, k := range st.Keys {
		sk := prev[k.KID]
		if sk == nil {
			priv, err := parsePrivate(k.Private)
			if err != nil {
				return fmt.Errorf("%s: key %s: %v", ks.path, k.KID, err)
			}
			if sk, err = newSigningKey(ks.cfg.Algorithm, priv); err != nil {
				return fmt.Errorf("%s: key %s: %v", ks.path, k.KID, err)
			}
			if sk.kid != k.KID {
				return fmt.Errorf("%s: key %s: its thumbprint is %s", ks.path, k.KID, sk.kid)
			}
		}
		lk := liveKey{signingKey: sk, activates: k.Activates}
		if k.Retires != nil {
			lk.retires = *k.Retires
		}
		s.keys = append(s.keys, lk)
		if err := set.AddKey(sk.public); err != nil {
			return err
		}
		pj, err := json.Marshal(sk.public)
		if err != nil {
			return err
		}
		s.pub = append(s.pub, pj)
	}
	if len(s.keys) == 0 {
		return fmt.Errorf("%s holds no key", ks.path)
	}
	var err error
	if s.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	ks.snap.Store(s)
	return nil
}

// signer returns the key that signs at now: the newest one already
// active. Before the first Sync it syncs (cold path only).
func (ks *KeyStore) signer(ctx context.Context, now time.Time) (*signingKey, error) {
	s, err := ks.loaded(ctx)
	if err != nil {
		return nil, err
	}
	return s.current(now), nil
}

// loaded returns the snapshot, syncing first when there is none yet. Of
// many requests arriving before the first sync, one reads storage; the
// others wait for it and take its result.
func (ks *KeyStore) loaded(ctx context.Context) (*snapshot, error) {
	if s := ks.snap.Load(); s != nil {
		return s, nil
	}
	ks.mu.Lock()
	s := ks.snap.Load()
	ks.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if err := ks.Sync(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoKey, err)
	}
	if s = ks.snap.Load(); s == nil {
		return nil, ErrNoKey
	}
	return s, nil
}

// current is the newest key active at now (the oldest before any is).
func (s *snapshot) current(now time.Time) *signingKey {
	for i := len(s.keys) - 1; i > 0; i-- {
		if !now.Before(s.keys[i].activates) {
			return s.keys[i].signingKey
		}
	}
	return s.keys[0].signingKey
}

// Run syncs at once and then every interval until ctx ends. Failures are
// logged; the keys in hand keep signing.
func (ks *KeyStore) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ks.syncLogged(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (ks *KeyStore) syncLogged(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			ks.cfg.Logger.Error("backend JWT key sync panicked", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	if err := ks.Sync(ctx); err != nil && ctx.Err() == nil {
		ks.cfg.Logger.Error("backend JWT key sync", zap.String("algorithm", string(ks.cfg.Algorithm)), zap.Error(err))
	}
}
