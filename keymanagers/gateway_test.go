package keymanagers

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
)

func TestAuthenticate_AcceptsValidTokenForEachAsymmetricAlgorithm(t *testing.T) {
	keys := []testKey{
		rsaKey(t, "rsa-a", "rs", "RS256"),
		rsaKey(t, "rsa-a", "ps", "PS256"),
		ecKey(t, "p256-a", "es"),
		edKey(t, "ed-a", "ed"),
	}
	f := newFixture(t, keys...)
	f.add(testTenant, f.def("idp"))
	f.build()
	for _, k := range keys {
		t.Run(k.Alg, func(t *testing.T) {
			p, err := f.auth(mint(t, k, f.claims(), nil))
			checkErr(t, err, nil)
			if p.Subject != "alice" || p.KeyManager != "idp" || p.Issuer != testIssuer {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestAuthenticate_PrincipalFieldsComeFromClaimsAndClaimMapping(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	cases := []struct {
		name       string
		mapping    *ClaimMapping
		claims     map[string]any // changes to the default claims
		wantSub    string
		wantClient string
		wantScopes string
	}{
		{"azp is the client id", nil, map[string]any{"azp": "web-app", "client_id": "other"}, "alice", "web-app", "read write"},
		{"client_id when azp is absent", nil, map[string]any{"azp": nil, "client_id": "svc-7"}, "alice", "svc-7", "read write"},
		{"empty azp falls back to client_id", nil, map[string]any{"azp": "", "client_id": "svc-8"}, "alice", "svc-8", "read write"},
		{"no client id at all", nil, map[string]any{"azp": nil}, "alice", "", "read write"},
		{"scope string is split on SP only (a tab does not separate)", nil, map[string]any{"scope": "a  b\tc\u00a0d e"}, "alice", "client-1", "a e"},
		{"scp array", nil, map[string]any{"scope": nil, "scp": []string{"orders:read", "orders:write"}}, "alice", "client-1", "orders:read orders:write"},
		{"scope wins over scp", nil, map[string]any{"scope": "s1", "scp": []string{"p1"}}, "alice", "client-1", "s1"},
		{"scp array elements with spaces are dropped", nil, map[string]any{"scope": nil, "scp": []string{"ok", "evil admin"}}, "alice", "client-1", "ok"},
		{"no scopes", nil, map[string]any{"scope": nil}, "alice", "client-1", ""},
		{"numeric subject is kept in JSON form", nil, map[string]any{"sub": 12345}, "12345", "client-1", "read write"},
		{
			"mapping consumer_key=cid and scopes=scp",
			&ClaimMapping{ConsumerKey: "cid", Scopes: "scp"},
			map[string]any{"cid": "consumer-9", "azp": "web-app", "scope": "ignored", "scp": []string{"x", "y"}},
			"alice", "consumer-9", "x y",
		},
		{
			"mapped consumer_key absent falls back to azp",
			&ClaimMapping{ConsumerKey: "cid"},
			map[string]any{"azp": "web-app"},
			"alice", "web-app", "read write",
		},
		{
			"mapped scopes claim absent means no scopes (no fallback)",
			&ClaimMapping{Scopes: "permissions"},
			map[string]any{"scope": "read"},
			"alice", "client-1", "",
		},
		{
			"mapping subject=email",
			&ClaimMapping{Subject: "email"},
			map[string]any{"email": "alice@example.com"},
			"alice@example.com", "client-1", "read write",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, k)
			def := f.def("idp")
			def.Claims = tc.mapping
			f.add(testTenant, def)
			f.build()
			claims := with(f.claims(), tc.claims)
			p, err := f.auth(craftWith(t, k, nil, claims))
			checkErr(t, err, nil)
			if p.Subject != tc.wantSub || p.ClientID != tc.wantClient || p.Scopes != tc.wantScopes {
				t.Fatalf("got sub=%q client=%q scopes=%q, want %q %q %q", p.Subject, p.ClientID, p.Scopes, tc.wantSub, tc.wantClient, tc.wantScopes)
			}
			if p.Tenant != testTenant || p.KeyManager != "idp" || p.KeyManagerTenant != testTenant || p.Issuer != testIssuer {
				t.Fatalf("principal identity = %+v", p)
			}
			// exp is now+1h, beyond the cache's 15m MaxTTL: ExpiresAt is capped.
			wantExp := min(claims["exp"].(int64)+int64(DefaultClockSkew/time.Second), f.clock.Now().Add(DefaultMaxTTL).Unix())
			if p.ExpiresAt != wantExp {
				t.Fatalf("ExpiresAt = %d, want %d", p.ExpiresAt, wantExp)
			}
		})
	}
}

func TestAuthenticate_PrincipalExpiryIsExpPlusSkewWhenBelowCacheMaxTTL(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	exp := f.clock.Now().Add(5 * time.Minute).Unix()
	p, err := f.auth(mint(t, k, with(f.claims(), map[string]any{"exp": exp}), nil))
	checkErr(t, err, nil)
	if want := exp + int64(DefaultClockSkew/time.Second); p.ExpiresAt != want {
		t.Fatalf("ExpiresAt = %d, want exp+skew %d", p.ExpiresAt, want)
	}
}

func TestAuthenticate_PrincipalExpiryIsCappedByCacheMaxTTL(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	claims := with(f.claims(), map[string]any{"exp": f.clock.Now().Add(48 * time.Hour).Unix()})
	p, err := f.auth(mint(t, k, claims, nil))
	checkErr(t, err, nil)
	if want := f.clock.Now().Add(DefaultMaxTTL).Unix(); p.ExpiresAt != want {
		t.Fatalf("ExpiresAt = %d, want now+MaxTTL %d", p.ExpiresAt, want)
	}
}

func TestAuthenticate_ProjectedClaimsAreKeptAndOthersDropped(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	g.SetProjectedClaims([]string{"tenant_role", "groups", "tenant_role"})
	claims := with(f.claims(), map[string]any{"tenant_role": "admin", "groups": []string{"a", "b"}, "secret_stuff": "x"})
	p, err := f.auth(mint(t, k, claims, nil))
	checkErr(t, err, nil)
	if v, ok := p.Claim("tenant_role"); !ok || v != "admin" {
		t.Fatalf("Claim(tenant_role) = %q %v", v, ok)
	}
	if v, ok := p.ClaimRaw("groups"); !ok || v != `["a","b"]` {
		t.Fatalf("ClaimRaw(groups) = %q %v", v, ok)
	}
	if _, ok := p.Claim("groups"); ok {
		t.Fatalf("Claim(groups) of an array must report !ok")
	}
	if _, ok := p.Claim("secret_stuff"); ok {
		t.Fatalf("a claim that is not projected must not be kept")
	}
	if v, _ := p.Claim("iss"); v != testIssuer {
		t.Fatalf("Claim(iss) = %q", v)
	}
	if !p.HasScope("write") || p.HasScope("wri") || p.HasScope("") {
		t.Fatalf("HasScope is wrong for scopes %q", p.Scopes)
	}
	if got := p.ScopeList(); len(got) != 2 || got[0] != "read" || got[1] != "write" {
		t.Fatalf("ScopeList = %q", got)
	}
}

func TestAuthenticate_TimeClaimsAreCheckedWithClockSkew(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp")) // default clock_skew 30s
	f.build()
	now := f.clock.Now().Unix()
	cases := []struct {
		name    string
		changes map[string]any // raw JSON values (strings are JSON text)
		want    *Error
	}{
		{"expired beyond clock skew is ErrExpired", map[string]any{"exp": now - 31}, ErrExpired},
		{"expired long ago is ErrExpired", map[string]any{"exp": now - 86400, "iat": now - 90000, "nbf": now - 90000}, ErrExpired},
		{"expired within clock skew is accepted", map[string]any{"exp": now - 10}, nil},
		{"expired exactly at the skew boundary is accepted", map[string]any{"exp": now - 30}, nil},
		{"nbf beyond skew in the future is ErrNotYetValid", map[string]any{"nbf": now + 120}, ErrNotYetValid},
		{"nbf within skew is accepted", map[string]any{"nbf": now + 20}, nil},
		{"iat beyond skew in the future is ErrIssuedInFuture", map[string]any{"iat": now + 120}, ErrIssuedInFuture},
		{"iat within skew is accepted", map[string]any{"iat": now + 20}, nil},
		{"missing exp is ErrNoExpiry", map[string]any{"exp": nil}, ErrNoExpiry},
		{"exp as string is ErrNoExpiry", map[string]any{"exp": json.RawMessage(`"4102444800"`)}, ErrNoExpiry},
		{"exp negative is ErrNoExpiry", map[string]any{"exp": -1}, ErrNoExpiry},
		{"exp huge (1e300) is ErrNoExpiry", map[string]any{"exp": json.RawMessage(`1e300`)}, ErrNoExpiry},
		{"exp beyond 1e15 is ErrNoExpiry", map[string]any{"exp": json.RawMessage(`9223372036854775807`)}, ErrNoExpiry},
		{"exp null is ErrNoExpiry", map[string]any{"exp": json.RawMessage(`null`)}, ErrNoExpiry},
		{"exp boolean is ErrNoExpiry", map[string]any{"exp": true}, ErrNoExpiry},
		{"exp array is ErrNoExpiry", map[string]any{"exp": []int64{now + 60}}, ErrNoExpiry},
		{"exp float (fractional NumericDate) is accepted", map[string]any{"exp": json.RawMessage(jsonNum(float64(now) + 3600.5))}, nil},
		{"exp in exponent notation is accepted", map[string]any{"exp": json.RawMessage(`4.1e9`)}, nil},
		{"nbf as string is malformed", map[string]any{"nbf": "yesterday"}, ErrMalformedToken},
		{"iat as object is malformed", map[string]any{"iat": map[string]int{"t": 1}}, ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := craftWith(t, k, nil, with(f.claims(), tc.changes))
			_, err := f.auth(tok)
			checkErr(t, err, tc.want)
		})
	}
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestAuthenticate_ExpiredTokenIsKindExpiredAfterClockMovesOn(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	def := f.def("idp")
	def.ClockSkew = Duration(5 * time.Second)
	f.add(testTenant, def)
	f.build()
	claims := with(f.claims(), map[string]any{"exp": f.clock.Now().Add(time.Minute).Unix()})
	tok := mint(t, k, claims, nil)
	_, err := f.auth(tok)
	checkErr(t, err, nil)
	f.clock.Advance(time.Minute + 6*time.Second)
	_, err = f.auth(tok)
	checkErr(t, err, ErrExpired)
	if Classify(err).Kind != KindExpired {
		t.Fatalf("kind = %d", Classify(err).Kind)
	}
}

func TestAuthenticate_AudienceMustMatchOneConfiguredAudience(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	def := f.def("idp")
	def.Audiences = []string{"api://orders", "api://billing"}
	f.add(testTenant, def)
	// A Key Manager without audiences (another issuer) accepts any aud.
	open := f.def("open")
	open.Issuer = "https://open.example.com"
	f.add(testTenant, open)
	f.build()
	cases := []struct {
		name string
		iss  string
		aud  any
		want *Error
	}{
		{"matching string aud", testIssuer, "api://billing", nil},
		{"wrong string aud", testIssuer, "api://other", ErrWrongAudience},
		{"array aud containing a match", testIssuer, []string{"api://x", "api://orders"}, nil},
		{"array aud without a match", testIssuer, []string{"api://x", "api://y"}, ErrWrongAudience},
		{"empty array aud", testIssuer, []string{}, ErrWrongAudience},
		{"missing aud", testIssuer, nil, ErrWrongAudience},
		{"aud match is case-sensitive", testIssuer, "API://ORDERS", ErrWrongAudience},
		{"aud as number is malformed", testIssuer, 42, ErrMalformedToken},
		{"aud array of numbers is malformed", testIssuer, []int{1}, ErrMalformedToken},
		{"no audiences configured accepts any aud", "https://open.example.com", "api://anything", nil},
		{"no audiences configured accepts no aud", "https://open.example.com", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := with(f.claims(), map[string]any{"iss": tc.iss, "aud": nil})
			if tc.aud != nil {
				claims["aud"] = tc.aud
			}
			_, err := f.auth(craftWith(t, k, nil, claims))
			checkErr(t, err, tc.want)
		})
	}
}

func TestAuthenticate_IssuerMustExactlyMatchAKeyManager(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	slash := f.def("slash")
	slash.Issuer = "https://slash.example.com/"
	f.add(testTenant, f.def("idp"))
	f.add(testTenant, slash)
	f.build()
	cases := []struct {
		name string
		iss  any
		want *Error
	}{
		{"configured issuer", testIssuer, nil},
		{"unknown issuer is ErrUnknownIssuer", "https://evil.example.com", ErrUnknownIssuer},
		{"issuer with an added trailing slash is another issuer", testIssuer + "/", ErrUnknownIssuer},
		{"issuer without the configured trailing slash is another issuer", "https://slash.example.com", ErrUnknownIssuer},
		{"issuer with the configured trailing slash", "https://slash.example.com/", nil},
		{"issuer differing in case is another issuer", strings.ToUpper(testIssuer), ErrUnknownIssuer},
		{"empty issuer", "", ErrUnknownIssuer},
		{"missing issuer", nil, ErrUnknownIssuer},
		{"issuer as number is malformed", 7, ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := with(f.claims(), map[string]any{"iss": tc.iss})
			_, err := f.auth(craftWith(t, k, nil, claims))
			checkErr(t, err, tc.want)
		})
	}
}

func TestAuthenticate_RefusesTamperedTokens(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	ek := ecKey(t, "p256-a", "e1")
	f := newFixture(t, k, ek)
	f.add(testTenant, f.def("idp"))
	f.build()
	good := mint(t, k, f.claims(), nil)
	parts := strings.Split(good, ".")

	// Payload changed (sub: alice → admin) with the original signature.
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, json.Unmarshal(raw, &payload))
	payload["sub"] = "admin"
	tamperedPayload := parts[0] + "." + b64e(jsonOf(t, payload)) + "." + parts[2]

	// One signature byte flipped.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0x01
	tamperedSig := parts[0] + "." + parts[1] + "." + b64e(sig)

	// Header changed (kid kept, typ changed) keeps the old signature.
	var hdr map[string]any
	raw, _ = base64.RawURLEncoding.DecodeString(parts[0])
	must(t, json.Unmarshal(raw, &hdr))
	hdr["typ"] = "at+jwt"
	tamperedHeader := b64e(jsonOf(t, hdr)) + "." + parts[1] + "." + parts[2]

	// ES256 signature flipped, and truncated.
	egood := mint(t, ek, f.claims(), nil)
	eparts := strings.Split(egood, ".")
	esig, _ := base64.RawURLEncoding.DecodeString(eparts[2])
	esig[0] ^= 0x80
	eTampered := eparts[0] + "." + eparts[1] + "." + b64e(esig)
	eShort := eparts[0] + "." + eparts[1] + "." + b64e(esig[:63])

	// Signed by a key the Key Manager never published, claiming its kid.
	attacker := rsaKey(t, "rsa-b", "k1", "RS256")
	forged := mint(t, attacker, f.claims(), nil)

	cases := []struct {
		name, token string
		want        *Error
	}{
		{"untampered token (control)", good, nil},
		{"tampered payload", tamperedPayload, ErrBadSignature},
		{"tampered signature", tamperedSig, ErrBadSignature},
		{"tampered header", tamperedHeader, ErrBadSignature},
		{"tampered ES256 signature", eTampered, ErrBadSignature},
		{"truncated ES256 signature", eShort, ErrBadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrBadSignature},
		{"signature of another key under the published kid", forged, ErrBadSignature},
		{"padded base64 signature is malformed", parts[0] + "." + parts[1] + "." + base64.URLEncoding.EncodeToString(sig), ErrMalformedToken},
		{"std-base64 payload is malformed", parts[0] + "." + strings.ReplaceAll(parts[1], "-", "+") + "+." + parts[2], ErrMalformedToken},
		{"header that is not JSON is malformed", b64e([]byte("not json")) + "." + parts[1] + "." + parts[2], ErrMalformedToken},
		{"header that is a JSON array is malformed", b64e([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2], ErrMalformedToken},
		{"payload that is a JSON array is malformed", parts[0] + "." + b64e([]byte(`[1,2]`)) + "." + parts[2], ErrMalformedToken},
		{"payload that is not JSON is malformed", parts[0] + "." + b64e([]byte(`{"iss":`)) + "." + parts[2], ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth(tc.token)
			checkErr(t, err, tc.want)
		})
	}
}

