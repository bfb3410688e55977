package backendjwt

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// TestBackendJWTRotationKeepsOldKeyPublished walks the key schedule of a
// one-hour rotation: the next key is published 15m before it signs, and a
// superseded key stays published until every JWT it signed has expired.
func TestBackendJWTRotationKeepsOldKeyPublished(t *testing.T) {
	c := newClock()
	ks := newKeyStore(t, newMemStorage(), ES256, c, time.Hour)
	maxTTL := time.Hour - ClockSkew
	s := newSigner(t, Config{Issuer: "gw", TTL: maxTTL, Keys: ks, Now: c.Now})
	created := []string{} // kids in order of creation: K1, K2, ...
	signedBy := map[string]string{}
	steps := []struct {
		at        time.Duration // since the first Sync
		published []int         // 1-based creation indexes
		signing   int
		statuses  []string
	}{
		{at: 0, published: []int{1}, signing: 1, statuses: []string{"current"}},
		{at: 44 * time.Minute, published: []int{1}, signing: 1, statuses: []string{"current"}},
		{at: 45 * time.Minute, published: []int{1, 2}, signing: 1, statuses: []string{"current", "next"}},
		{at: time.Hour - time.Second, published: []int{1, 2}, signing: 1, statuses: []string{"current", "next"}},
		{at: time.Hour, published: []int{1, 2}, signing: 2, statuses: []string{"retired", "current"}},
		{at: 105 * time.Minute, published: []int{1, 2, 3}, signing: 2, statuses: []string{"retired", "current", "next"}},
		{at: 2*time.Hour - time.Second, published: []int{1, 2, 3}, signing: 2, statuses: []string{"retired", "current", "next"}},
		{at: 2 * time.Hour, published: []int{2, 3}, signing: 3, statuses: []string{"retired", "current"}},
		// After a ten-hour outage the overdue key is still published a
		// quarter period before it signs.
		{at: 12 * time.Hour, published: []int{3, 4}, signing: 3, statuses: []string{"current", "next"}},
		{at: 12*time.Hour + 15*time.Minute, published: []int{3, 4}, signing: 4, statuses: []string{"retired", "current"}},
	}
	var last time.Duration
	for _, st := range steps {
		c.Advance(st.at - last)
		last = st.at
		mustSync(t, ks)
		infos := ks.Keys()
		var statuses []string
		var pub []int
		for _, k := range infos {
			if !slices.Contains(created, k.KID) {
				created = append(created, k.KID)
			}
			pub = append(pub, slices.Index(created, k.KID)+1)
			statuses = append(statuses, k.Status)
		}
		if !slices.Equal(pub, st.published) || !slices.Equal(statuses, st.statuses) {
			t.Fatalf("at +%v: published K%v %v, want K%v %v", st.at, pub, statuses, st.published, st.statuses)
		}
		if got := kids(t, ks.JWKS()); !slices.Equal(got, kidsOf(created, st.published)) {
			t.Fatalf("at +%v: JWKS kids %v", st.at, got)
		}
		tok, err := s.Token(context.Background(), &Caller{Tenant: "t", Subject: st.at.String()})
		if err != nil {
			t.Fatal(err)
		}
		if kid := header(t, tok)["kid"]; kid != created[st.signing-1] {
			t.Fatalf("at +%v: signed with K%d, want K%d", st.at, slices.Index(created, kid)+1, st.signing)
		}
		signedBy[tok] = header(t, tok)["kid"]
		// Every JWT signed so far that has not expired (with the skew an
		// upstream allows) still verifies with the served JWKS.
		for old := range signedBy {
			var exp int64
			if err := json.Unmarshal(payload(t, old)["exp"], &exp); err != nil {
				t.Fatal(err)
			}
			if !c.Now().Before(time.Unix(exp, 0).Add(ClockSkew)) {
				continue
			}
			if _, err := verify(t, ks.JWKS(), old, c, jwt.WithAcceptableSkew(ClockSkew)); err != nil {
				t.Fatalf("at +%v: a live JWT signed with K%d no longer verifies: %v", st.at, slices.Index(created, signedBy[old])+1, err)
			}
		}
	}
}

func kidsOf(created []string, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, created[i-1])
	}
	return out
}

// TestBackendJWTSharedStorage: two instances on one file storage directory
// start at once and rotate at once; the storage lock makes one of them
// generate each key, and both sign with the same key at every moment.
func TestBackendJWTSharedStorage(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			dir := t.TempDir()
			c := newClock()
			a := newKeyStore(t, &certmagic.FileStorage{Path: dir}, alg, c, time.Hour)
			b := newKeyStore(t, &certmagic.FileStorage{Path: dir}, alg, c, time.Hour)
			syncBoth := func() {
				var wg sync.WaitGroup
				for _, ks := range []*KeyStore{a, b} {
					wg.Add(1)
					go func() { defer wg.Done(); mustSync(t, ks) }()
				}
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}
			}
			sa := newSigner(t, Config{Issuer: "gw", Keys: a, Now: c.Now})
			sb := newSigner(t, Config{Issuer: "gw", Keys: b, Now: c.Now})
			check := func(when string, wantKeys int) {
				t.Helper()
				ka, kb := kids(t, a.JWKS()), kids(t, b.JWKS())
				if !slices.Equal(ka, kb) || len(ka) != wantKeys {
					t.Fatalf("%s: A publishes %v, B %v; want the same %d keys", when, ka, kb, wantKeys)
				}
				ta, _ := sa.Token(context.Background(), &Caller{Tenant: "t"})
				tb, _ := sb.Token(context.Background(), &Caller{Tenant: "t"})
				if header(t, ta)["kid"] != header(t, tb)["kid"] {
					t.Fatalf("%s: A signs with %s, B with %s", when, header(t, ta)["kid"], header(t, tb)["kid"])
				}
				for _, pair := range [][2][]byte{{a.JWKS(), []byte(tb)}, {b.JWKS(), []byte(ta)}} {
					if _, err := verify(t, pair[0], string(pair[1]), c); err != nil {
						t.Fatalf("%s: a JWT of one instance fails with the other's JWKS: %v", when, err)
					}
				}
			}
			syncBoth()
			check("after a simultaneous start", 1)
			c.Advance(45 * time.Minute)
			syncBoth()
			check("after a simultaneous rotation", 2)
			c.Advance(15 * time.Minute)
			check("when the next key activates (no sync needed)", 2)
		})
	}
}

func TestBackendJWTKeysSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	first := newKeyStore(t, &certmagic.FileStorage{Path: dir}, RS256, c, 0)
	mustSync(t, first)
	again := newKeyStore(t, &certmagic.FileStorage{Path: dir}, RS256, c, 0)
	mustSync(t, again)
	if !slices.Equal(kids(t, first.JWKS()), kids(t, again.JWKS())) {
		t.Fatal("a restarted instance made a new key")
	}
}
