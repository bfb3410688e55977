package backendjwt

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// header decodes a JWT's protected header.
func header(t testing.TB, tok string) map[string]string {
	t.Helper()
	b, err := b64(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestBackendJWTClaims(t *testing.T) {
	c := newClock()
	ks := newKeyStore(t, newMemStorage(), ES256, c, 0)
	token := claimMap{
		"email":  `"alice@example.com"`,
		"groups": `["admins","ops"]`,
		"dept":   `{"id":7}`,
		"jti":    `"the-client-token-jti"`,
		"at":     `"secret-looking"`,
	}
	cases := []struct {
		name   string
		cfg    Config
		caller Caller
		want   map[string]any // every claim but iat, exp, jti
	}{
		{
			name:   "standard claims and the principal",
			cfg:    Config{Issuer: "https://gw.example", Audience: []string{"orders-svc"}},
			caller: Caller{Tenant: "acme", KeyManager: "okta", Subject: "alice", ClientID: "cid-1", Application: "shop", Scopes: "orders:read orders:write"},
			want: map[string]any{"iss": "https://gw.example", "aud": "orders-svc", "sub": "alice", "tenant": "acme",
				"key_manager": "okta", "client_id": "cid-1", "application": "shop", "scope": "orders:read orders:write"},
		},
		{
			name:   "chosen claims with a WSO2 claimMapping rename; others of the token are left out",
			cfg:    Config{Issuer: "gw", Claims: []string{"email", "groups", "dept"}, ClaimMapping: map[string]string{"groups": "http://wso2.org/claims/role"}},
			caller: Caller{Tenant: "acme", KeyManager: "okta", Subject: "alice", Claims: token},
			want: map[string]any{"iss": "gw", "sub": "alice", "tenant": "acme", "key_manager": "okta",
				"email": "alice@example.com", "http://wso2.org/claims/role": []any{"admins", "ops"}, "dept": map[string]any{"id": float64(7)}},
		},
		{
			name:   "absent chosen claims and empty fields are omitted; two audiences",
			cfg:    Config{Issuer: "gw", Audience: []string{"a", "b"}, Claims: []string{"phone"}},
			caller: Caller{Tenant: "acme", KeyManager: "km", ClientID: "svc", Claims: token},
			want:   map[string]any{"iss": "gw", "aud": []any{"a", "b"}, "tenant": "acme", "key_manager": "km", "client_id": "svc"},
		},
		{
			name:   "strings are JSON-escaped",
			cfg:    Config{Issuer: `gw "1"`},
			caller: Caller{Tenant: "acme", KeyManager: "km", Subject: "a\"b\\c\n\x01\xff"},
			want:   map[string]any{"iss": `gw "1"`, "tenant": "acme", "key_manager": "km", "sub": "a\"b\\c\n\x01\ufffd"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Keys, tc.cfg.Now = ks, c.Now
			s := newSigner(t, tc.cfg)
			tok, err := s.Token(context.Background(), &tc.caller)
			if err != nil {
				t.Fatal(err)
			}
			got, err := verify(t, ks.JWKS(), tok, c)
			if err != nil {
				t.Fatalf("jwx refuses the JWT: %v", err)
			}
			raw := payload(t, tok)
			if string(raw["iat"]) != jsonInt(c.Now().Unix()) || string(raw["exp"]) != jsonInt(c.Now().Add(DefaultTTL).Unix()) {
				t.Errorf("iat/exp = %s/%s, want now and now+%v", raw["iat"], raw["exp"], DefaultTTL)
			}
			if len(raw["jti"]) < 20 {
				t.Errorf("jti = %s, want a random id", raw["jti"])
			}
			var plain map[string]any
			_ = json.Unmarshal(mustJSON(t, raw), &plain)
			for _, k := range []string{"iat", "exp", "jti"} {
				delete(plain, k)
			}
			if !reflect.DeepEqual(plain, tc.want) {
				t.Errorf("claims = %v\nwant     %v", plain, tc.want)
			}
			if got["iss"] != tc.cfg.Issuer {
				t.Errorf("jwx reads iss %v", got["iss"])
			}
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackendJWTAlgorithms(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			ks := newKeyStore(t, newMemStorage(), alg, c, 0)
			s := newSigner(t, Config{Issuer: "gw", Keys: ks, Now: c.Now})
			tok, err := s.Token(context.Background(), &Caller{Tenant: "acme", KeyManager: "km", Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			set, err := jwk.Parse(ks.JWKS())
			if err != nil || set.Len() != 1 {
				t.Fatalf("JWKS: %v (%d keys)", err, set.Len())
			}
			key, _ := set.Key(0)
			tp, err := key.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			h := header(t, tok)
			if h["alg"] != string(alg) || h["typ"] != "JWT" || h["kid"] != base64.RawURLEncoding.EncodeToString(tp) {
				t.Errorf("header %v; want alg %s, typ JWT, kid = RFC 7638 thumbprint", h, alg)
			}
			if key.KeyID() != h["kid"] || key.Algorithm().String() != string(alg) || key.KeyUsage() != "sig" {
				t.Errorf("JWKS key: kid %q alg %q use %q", key.KeyID(), key.Algorithm(), key.KeyUsage())
			}
			if _, hasPrivate := key.(interface{ D() []byte }); hasPrivate {
				t.Error("the JWKS publishes a private key")
			}
			if strings.Contains(string(ks.JWKS()), `"d":`) {
				t.Error("the JWKS holds a private component")
			}
			if _, err := verify(t, ks.JWKS(), tok, c); err != nil {
				t.Fatalf("jwx refuses the JWT: %v", err)
			}
			// A flipped signature bit is refused (the signature is real).
			bad := []byte(tok)
			bad[len(bad)-3] ^= 0x01
			if _, err := jws.Verify(bad, jws.WithKeySet(set)); err == nil {
				t.Error("a corrupted signature verifies")
			}
		})
	}
}

func TestBackendJWTTTLAndExpiry(t *testing.T) {
	cases := []struct {
		ttl     time.Duration
		at      time.Duration // after signing
		wantErr error
	}{
		{ttl: time.Minute, at: 59 * time.Second},
		{ttl: time.Minute, at: 61 * time.Second, wantErr: jwt.ErrTokenExpired()},
		{ttl: 10 * time.Minute, at: 9 * time.Minute},
		{ttl: 10 * time.Minute, at: 11 * time.Minute, wantErr: jwt.ErrTokenExpired()},
	}
	for _, tc := range cases {
		t.Run(tc.ttl.String()+"+"+tc.at.String(), func(t *testing.T) {
			c := newClock()
			ks := newKeyStore(t, newMemStorage(), EdDSA, c, 0)
			s := newSigner(t, Config{Issuer: "gw", TTL: tc.ttl, Keys: ks, Now: c.Now})
			tok, err := s.Token(context.Background(), &Caller{Tenant: "t", KeyManager: "k"})
			if err != nil {
				t.Fatal(err)
			}
			c.Advance(tc.at)
			_, err = verify(t, ks.JWKS(), tok, c)
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("verify after %v: %v, want %v", tc.at, err, tc.wantErr)
			}
		})
	}
}

func TestBackendJWTCacheHitDoesNotResign(t *testing.T) {
	c := newClock()
	st := newMemStorage()
	ks := newKeyStore(t, st, ES256, c, 0)
	cache, err := NewCache(1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	s := newSigner(t, Config{Issuer: "gw", TTL: time.Minute, Claims: []string{"email"}, Keys: ks, Cache: cache, Now: c.Now})
	key := [32]byte{1, 2, 3}
	base := Caller{CacheKey: key, Tenant: "acme", KeyManager: "km", Subject: "alice", Scopes: "a", Claims: claimMap{"email": `"a@x"`}}
	first, err := s.Token(context.Background(), &base)
	if err != nil {
		t.Fatal(err)
	}
	// Every fresh signature has a new jti, so an equal token is a cache hit.
	cases := []struct {
		name    string
		advance time.Duration
		change  func(*Caller)
		same    bool
	}{
		{name: "same principal: cached", same: true},
		{name: "47s later (13s of 60s left): cached", advance: 47 * time.Second, same: true},
		{name: "other effective scopes: signed anew", change: func(c *Caller) { c.Scopes = "a b" }},
		{name: "other tenant: signed anew", change: func(c *Caller) { c.Tenant = "globex" }},
		{name: "other chosen claim value: signed anew", change: func(c *Caller) { c.Claims = claimMap{"email": `"b@x"`} }},
		{name: "no cache key: signed anew", change: func(c *Caller) { c.CacheKey = [32]byte{} }},
		{name: "49s later (under a fifth left): signed anew", advance: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.Advance(tc.advance)
			call := base
			if tc.change != nil {
				tc.change(&call)
			}
			got, err := s.Token(context.Background(), &call)
			if err != nil {
				t.Fatal(err)
			}
			if (got == first) != tc.same {
				t.Fatalf("same token = %v, want %v", got == first, tc.same)
			}
		})
	}
	// A second signer of the same configuration (another route) shares the
	// cached JWTs; one of another configuration does not.
	cur, err := s.Token(context.Background(), &base)
	if err != nil {
		t.Fatal(err)
	}
	twin := newSigner(t, Config{Issuer: "gw", TTL: time.Minute, Claims: []string{"email"}, Keys: ks, Cache: cache, Now: c.Now})
	other := newSigner(t, Config{Issuer: "gw2", TTL: time.Minute, Claims: []string{"email"}, Keys: ks, Cache: cache, Now: c.Now})
	if got, _ := twin.Token(context.Background(), &base); got != cur {
		t.Error("a signer of the same configuration signed anew")
	}
	if got, _ := other.Token(context.Background(), &base); got == cur || !strings.Contains(string(mustJSON(t, payload(t, got)["iss"])), "gw2") {
		t.Error("a signer of another configuration reused a JWT")
	}
}

func TestBackendJWTConfigErrors(t *testing.T) {
	c := newClock()
	ks := newKeyStore(t, newMemStorage(), RS256, c, time.Hour)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no issuer", Config{Keys: ks}, "issuer: is required"},
		{"ttl under the floor", Config{Issuer: "gw", TTL: 29 * time.Second, Keys: ks}, "ttl: 29s is too short"},
		{"ttl longer than the key rotation allows", Config{Issuer: "gw", TTL: 59*time.Minute + time.Second, Keys: ks}, "ttl: 59m1s is too long for keys rotated every 1h0m0s"},
		{"chosen claim lands on a reserved one", Config{Issuer: "gw", Claims: []string{"sub"}, Keys: ks}, `claims: "sub" would overwrite the sub claim`},
		{"rename lands on a reserved one", Config{Issuer: "gw", Claims: []string{"roles"}, ClaimMapping: map[string]string{"roles": "scope"}, Keys: ks}, `would overwrite the scope claim`},
		{"two claims become one", Config{Issuer: "gw", Claims: []string{"a", "b"}, ClaimMapping: map[string]string{"a": "b"}, Keys: ks}, `claims: "a" and "b" both become "b"`},
		{"mapping of a claim not chosen", Config{Issuer: "gw", Claims: []string{"a"}, ClaimMapping: map[string]string{"x": "y"}, Keys: ks}, `claim_mapping: "x" is not one of the chosen claims`},
		{"no key store", Config{Issuer: "gw"}, "needs a key store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSigner(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSigner: %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("ttl at the limits is accepted", func(t *testing.T) {
		for _, ttl := range []time.Duration{MinTTL, time.Hour - ClockSkew} {
			if _, err := NewSigner(Config{Issuer: "gw", TTL: ttl, Keys: ks}); err != nil {
				t.Errorf("ttl %v: %v", ttl, err)
			}
		}
	})
	for _, s := range []string{"HS256", "rs256", "none", "PS256", ""} {
		if _, err := ParseAlgorithm(s); err == nil || !strings.Contains(err.Error(), "unknown algorithm") {
			t.Errorf("ParseAlgorithm(%q) = %v", s, err)
		}
	}
	for _, bad := range []KeyStoreConfig{
		{Algorithm: ES256},
		{Storage: newMemStorage(), Algorithm: "HS256"},
		{Storage: newMemStorage(), Algorithm: ES256, RotateEvery: time.Hour, PublishAhead: time.Hour},
		{Storage: newMemStorage(), Algorithm: ES256, RotateEvery: -time.Hour},
	} {
		if _, err := NewKeyStore(bad); err == nil {
			t.Errorf("NewKeyStore(%+v) accepted", bad)
		}
	}
}

func TestBackendJWTStorageFailures(t *testing.T) {
	c := newClock()
	t.Run("storage down before the first key: ErrNoKey, nothing signed", func(t *testing.T) {
		st := newMemStorage()
		st.fail.Store(true)
		ks := newKeyStore(t, st, ES256, c, 0)
		s := newSigner(t, Config{Issuer: "gw", Keys: ks, Now: c.Now})
		if _, err := s.Token(context.Background(), &Caller{Tenant: "t"}); !errors.Is(err, ErrNoKey) {
			t.Fatalf("Token: %v, want ErrNoKey", err)
		}
		if ks.JWKS() != nil {
			t.Fatal("a JWKS without keys")
		}
	})
	t.Run("storage down after the first key: keeps signing with it", func(t *testing.T) {
		st := newMemStorage()
		ks := newKeyStore(t, st, ES256, c, 0)
		mustSync(t, ks)
		st.fail.Store(true)
		if err := ks.Sync(context.Background()); err == nil {
			t.Fatal("Sync hid a storage failure")
		}
		s := newSigner(t, Config{Issuer: "gw", Keys: ks, Now: c.Now})
		tok, err := s.Token(context.Background(), &Caller{Tenant: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify(t, ks.JWKS(), tok, c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a corrupt key file is reported and left alone", func(t *testing.T) {
		st := newMemStorage()
		st.files[StoragePath(ES256)] = []byte("{not json")
		ks := newKeyStore(t, st, ES256, c, 0)
		err := ks.Sync(context.Background())
		if err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("Sync: %v", err)
		}
		if string(st.files[StoragePath(ES256)]) != "{not json" || st.stores.Load() != 0 {
			t.Fatal("the corrupt file was overwritten (other instances' keys would be lost)")
		}
	})
	t.Run("a key file of another algorithm is refused", func(t *testing.T) {
		st := newMemStorage()
		mustSync(t, newKeyStore(t, st, ES256, c, 0))
		st.files[StoragePath(RS256)] = st.files[StoragePath(ES256)]
		if err := newKeyStore(t, st, RS256, c, 0).Sync(context.Background()); err == nil || !strings.Contains(err.Error(), `holds "ES256" keys`) {
			t.Fatalf("Sync: %v", err)
		}
	})
}