func TestAuthenticate_RefusesAlgNoneInAnySpelling(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	payload := b64e(jsonOf(t, f.claims()))
	good := mint(t, k, f.claims(), nil)
	goodSig := good[strings.LastIndexByte(good, '.')+1:]
	for _, alg := range []any{"none", "NONE", "None", "nOnE", "", nil} {
		for _, sig := range []string{"", goodSig} {
			name := "alg=" + jsonNumOrString(alg) + "/sig=" + map[bool]string{true: "empty", false: "present"}[sig == ""]
			t.Run(name, func(t *testing.T) {
				h := map[string]any{"typ": "JWT", "kid": "k1"}
				if alg != nil {
					h["alg"] = alg
				}
				tok := b64e(jsonOf(t, h)) + "." + payload + "." + sig
				_, err := f.auth(tok)
				checkErr(t, err, ErrAlgorithm)
			})
		}
	}
}

func jsonNumOrString(v any) string {
	if v == nil {
		return "absent"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAuthenticate_RefusesHS256SignedWithThePublicKeyAsSecret(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	pub := k.Public().(*rsa.PublicKey)
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	must(t, err)
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	jwkJSON, err := json.Marshal(jwkOf(t, k))
	must(t, err)
	secrets := map[string][]byte{
		"PKIX PEM":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS1 PEM":      pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"PKIX DER":       pkix,
		"PKCS1 DER":      pkcs1,
		"JWK JSON":       jwkJSON,
		"modulus n only": pub.N.Bytes(),
	}
	f := newFixture(t, k)
	// "idp": defaults (asymmetric algorithms only).
	f.add(testTenant, f.def("idp"))
	// "hmac": HS256 allowed through a configured shared secret, plus the
	// same RSA key in its JWKS: the public key must still not be the secret.
	hdef := f.def("hmac")
	hdef.Issuer = "https://hmac.example.com"
	hdef.SharedSecret = strings.Repeat("s", 40)
	f.add(testTenant, hdef)
	f.build()
	for name, secret := range secrets {
		for _, kid := range []string{"k1", ""} {
			t.Run(name+"/kid="+kid+"/no shared secret", func(t *testing.T) {
				hk := testKey{KID: kid, Alg: "HS256", Secret: secret}
				_, err := f.auth(craftWith(t, hk, nil, f.claims()))
				checkErr(t, err, ErrAlgorithm)
			})
			t.Run(name+"/kid="+kid+"/with shared secret", func(t *testing.T) {
				hk := testKey{KID: kid, Alg: "HS256", Secret: secret}
				claims := with(f.claims(), map[string]any{"iss": "https://hmac.example.com"})
				_, err := f.auth(craftWith(t, hk, nil, claims))
				checkErr(t, err, ErrBadSignature)
			})
		}
	}
}

func TestAuthenticate_AcceptsHMACWithTheConfiguredSharedSecretOnly(t *testing.T) {
	secret := []byte(strings.Repeat("0123456789abcdef", 3))
	f := newFixture(t)
	// Shared secret only: no JWKS at all.
	f.add(testTenant, Definition{Name: "hmac", Issuer: testIssuer, SharedSecret: string(secret)})
	f.build()
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg+" with the shared secret is accepted", func(t *testing.T) {
			p, err := f.auth(mint(t, testKey{Alg: alg, Secret: secret}, f.claims(), nil))
			checkErr(t, err, nil)
			if p.KeyManager != "hmac" {
				t.Fatalf("KeyManager = %q", p.KeyManager)
			}
		})
		t.Run(alg+" with another secret is ErrBadSignature", func(t *testing.T) {
			other := append(bytes.Clone(secret), 'x')
			_, err := f.auth(mint(t, testKey{Alg: alg, Secret: other}, f.claims(), nil))
			checkErr(t, err, ErrBadSignature)
		})
	}
	// A Key Manager with no key source can never verify an asymmetric
	// signature: such tokens are invalid (401), not a Key Manager outage
	// (503) that any client could trigger at will. See the report.
	t.Run("RS256 on a shared-secret-only Key Manager is invalid, not unavailable", func(t *testing.T) {
		_, err := f.auth(mint(t, rsaKey(t, "rsa-a", "k1", "RS256"), f.claims(), nil))
		if err == nil || Classify(err).Kind != KindInvalid {
			t.Fatalf("got %v (kind %d), want a KindInvalid error such as ErrAlgorithm or ErrUnknownKey", err, Classify(err).Kind)
		}
	})
}

