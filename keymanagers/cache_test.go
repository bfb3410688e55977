package keymanagers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// refuseFresh makes every fresh validation at km fail with ErrAlgorithm
// (no algorithm allowed) while its keys stay published, so a success can
// only come from the cache. (Removing the key instead would also drop the
// cached results it vouched for: see TestCache_KeyRemovedByARefreshDropsItsCachedResults.)
func refuseFresh(tb testing.TB, f *fixture, km *KeyManager, _ testKey) {
	tb.Helper()
	km.allowedAlgs = map[string]bool{}
}

func TestCache_SecondAuthenticateOfATokenIsAHitWithoutSignatureWork(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	f.build()
	tok := mint(t, k1, f.claims(), nil)
	p1, err := f.auth(tok)
	checkErr(t, err, nil)

	refuseFresh(t, f, km, k2)
	// A fresh k1 token no longer validates...
	_, err = f.auth(mint(t, k1, f.claims(), nil))
	checkErr(t, err, ErrAlgorithm)
	// ...but the cached one is served, with the same principal.
	f.jwks.Close() // and no I/O is needed for it
	p2, err := f.auth(tok)
	checkErr(t, err, nil)
	if p1.Subject != p2.Subject || p1.ClientID != p2.ClientID || p1.Scopes != p2.Scopes ||
		p1.ExpiresAt != p2.ExpiresAt || p1.KeyManager != p2.KeyManager || p1.Issuer != p2.Issuer || p2.Tenant != testTenant {
		t.Fatalf("cached principal %+v differs from fresh %+v", p2, p1)
	}
	if f.cache.Len() == 0 {
		t.Fatal("cache is empty")
	}
}

func TestCache_ResultIsDroppedWhenTheKeyManagerFingerprintChanges(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	g := f.build()
	tok := mint(t, k1, f.claims(), nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)
	refuseFresh(t, f, km, k2)

	// Same definition, new instance (same fingerprint), never started and
	// without keys: the cached result is still valid for it.
	same := newKM(t, f.clock.Now, testTenant, f.def("idp"))
	if same.FingerprintValue() != km.FingerprintValue() {
		t.Fatal("identical definitions have different fingerprints")
	}
	reg, err := NewRegistry(map[string][]*KeyManager{testTenant: {same}}, nil)
	must(t, err)
	g.Swap(reg)
	_, err = f.auth(tok)
	checkErr(t, err, nil)

	// Changed definition (an audience the token lacks): different
	// fingerprint, so the token is validated afresh and refused.
	changed := f.def("idp")
	changed.Audiences = []string{"api://elsewhere"}
	f.jwks.Publish(t, k1, k2)
	kmChanged := newKM(t, f.clock.Now, testTenant, changed)
	if kmChanged.FingerprintValue() == km.FingerprintValue() {
		t.Fatal("changed definition kept its fingerprint")
	}
	reg, err = NewRegistry(map[string][]*KeyManager{testTenant: {kmChanged}}, nil)
	must(t, err)
	old := g.Swap(reg)
	if old.Tenant(testTenant).KeyManager("idp") != same {
		t.Fatal("Swap did not return the previous registry")
	}
	_, err = f.auth(tok)
	checkErr(t, err, ErrWrongAudience)

	// Key Manager removed: the cached result is not served either.
	reg, err = NewRegistry(map[string][]*KeyManager{testTenant: nil}, nil)
	must(t, err)
	g.Swap(reg)
	_, err = f.auth(tok)
	checkErr(t, err, ErrUnknownIssuer)
}

func TestCache_ResultPastTokenExpiryIsNotServed(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	f.build()
	claims := with(f.claims(), map[string]any{"exp": f.clock.Now().Add(2 * time.Minute).Unix()})
	tok := mint(t, k1, claims, nil)
	p, err := f.auth(tok)
	checkErr(t, err, nil)
	refuseFresh(t, f, km, k2)

	f.clock.Advance(2*time.Minute + 29*time.Second) // within exp+skew
	_, err = f.auth(tok)
	checkErr(t, err, nil)

	// At ExpiresAt the entry is dead; a fresh validation is attempted
	// (the token is within skew, so it reaches the refused algorithm).
	f.clock.ns.Store(time.Unix(p.ExpiresAt, 0).UnixNano())
	_, err = f.auth(tok)
	checkErr(t, err, ErrAlgorithm)

	// With RS256 allowed again, the next second is plain expiry.
	km.allowedAlgs = map[string]bool{"RS256": true}
	f.clock.Advance(time.Second)
	_, err = f.auth(tok)
	checkErr(t, err, ErrExpired)
}

