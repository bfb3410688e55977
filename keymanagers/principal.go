package keymanagers

import (
	"encoding/binary"
	"errors"
	"strings"
	"unsafe"

	"github.com/kmgate/caddy-keymanager/scopes"
)

// Principal is the authenticated caller behind a valid token. Its strings
// point into one immutable buffer (the cache entry), so building one from a
// cache hit costs one allocation.
type Principal struct {
	// Tenant is the tenant of the request (not part of the cache entry).
	Tenant string
	// KeyManager is the name of the Key Manager that vouched for the token;
	// KeyManagerTenant is its owner ("global" for Global Key Managers).
	KeyManager       string
	KeyManagerTenant string
	Issuer           string
	Subject          string
	ClientID         string
	// Scopes is the space-separated scope list.
	Scopes string
	// JTI is the token's jti claim, when it has one.
	JTI string
	// Cached reports that the result came from the cache.
	Cached bool
	// Binding is the binding the request used: BoundNone, BoundDPoP,
	// BoundMTLS or BoundDPoPMTLS (set by Authorize).
	Binding string
	// ExpiresAt is the unix time after which the result must not be used
	// without asking the Key Manager again.
	ExpiresAt int64
	// hardExpiry is when the token itself expires: a stale result
	// (stale_if_error) is never served past it.
	hardExpiry int64
	negative   bool
	reason     byte // negative results: index into negativeReasons
	// introspected marks results from introspection (not a JWT).
	introspected bool

	fpHash uint64 // the Key Manager's fingerprint hash
	keyID  uint32 // the verifying key (JWKS path); 0: none to re-check
	// confirmedAt is the unix time (seconds, rounded down) at which the Key
	// Manager was asked about an introspected token and confirmed it; 0
	// for JWTs. A stale result is served only if it is no older than the
	// last revocation sync (Gateway.MarkRevocationsSynced).
	confirmedAt uint32
	claimSet    uint32
	claims      []byte // encoded projected claims: repeated (name, raw JSON)
	key         [32]byte
	// binding is the token's cnf in compact form (binding.go); km is the
	// Key Manager of the result (fill).
	binding string
	km      *KeyManager
}

// CacheKey is the key of the principal's result-cache entry (a SHA-256
// of the token), for caches layered on the result cache (the backend JWT
// cache). It says nothing of the token beyond its hash.
func (p *Principal) CacheKey() [32]byte { return p.key }

// ScopeList returns the scopes as a slice (allocates).
func (p *Principal) ScopeList() []string { return scopes.Split(p.Scopes) }

// HasScope reports whether the token carries scope s, without allocating.
func (p *Principal) HasScope(s string) bool {
	rest := p.Scopes
	for rest != "" {
		i := strings.IndexByte(rest, ' ')
		var f string
		if i < 0 {
			f, rest = rest, ""
		} else {
			f, rest = rest[:i], rest[i+1:]
		}
		if f == s {
			return true
		}
	}
	return false
}

// Claim returns a projected claim: strings as they are, other JSON values
// in their JSON form. Only the claims the configuration names (see
// Gateway.SetProjectedClaims) are kept.
func (p *Principal) Claim(name string) (string, bool) {
	switch name {
	case "sub":
		if p.Subject != "" {
			return p.Subject, true
		}
	case "iss":
		return p.Issuer, true
	}
	b := p.claims
	for len(b) > 0 {
		n, rest, ok := readStr(b)
		if !ok {
			return "", false
		}
		v, rest2, ok := readStr(rest)
		if !ok {
			return "", false
		}
		if n == name {
			return claimString([]byte(v))
		}
		b = rest2
	}
	return "", false
}

// ClaimRaw returns a projected claim's raw JSON.
func (p *Principal) ClaimRaw(name string) (string, bool) {
	b := p.claims
	for len(b) > 0 {
		n, rest, ok := readStr(b)
		if !ok {
			return "", false
		}
		v, rest2, ok := readStr(rest)
		if !ok {
			return "", false
		}
		if n == name {
			return v, true
		}
		b = rest2
	}
	return "", false
}

const entryVersion = 7

// entryHeaderLen is the fixed part of an entry: version, flags, claim set,
// soft and hard expiry, fingerprint hash, then 4 bytes that hold the key id
// of a JWT result or the confirmation time of an introspected one (which
// has no key to re-check), so the entry does not grow: a cache hit copies
// it.
const entryHeaderLen = 2 + 4 + 8 + 8 + 8 + 4