func TestAuthenticate_RefusesAlgorithmsOutsideAllowedAlgorithms(t *testing.T) {
	rk := rsaKey(t, "rsa-a", "rk", "RS256")
	ek := ecKey(t, "p256-a", "ek")
	f := newFixture(t, rk, ek)
	def := f.def("idp")
	def.AllowedAlgorithms = []string{"ES256"}
	f.add(testTenant, def)
	f.build()
	_, err := f.auth(mint(t, rk, f.claims(), nil))
	checkErr(t, err, ErrAlgorithm)
	_, err = f.auth(mint(t, ek, f.claims(), nil))
	checkErr(t, err, nil)
	// An unknown alg name is refused the same way.
	_, err = f.auth(craftWith(t, rk, map[string]any{"alg": "RS1024"}, f.claims()))
	checkErr(t, err, ErrAlgorithm)
}

func TestAuthenticate_RefusesKeyWhoseTypeOrJWKAlgDoesNotMatchHeaderAlg(t *testing.T) {
	ek := ecKey(t, "p256-a", "ec-key")
	rk := rsaKey(t, "rsa-a", "rsa-key", "RS256")
	edk := edKey(t, "ed-a", "ed-key")
	f := newFixture(t, ek, rk, edk)
	f.add(testTenant, f.def("idp"))
	f.build()
	cases := []struct {
		name  string
		token string
	}{
		// RS256 header, kid of the EC key, signed with an RSA key.
		{"RS256 with the kid of an EC key", craftWith(t, rsaKey(t, "rsa-b", "ec-key", "RS256"), nil, f.claims())},
		// ES256 header, kid of the RSA key.
		{"ES256 with the kid of an RSA key", craftWith(t, ecKey(t, "p256-b", "rsa-key"), nil, f.claims())},
		// The JWK pins alg RS256; PS256 with the same RSA key is refused.
		{"PS256 with a key whose JWK says RS256", craftWith(t, testKey{KID: "rsa-key", Alg: "PS256", Priv: rk.Priv}, nil, f.claims())},
		// EdDSA header with the kid of the EC key.
		{"EdDSA with the kid of an EC key", craftWith(t, testKey{KID: "ec-key", Alg: "EdDSA", Priv: edk.Priv}, nil, f.claims())},
		// ES384 header with a P-256 key.
		{"ES384 with a P-256 key", craftWith(t, testKey{KID: "ec-key", Alg: "ES384", Priv: poolKey(t, "p384-a")}, nil, f.claims())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth(tc.token)
			checkErr(t, err, ErrUnknownKey)
		})
	}
}

