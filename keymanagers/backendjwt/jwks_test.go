package backendjwt

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBackendJWTJWKSMerge(t *testing.T) {
	c := newClock()
	es := newKeyStore(t, newMemStorage(), ES256, c, time.Hour)
	ed := newKeyStore(t, newMemStorage(), EdDSA, c, 24*time.Hour)
	down := newMemStorage()
	down.fail.Store(true)
	broken := newKeyStore(t, down, RS256, c, 0)
	cases := []struct {
		name     string
		stores   []*KeyStore
		wantKeys int
		maxAge   time.Duration
		wantErr  error
	}{
		{name: "no store: an empty set that must not be cached", wantKeys: 0, maxAge: 0},
		{name: "one store syncs on first use", stores: []*KeyStore{es}, wantKeys: 1, maxAge: time.Hour / 16},
		{name: "two algorithms merge; the shorter max-age wins", stores: []*KeyStore{ed, es}, wantKeys: 2, maxAge: time.Hour / 16},
		{name: "a store without keys fails the whole set", stores: []*KeyStore{es, broken}, wantErr: ErrNoKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, maxAge, err := JWKS(context.Background(), tc.stores...)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || body != nil {
					t.Fatalf("JWKS: %v, %q; want %v and no body", err, body, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kids(t, body); len(got) != tc.wantKeys || maxAge != tc.maxAge {
				t.Fatalf("kids %v, max-age %v; want %d keys, %v", got, maxAge, tc.wantKeys, tc.maxAge)
			}
			for _, ks := range tc.stores {
				for _, k := range kids(t, ks.JWKS()) {
					if !slices.Contains(kids(t, body), k) {
						t.Fatalf("merged set lacks %s", k)
					}
				}
			}
		})
	}
}

// TestBackendJWTFirstRequestsGenerateOneKey: many requests arriving before
// the first sync generate and store one key, and all sign with it.
func TestBackendJWTFirstRequestsGenerateOneKey(t *testing.T) {
	c := newClock()
	st := newMemStorage()
	ks := newKeyStore(t, st, ES256, c, 0)
	s := newSigner(t, Config{Issuer: "gw", Keys: ks, Now: c.Now})
	var wg sync.WaitGroup
	kidsSeen := make([]string, 16)
	for i := range kidsSeen {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok, err := s.Token(context.Background(), &Caller{Tenant: "t"})
			if err != nil {
				t.Error(err)
				return
			}
			kidsSeen[i] = header(t, tok)["kid"]
		}(i)
	}
	wg.Wait()
	if st.stores.Load() != 1 {
		t.Fatalf("%d key files written, want 1", st.stores.Load())
	}
	for _, k := range kidsSeen {
		if k != kidsSeen[0] {
			t.Fatalf("requests signed with different keys: %v", kidsSeen)
		}
	}
}