const (
	flagNegative     = 0x01
	flagIntrospected = 0x80
	// bits 1-6 hold a negative result's reason
)

// negativeReasons are the refusals a negative cache entry can replay.
var negativeReasons = []*Error{ErrInactive, ErrRefreshToken, ErrExpired, ErrNotYetValid, ErrWrongTokenIssuer, ErrWrongAudience}

func reasonIndex(err error) (byte, bool) {
	for i, e := range negativeReasons {
		if errors.Is(err, e) {
			return byte(i), true
		}
	}
	return 0, false
}

// negativeError is the refusal a negative entry replays.
func (p *Principal) negativeError() error {
	if int(p.reason) < len(negativeReasons) {
		return detailed(negativeReasons[p.reason], "cached negative result")
	}
	return detailed(ErrInactive, "cached negative result")
}

// encodeEntry serializes a result for the cache. KeyManagerTenant is not
// stored (it follows from the Key Manager), nor is Issuer when it is the
// Key Manager's own (see fill).
func encodeEntry(p *Principal, claims [][2]string) []byte {
	n := entryHeaderLen
	for _, s := range []string{p.KeyManager, p.Issuer, p.Subject, p.ClientID, p.Scopes, p.JTI, p.binding} {
		n += 2 + len(s)
	}
	for _, c := range claims {
		n += 4 + len(c[0]) + len(c[1])
	}
	b := make([]byte, 0, n)
	var flags byte
	if p.negative {
		flags |= flagNegative | (p.reason&0x3f)<<1
	}
	if p.introspected {
		flags |= flagIntrospected
	}
	b = append(b, entryVersion, flags)
	b = binary.LittleEndian.AppendUint32(b, p.claimSet)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.ExpiresAt))
	b = binary.LittleEndian.AppendUint64(b, uint64(p.hardExpiry))
	b = binary.LittleEndian.AppendUint64(b, p.fpHash)
	if p.introspected {
		b = binary.LittleEndian.AppendUint32(b, p.confirmedAt)
	} else {
		b = binary.LittleEndian.AppendUint32(b, p.keyID)
	}
	for _, s := range []string{p.KeyManager, p.Issuer, p.Subject, p.ClientID, p.Scopes, p.JTI, p.binding} {
		b = appendStr(b, s)
	}
	for _, c := range claims {
		b = appendStr(b, c[0])
		b = appendStr(b, c[1])
	}
	return b
}

var errBadEntry = errors.New("corrupt cache entry")

// fill completes a decoded principal from its Key Manager.
func (p *Principal) fill(km *KeyManager, tenant string) {
	p.KeyManagerTenant = km.tenant
	p.km = km
	if p.Issuer == "" {
		p.Issuer = km.Issuer()
	}
	p.Tenant = tenant
}

// decodeEntry fills p from an entry without copying: p's strings alias b,
// which must not be modified afterwards.
func decodeEntry(b []byte, p *Principal) error {
	if len(b) < entryHeaderLen || b[0] != entryVersion {
		return errBadEntry
	}
	p.negative = b[1]&flagNegative != 0
	p.reason = (b[1] >> 1) & 0x3f
	p.introspected = b[1]&flagIntrospected != 0
	p.claimSet = binary.LittleEndian.Uint32(b[2:])
	p.ExpiresAt = int64(binary.LittleEndian.Uint64(b[6:]))
	p.hardExpiry = int64(binary.LittleEndian.Uint64(b[14:]))
	p.fpHash = binary.LittleEndian.Uint64(b[22:])
	if p.introspected {
		p.keyID, p.confirmedAt = 0, binary.LittleEndian.Uint32(b[30:])
	} else {
		p.keyID, p.confirmedAt = binary.LittleEndian.Uint32(b[30:]), 0
	}
	b = b[entryHeaderLen:]
	for _, dst := range []*string{&p.KeyManager, &p.Issuer, &p.Subject, &p.ClientID, &p.Scopes, &p.JTI, &p.binding} {
		s, rest, ok := readStr(b)
		if !ok {
			return errBadEntry
		}
		*dst, b = s, rest
	}
	p.claims = b
	return nil
}

func appendStr(b []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func readStr(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return "", nil, false
	}
	if n == 0 {
		return "", b, true
	}
	return unsafe.String(&b[0], n), b[n:], true
}