func TestAuthenticate_TokenWithoutKidUsesTheOnlyMatchingKeyOrIsRefused(t *testing.T) {
	rk := rsaKey(t, "rsa-a", "r1", "RS256")
	rk2 := rsaKey(t, "rsa-b", "r2", "RS256")
	ek := ecKey(t, "p256-a", "e1")
	t.Run("one key per algorithm family: accepted", func(t *testing.T) {
		f := newFixture(t, rk, ek)
		f.add(testTenant, f.def("idp"))
		f.build()
		_, err := f.auth(craftWith(t, rk, map[string]any{"kid": nil}, f.claims()))
		checkErr(t, err, nil)
	})
	t.Run("two RSA keys: ambiguous, refused", func(t *testing.T) {
		f := newFixture(t, rk, rk2)
		f.add(testTenant, f.def("idp"))
		f.build()
		_, err := f.auth(craftWith(t, rk, map[string]any{"kid": nil}, f.claims()))
		checkErr(t, err, ErrUnknownKey)
	})
}

func TestAuthenticate_RefusesCritHeader(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	cases := []struct {
		name string
		crit any
		want *Error
	}{
		{"crit naming exp", []string{"exp"}, ErrCritHeader},
		{"crit b64 (RFC 7797)", []string{"b64"}, ErrCritHeader},
		{"empty crit list", []string{}, ErrCritHeader},
		{"crit as a string", "exp", ErrCritHeader},
		{"crit null is no crit", json.RawMessage("null"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth(craftWith(t, k, map[string]any{"crit": tc.crit}, f.claims()))
			checkErr(t, err, tc.want)
		})
	}
	t.Run("crit set through jwx", func(t *testing.T) {
		_, err := f.auth(mint(t, k, f.claims(), map[string]any{"crit": []string{"exp"}}))
		checkErr(t, err, ErrCritHeader)
	})
}