func TestCache_ResultIsNotServedBeyondCacheMaxTTL(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	c, err := NewResultCache(CacheConfig{MaxTTL: time.Minute})
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	f.cache = c
	km := f.add(testTenant, f.def("idp"))
	f.build()
	if c.MaxTTL() != time.Minute {
		t.Fatalf("MaxTTL = %s", c.MaxTTL())
	}
	tok := mint(t, k1, f.claims(), nil) // exp in 1h
	p, err := f.auth(tok)
	checkErr(t, err, nil)
	if want := f.clock.Now().Add(time.Minute).Unix(); p.ExpiresAt != want {
		t.Fatalf("ExpiresAt = %d, want now+1m = %d", p.ExpiresAt, want)
	}
	refuseFresh(t, f, km, k2)
	f.clock.Advance(59 * time.Second)
	_, err = f.auth(tok)
	checkErr(t, err, nil)
	f.clock.Advance(2 * time.Second)
	_, err = f.auth(tok)
	checkErr(t, err, ErrAlgorithm)
}

func TestCache_ProjectedClaimSetChangeIsAMiss(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	g := f.build()
	tok := mint(t, k1, with(f.claims(), map[string]any{"dept": "sales"}), nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)
	refuseFresh(t, f, km, k2)
	g.SetProjectedClaims([]string{"dept"})
	_, err = f.auth(tok)
	checkErr(t, err, ErrAlgorithm)
	// Back to the original (empty) set: the original entry is a hit again.
	g.SetProjectedClaims(nil)
	_, err = f.auth(tok)
	checkErr(t, err, nil)
}

func TestCache_PurgeDropsEveryResult(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1)
	km := f.add(testTenant, f.def("idp"))
	f.build()
	tok := mint(t, k1, f.claims(), nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)
	refuseFresh(t, f, km, k2)
	if f.cache.Len() != 1 || f.cache.Capacity() == 0 {
		t.Fatalf("Len = %d, Capacity = %d", f.cache.Len(), f.cache.Capacity())
	}
	must(t, f.cache.Purge())
	if f.cache.Len() != 0 {
		t.Fatalf("Len after Purge = %d", f.cache.Len())
	}
	_, err = f.auth(tok)
	checkErr(t, err, ErrAlgorithm)
}

func TestCache_EntryNeverContainsTheRawTokenOrSecrets(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	secret := strings.Repeat("S3cr3t!-", 5)
	f := newFixture(t, k1)
	f.add(testTenant, f.def("idp"))
	f.add(testTenant, Definition{Name: "hmac", Issuer: "https://hmac.example.com", SharedSecret: secret})
	g := f.build()
	g.SetProjectedClaims([]string{"groups", "dept"})
	tokens := map[string]string{
		"RS256": mint(t, k1, with(f.claims(), map[string]any{"groups": []string{"g1"}, "dept": "sales"}), nil),
		"HS256": mint(t, testKey{Alg: "HS256", Secret: []byte(secret)}, with(claimsAt("https://hmac.example.com", f.clock.Now()), map[string]any{"dept": "ops"}), nil),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			_, err := f.auth(tok)
			checkErr(t, err, nil)
			key := sha256.Sum256([]byte(tok))
			entry := f.cache.get(&key)
			if entry == nil {
				t.Fatal("no cache entry under the token's SHA-256")
			}
			if !bytes.Contains(entry, []byte("alice")) {
				t.Fatal("entry does not hold the principal: wrong entry?")
			}
			parts := strings.Split(tok, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			forbidden := map[string][]byte{
				"token":             []byte(tok),
				"header segment":    []byte(parts[0]),
				"payload segment":   []byte(parts[1]),
				"signature segment": []byte(parts[2]),
				"signature bytes":   sig,
				"payload JSON":      payload,
				"shared secret":     []byte(secret),
			}
			for what, b := range forbidden {
				if bytes.Contains(entry, b) {
					t.Errorf("cache entry contains the %s", what)
				}
			}
			// The token's hash is the key, not anything derived reversibly.
			if f.cache.get(new([32]byte)) != nil {
				t.Error("zero key has an entry")
			}
		})
	}
}

