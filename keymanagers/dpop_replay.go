package keymanagers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// DPoP replay cache: the jti of every accepted proof is remembered long
// enough that the proof cannot be used again while its iat is acceptable.
//
// It is sharded (64 shards, one mutex each: no global lock) and each shard
// keeps two generations of DPoPProofMaxAge+DPoPProofFutureSkew each: an
// entry lives between one and two generations, so at least as long as its
// proof is acceptable, and a whole generation is dropped at once (no
// per-entry sweep). The key is a 16-byte hash of the proof key's
// thumbprint and the jti, never the proof.
//
// Memory bound: at most DPoPReplayCapacity entries per generation in all
// (2 generations, about 24 bytes an entry in Go's map, so about 48 MiB at
// the default 1M when full). A full shard refuses new proofs with 503
// (dpop_replay_cache_full) rather than forget one early: a replay is never
// let through, at worst a flood of valid proofs is slowed.
const (
	DPoPReplayCapacity = 1 << 20
	replayShards       = 64
)

type replayKey [16]byte

type replayShard struct {
	mu       sync.Mutex
	genStart int64 // unix seconds the current generation started
	cur      map[replayKey]struct{}
	prev     map[replayKey]struct{}
	_        [40]byte // keep shards on separate cache lines
}

type replayCache struct {
	perShard int
	gen      int64 // generation length in seconds
	shards   [replayShards]replayShard
}

func newReplayCache(capacity int) *replayCache {
	if capacity <= 0 {
		capacity = DPoPReplayCapacity
	}
	c := &replayCache{perShard: max(capacity/replayShards, 1),
		gen: int64((DPoPProofMaxAge + DPoPProofFutureSkew + time.Second) / time.Second)}
	return c
}

// record remembers (thumbprint, jti): ErrDPoPReplay if it was seen before,
// ErrDPoPReplayFull if its shard is full.
func (c *replayCache) record(tp *[32]byte, jti string, now time.Time) error {
	var buf [32 + maxJTILen]byte
	copy(buf[:32], tp[:])
	sum := sha256.Sum256(buf[:32+copy(buf[32:], jti)])
	var k replayKey
	copy(k[:], sum[:16])
	s := &c.shards[binary.LittleEndian.Uint64(sum[16:24])%replayShards]
	n := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cur == nil:
		s.cur, s.genStart = make(map[replayKey]struct{}), n
	case n >= s.genStart+2*c.gen:
		s.prev, s.cur, s.genStart = nil, make(map[replayKey]struct{}), n
	case n >= s.genStart+c.gen:
		s.prev, s.cur, s.genStart = s.cur, make(map[replayKey]struct{}, len(s.cur)), n
	}
	if _, seen := s.cur[k]; seen {
		return ErrDPoPReplay
	}
	if _, seen := s.prev[k]; seen {
		return ErrDPoPReplay
	}
	if len(s.cur) >= c.perShard {
		return ErrDPoPReplayFull
	}
	s.cur[k] = struct{}{}
	return nil
}

// DPoP server nonces (RFC 9449 section 9): a nonce is the current period
// number and an HMAC of it under a per-gateway random key; the current and
// the previous period's nonces are accepted. Nothing is stored per client.
// Behind several gateway instances, each has its own key: a client sent to
// another instance is asked once more (use_dpop_nonce) and goes on.
const DPoPNoncePeriod = 5 * time.Minute

type nonceSource struct {
	key [32]byte
	cur atomic.Pointer[issuedNonce]
}

type issuedNonce struct {
	period int64
	value  string
}

func newNonceSource() *nonceSource {
	s := &nonceSource{}
	_, _ = rand.Read(s.key[:])
	return s
}

func (s *nonceSource) make(period int64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(period))
	m := hmac.New(sha256.New, s.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// current returns the nonce to hand out now.
func (s *nonceSource) current(now time.Time) string {
	period := now.Unix() / int64(DPoPNoncePeriod/time.Second)
	if c := s.cur.Load(); c != nil && c.period == period {
		return c.value
	}
	c := &issuedNonce{period: period, value: s.make(period)}
	s.cur.Store(c)
	return c.value
}

// valid reports whether nonce is this or the previous period's.
func (s *nonceSource) valid(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	period := int64(binary.BigEndian.Uint64(b[:8]))
	cur := now.Unix() / int64(DPoPNoncePeriod/time.Second)
	if period != cur && period != cur-1 {
		return false
	}
	return hmac.Equal([]byte(s.make(period)), []byte(nonce))
}