func TestAuthenticate_RefusesJWEAndOpaqueTokens(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	jweHeader := b64e([]byte(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k1"}`))
	cases := []struct {
		name, token string
		want        *Error
	}{
		{"JWE compact (5 parts)", jweHeader + ".ZW5jcnlwdGVka2V5.aXY.Y2lwaGVydGV4dA.dGFn", ErrEncryptedToken},
		{"5 empty parts", "....", ErrEncryptedToken},
		{"opaque reference token", "2YotnFZFEjr1zCsicMWpAA", ErrOpaqueToken},
		{"opaque with one dot", "abc.def", ErrOpaqueToken},
		{"opaque with three dots", "a.b.c.d", ErrOpaqueToken},
		{"six parts", "a.b.c.d.e.f", ErrOpaqueToken},
		{"uuid", "550e8400-e29b-41d4-a716-446655440000", ErrOpaqueToken},
		{"three parts with characters a bearer token cannot hold", "a*b.c*d.e*f", ErrTokenSyntax},
		{"three parts that are not base64url", "a+b.c+d.e+f", ErrMalformedToken},
		{"two dots only", "..", ErrMalformedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth(tc.token)
			checkErr(t, err, tc.want)
		})
	}
}

func TestAuthenticate_NeverFetchesJKUX5UOrTrustsX5C(t *testing.T) {
	legit := rsaKey(t, "rsa-a", "k1", "RS256")
	attacker := rsaKey(t, "rsa-b", "attacker-1", "RS256")
	// The attacker's server publishes the attacker key, and counts.
	evil := newJWKSServer(t, attacker)
	f := newFixture(t, legit)
	f.add(testTenant, f.def("idp"))
	f.build()
	f.clock.Advance(time.Hour - time.Minute) // past the refresh floor: unknown kids may refetch the real JWKS
	legitHits := f.jwks.Hits.Load()

	cert := fakeidp.SelfSigned(t, attacker.Priv, "attacker", false)
	jku := map[string]any{"jku": evil.JWKSURL()}
	x5u := map[string]any{"x5u": evil.URL + "/cert.pem"}
	x5c := map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(cert)}}
	inlineJWK := map[string]any{"jwk": json.RawMessage(mustJSON(t, jwkOf(t, attacker)))}
	stolenKid := testKey{KID: "k1", Alg: "RS256", Priv: attacker.Priv}
	cases := []struct {
		name  string
		token string
		want  *Error
	}{
		{"legit token with jku is judged by the KM's JWKS", craftWith(t, legit, jku, f.claims()), nil},
		{"legit token with x5u is judged by the KM's JWKS", craftWith(t, legit, x5u, f.claims()), nil},
		{"attacker kid with jku to the attacker's JWKS", craftWith(t, attacker, jku, f.claims()), ErrUnknownKey},
		{"attacker kid with x5u", craftWith(t, attacker, x5u, f.claims()), ErrUnknownKey},
		{"attacker kid with x5c", craftWith(t, attacker, x5c, f.claims()), ErrUnknownKey},
		{"attacker kid with an inline jwk", craftWith(t, attacker, inlineJWK, f.claims()), ErrUnknownKey},
		{"stolen kid with jku", craftWith(t, stolenKid, jku, f.claims()), ErrBadSignature},
		{"stolen kid with x5c", craftWith(t, stolenKid, x5c, f.claims()), ErrBadSignature},
		{"no kid with jku and x5c", craftWith(t, attacker, map[string]any{"kid": nil, "jku": evil.JWKSURL(), "x5c": x5c["x5c"]}, f.claims()), ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth(tc.token)
			checkErr(t, err, tc.want)
		})
	}
	if n := evil.Hits.Load(); n != 0 {
		t.Fatalf("the attacker's server was fetched %d times", n)
	}
	// Unknown kids may have caused one (floored) refetch of the real JWKS.
	if d := f.jwks.Hits.Load() - legitHits; d > 1 {
		t.Fatalf("real JWKS fetched %d times for unknown kids, want at most 1", d)
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	must(tb, err)
	return b
}