func TestCache_CorruptEntryIsIgnoredAndReplaced(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k1)
	f.add(testTenant, f.def("idp"))
	f.build()
	tok := mint(t, k1, f.claims(), nil)
	key := sha256.Sum256([]byte(tok))
	for _, junk := range [][]byte{{}, {0xff}, {entryVersion, 1, 2, 3}, append([]byte{entryVersion}, bytes.Repeat([]byte{0xff}, 40)...)} {
		f.cache.set(&key, junk)
		p, err := f.auth(tok)
		checkErr(t, err, nil)
		if p.Subject != "alice" {
			t.Fatalf("principal = %+v", p)
		}
		var q Principal
		if err := decodeEntry(f.cache.get(&key), &q); err != nil || q.Subject != "alice" {
			t.Fatalf("entry not replaced: %v %+v", err, q)
		}
	}
}

func TestCache_EntryEncodingRoundTrips(t *testing.T) {
	p := &Principal{KeyManager: "idp", Issuer: testIssuer, Subject: "alice", ClientID: "c", Scopes: "a b", JTI: "j-1",
		ExpiresAt: 1 << 40, hardExpiry: 1 << 41, fpHash: 0x0011223344556677, claimSet: 0xdeadbeef, negative: true, reason: 3}
	claims := [][2]string{{"dept", `"sales"`}, {"n", `12`}, {"empty", `""`}}
	var q Principal
	must(t, decodeEntry(encodeEntry(p, claims), &q))
	if q.KeyManager != p.KeyManager || q.Issuer != p.Issuer || q.Subject != p.Subject || q.JTI != p.JTI || q.hardExpiry != p.hardExpiry ||
		q.ClientID != p.ClientID || q.Scopes != p.Scopes || q.ExpiresAt != p.ExpiresAt || q.fpHash != p.fpHash || q.claimSet != p.claimSet ||
		q.negative != p.negative || q.reason != p.reason {
		t.Fatalf("round trip: %+v", q)
	}
	for _, c := range claims {
		if v, ok := q.ClaimRaw(c[0]); !ok || v != c[1] {
			t.Fatalf("ClaimRaw(%s) = %q %v", c[0], v, ok)
		}
	}
	if v, ok := q.Claim("n"); !ok || v != "12" {
		t.Fatalf("Claim(n) = %q", v)
	}
	// Every truncation of a valid entry (without claims) is refused.
	e := encodeEntry(p, nil)
	for i := 0; i < len(e); i++ {
		var r Principal
		if decodeEntry(e[:i], &r) == nil {
			t.Fatalf("accepted the entry truncated to %d of %d bytes", i, len(e))
		}
	}
}

func TestCache_HitAllocatesLittle(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k1)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	tok := mint(t, k1, f.claims(), nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := g.Authenticate(ctx, testTenant, nil, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("cache hit: %.1f allocations", allocs)
	// The Principal, the []byte(token) conversion for SHA-256, and
	// bigcache's copies of the key and the entry.
	if allocs > 4 {
		t.Fatalf("cache hit allocates %.1f times, want at most 4", allocs)
	}
}

// A key that a JWKS refresh removes (rotation) takes the cached results it
// vouched for with it: the next request validates afresh and is refused.
func TestCache_KeyRemovedByARefreshDropsItsCachedResults(t *testing.T) {
	k1 := rsaKey(t, "rsa-a", "k1", "RS256")
	k2 := rsaKey(t, "rsa-b", "k2", "RS256")
	f := newFixture(t, k1, k2)
	km := f.add(testTenant, f.def("idp"))
	f.build()
	tok1 := mint(t, k1, f.claims(), nil)
	tok2 := mint(t, k2, f.claims(), nil)
	for _, tok := range []string{tok1, tok2} {
		_, err := f.auth(tok)
		checkErr(t, err, nil)
	}
	f.jwks.Publish(t, k2) // k1 rotated out
	must(t, km.RefreshNow(context.Background()))
	_, err := f.auth(tok1)
	checkErr(t, err, ErrUnknownKey)
	p, err := f.auth(tok2) // the surviving key's results stay cached
	checkErr(t, err, nil)
	if !p.Cached {
		t.Fatal("the result of a key still published was not served from the cache")
	}
}