func TestAuthenticate_TenantsAreIsolated(t *testing.T) {
	ka := rsaKey(t, "rsa-a", "ka", "RS256")
	kb := rsaKey(t, "rsa-b", "kb", "RS256")
	f := newFixture(t, ka)
	jwksB := newJWKSServer(t, kb)
	f.add("tenant-a", Definition{Name: "idp", Issuer: "https://a.example.com", JWKSURL: f.jwks.JWKSURL()})
	f.add("tenant-b", Definition{Name: "idp", Issuer: "https://b.example.com", JWKSURL: jwksB.JWKSURL()})
	// tenant-c trusts the same issuer string as tenant-a, with other keys.
	f.add("tenant-c", Definition{Name: "idp", Issuer: "https://a.example.com", JWKSURL: jwksB.JWKSURL()})
	g := f.build()
	ctx := context.Background()

	tokA := mint(t, ka, claimsAt("https://a.example.com", f.clock.Now()), nil)
	p, err := g.Authenticate(ctx, "tenant-a", nil, tokA)
	checkErr(t, err, nil)
	if p.Tenant != "tenant-a" || p.KeyManagerTenant != "tenant-a" {
		t.Fatalf("principal = %+v", p)
	}
	// Now cached for tenant-a; tenant-b and tenant-c must still refuse it.
	_, err = g.Authenticate(ctx, "tenant-b", nil, tokA)
	checkErr(t, err, ErrUnknownIssuer)
	_, err = g.Authenticate(ctx, "tenant-c", nil, tokA)
	checkErr(t, err, ErrUnknownKey)
	// And tenant-a still accepts it afterwards.
	_, err = g.Authenticate(ctx, "tenant-a", nil, tokA)
	checkErr(t, err, nil)
}

func TestAuthenticate_GlobalKeyManagerServesEveryTenant(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(GlobalTenant, f.def("corp-idp"))
	f.tenants["t1"] = nil
	f.tenants["t2"] = nil
	g := f.build()
	tok := mint(t, k, f.claims(), nil)
	for _, tenant := range []string{"t1", "t2", "t1"} {
		p, err := g.Authenticate(context.Background(), tenant, nil, tok)
		checkErr(t, err, nil)
		if p.Tenant != tenant || p.KeyManager != "corp-idp" || p.KeyManagerTenant != GlobalTenant {
			t.Fatalf("principal for %s = %+v", tenant, p)
		}
	}
	if _, err := g.Authenticate(context.Background(), GlobalTenant, nil, tok); !errorsIs(err, ErrUnknownTenant) {
		t.Fatalf("the global pseudo-tenant must not be addressable: %v", err)
	}
}

func TestAuthenticate_RouteKeyManagerListRestrictsAcceptedKeyManagers(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	other := f.def("partner")
	other.Issuer = "https://partner.example.com"
	f.add(testTenant, other)
	g := f.build()
	ctx := context.Background()
	tok := mint(t, k, f.claims(), nil)
	cases := []struct {
		name  string
		route *Route
		want  *Error
	}{
		{"route naming only another Key Manager refuses (fresh)", &Route{KeyManagers: []string{"partner"}}, ErrNotAccepted},
		{"nil route accepts", nil, nil},
		{"empty route accepts", &Route{}, nil},
		{"route naming the Key Manager accepts", &Route{KeyManagers: []string{"partner", "idp"}}, nil},
		{"route naming only another Key Manager refuses (cached)", &Route{KeyManagers: []string{"partner"}}, ErrNotAccepted},
		{"route naming an unknown Key Manager refuses", &Route{KeyManagers: []string{"nope"}}, ErrNotAccepted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Authenticate(ctx, testTenant, tc.route, tok)
			checkErr(t, err, tc.want)
		})
	}
}

func TestAuthenticate_UnknownTenantAndEmptyToken(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	tok := mint(t, k, f.claims(), nil)
	cases := []struct {
		name, tenant, token string
		want                *Error
		kind                Kind
	}{
		{"unknown tenant is ErrUnknownTenant", "nobody", tok, ErrUnknownTenant, KindUnknownTenant},
		{"unknown tenant wins over an empty token", "nobody", "", ErrUnknownTenant, KindUnknownTenant},
		{"empty tenant name is unknown", "", tok, ErrUnknownTenant, KindUnknownTenant},
		{"empty token is ErrNoToken", testTenant, "", ErrNoToken, KindMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Authenticate(context.Background(), tc.tenant, nil, tc.token)
			checkErr(t, err, tc.want)
			if Classify(err).Kind != tc.kind {
				t.Fatalf("kind %d, want %d", Classify(err).Kind, tc.kind)
			}
		})
	}
}

func TestAuthenticate_DisabledKeyManagerAcceptsNoTokens(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	def := f.def("idp")
	off := false
	def.Enabled = &off
	f.add(testTenant, def)
	f.build()
	_, err := f.auth(mint(t, k, f.claims(), nil))
	checkErr(t, err, ErrUnknownIssuer)
}

func TestAuthenticate_RequireATJWTRefusesOtherTypes(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	def := f.def("idp")
	def.RequireATJWT = true
	f.add(testTenant, def)
	f.build()
	for _, tc := range []struct {
		typ  any
		want *Error
	}{
		{"at+jwt", nil},
		{"application/at+jwt", nil},
		{"AT+JWT", nil},
		{"JWT", ErrWrongType},
		{nil, ErrWrongType},
	} {
		t.Run(jsonNumOrString(tc.typ), func(t *testing.T) {
			_, err := f.auth(craftWith(t, k, map[string]any{"typ": tc.typ}, f.claims()))
			checkErr(t, err, tc.want)
		})
	}
}

// JSON member names are case-sensitive (RFC 8259 §8.3, RFC 7519 §10.1.1):
// "ISS" is not "iss" and "ALG" is not "alg". encoding/json folds case when
// decoding into structs, which parseCompact (jwtHeader) and peekIssuer rely
// on. See the report: these subtests fail until that is fixed.
func TestAuthenticate_HeaderAndClaimNamesAreCaseSensitive(t *testing.T) {
	ka := rsaKey(t, "rsa-a", "ka", "RS256")
	kb := rsaKey(t, "rsa-b", "kb", "RS256")
	f := newFixture(t, ka) // the trusted Key Manager publishes ka only
	f.add(testTenant, f.def("trusted"))
	partnerJWKS := newJWKSServer(t, kb) // the partner publishes kb only
	f.add(testTenant, Definition{Name: "partner", Issuer: "https://partner.example.com", JWKSURL: partnerJWKS.JWKSURL()})
	f.build()

	t.Run("payload with ISS but no iss has no issuer", func(t *testing.T) {
		claims := with(f.claims(), map[string]any{"iss": nil, "ISS": testIssuer})
		p, err := f.auth(craftWith(t, ka, nil, claims))
		if err == nil {
			t.Fatalf("accepted a token without iss as issued by %q (key manager %q)", p.Issuer, p.KeyManager)
		}
		checkErr(t, err, ErrUnknownIssuer)
	})
	t.Run("ISS after iss does not override the issuer", func(t *testing.T) {
		// Signed by the partner's key, claiming iss = the trusted issuer,
		// with a trailing "ISS" naming the partner. Its iss is the trusted
		// issuer, so the trusted Key Manager's keys must judge it (and
		// refuse it). The gateway instead reads ISS, picks the partner and
		// accepts a token whose iss claim says "trusted".
		payload := `{"iss":"` + testIssuer + `","sub":"alice","exp":` + itoa(f.clock.Now().Add(time.Hour).Unix()) + `,"ISS":"https://partner.example.com"}`
		p, err := f.auth(craftWith(t, kb, nil, payload))
		if err == nil {
			t.Fatalf("accepted a token whose iss is %q as issued by %q (key manager %q)", testIssuer, p.Issuer, p.KeyManager)
		}
		checkErr(t, err, ErrUnknownKey)
	})
	t.Run("header with ALG but no alg has no algorithm", func(t *testing.T) {
		_, err := f.auth(craftWith(t, ka, map[string]any{"alg": nil, "ALG": "RS256"}, f.claims()))
		checkErr(t, err, ErrAlgorithm)
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// appendStr (principal.go) truncates any field longer than 0xffff bytes
// when the result is encoded, so the principal can carry a scope (or a
// subject) the token does not have. See the report.
func TestAuthenticate_PrincipalNeverCarriesATruncatedScopeOrSubject(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	// 65529 bytes of filler, then " administrator": the first 0xffff bytes
	// end in " admin".
	scope := strings.Repeat("x", 65529) + " administrator"
	sub := strings.Repeat("s", 0xffff) + "-victim"
	claims := with(f.claims(), map[string]any{"scope": scope, "sub": sub})
	p, err := f.auth(mint(t, k, claims, nil))
	if err != nil {
		// Refusing an oversized token is an acceptable outcome.
		if !errorsIs(err, ErrTokenTooLarge) && !errorsIs(err, ErrMalformedToken) {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if p.HasScope("admin") {
		t.Errorf("principal has scope %q which the token does not carry (Scopes truncated to %d bytes)", "admin", len(p.Scopes))
	}
	if p.Scopes != "x"+scope[1:] {
		t.Errorf("Scopes is %d bytes, token scope is %d bytes", len(p.Scopes), len(scope))
	}
	if p.Subject != sub {
		t.Errorf("Subject is %d bytes, token sub is %d bytes", len(p.Subject), len(sub))
	}
}

func errorsIs(err error, target *Error) bool { return errors.Is(err, target) }

func TestAuthenticate_ConcurrentRequestsDuringRegistrySwaps(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	reg1 := g.Registry()
	km2 := newKM(t, f.clock.Now, testTenant, func() Definition { d := f.def("idp"); d.Description = "v2"; return d }())
	km2.Start()
	waitSettled(t, km2)
	reg2, err := NewRegistry(map[string][]*KeyManager{testTenant: {km2}}, nil)
	must(t, err)
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = mint(t, k, f.claims(), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p, err := g.Authenticate(context.Background(), testTenant, nil, tokens[(w+i)%len(tokens)])
				if err != nil {
					errs <- err
					return
				}
				if p.Subject != "alice" {
					errs <- errorString("bad subject " + p.Subject)
					return
				}
			}
		}(w)
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			g.Swap(reg2)
		} else {
			g.Swap(reg1)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
