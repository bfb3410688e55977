package keymanagers

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

// FuzzAuthenticate feeds arbitrary token strings to Authenticate over a
// small valid setup (a JWKS Key Manager, a pinned-key one and a shared
// secret one, on a frozen clock). It must never panic, every failure must
// be classified (never KindInternal) and never echo the token, and a
// second call must give the same answer as the first (cache coherence).
func FuzzAuthenticate(f *testing.F) {
	rk := rsaKey(f, "rsa-a", "k1", "RS256")
	ek := ecKey(f, "p256-a", "")
	secret := strings.Repeat("fuzz-secret-", 3)
	fx := newFixture(f, rk)
	fx.add(testTenant, fx.def("idp"))
	der, err := x509.MarshalPKIXPublicKey(ek.Public())
	if err != nil {
		f.Fatal(err)
	}
	fx.add(testTenant, Definition{Name: "pinned", Issuer: "https://pinned.example.com",
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	fx.add(testTenant, Definition{Name: "hmac", Issuer: "https://hmac.example.com", SharedSecret: secret, Audiences: []string{testAudience}})
	g := fx.build()
	g.SetProjectedClaims([]string{"groups", "dept"})
	now := fx.clock.Now()

	valid := mint(f, rk, with(claimsAt(testIssuer, now), map[string]any{"groups": []string{"a"}}), nil)
	f.Add(valid)
	f.Add(mint(f, ek, claimsAt("https://pinned.example.com", now), nil))
	f.Add(mint(f, testKey{Alg: "HS256", Secret: []byte(secret)}, claimsAt("https://hmac.example.com", now), nil))
	f.Add(craftWith(f, rk, nil, with(claimsAt(testIssuer, now), map[string]any{"exp": 1e300})))
	f.Add(craftWith(f, rk, nil, `{"iss":"`+testIssuer+`","exp":99999999999999999999999999999}`))
	f.Add(craftWith(f, rk, nil, `{"iss":"`+testIssuer+`","exp":1.5e9,"scope":["a",1],"aud":{}}`))
	f.Add(craftWith(f, rk, nil, `null`))
	f.Add(craftWith(f, rk, nil, `{"iss":null}`))
	f.Add(craftWith(f, rk, map[string]any{"crit": []string{"exp"}}, claimsAt(testIssuer, now)))
	f.Add(craftWith(f, rk, map[string]any{"kid": strings.Repeat("k", 300), "alg": strings.Repeat("RS", 50)}, claimsAt(testIssuer, now)))
	f.Add(b64e([]byte(`{"alg":"none"}`)) + "." + b64e([]byte(`{"iss":"`+testIssuer+`"}`)) + ".")
	f.Add(b64e([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64e([]byte(`{"iss":"`+testIssuer+`"}`)) + ".AAAA")
	f.Add(b64e([]byte(`{"alg":"ES256"}`)) + "." + b64e([]byte(`{"iss":"https://pinned.example.com","exp":1}`)) + "." + b64e(make([]byte, 64)))
	f.Add(valid + ".x.y")
	f.Add(valid[:len(valid)-3])
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d")
	f.Add("....")
	f.Add("..")
	f.Add(".")
	f.Add("")
	f.Add("not-a-jwt")
	f.Add("Bearer " + valid)
	f.Add("éé.ü.🙂")
	f.Add("\x00\xff.\x00.\x00")
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + "e30=" + ".sig")
	f.Add(strings.Repeat("A", 10000) + "." + strings.Repeat("B", 10000) + "." + strings.Repeat("C", 10000))

	ctx := context.Background()
	known := map[string]bool{"idp": true, "pinned": true, "hmac": true}
	f.Fuzz(func(t *testing.T, token string) {
		p1, err1 := g.Authenticate(ctx, testTenant, nil, token)
		p2, err2 := g.Authenticate(ctx, testTenant, nil, token)
		for i, r := range []struct {
			p   *Principal
			err error
		}{{p1, err1}, {p2, err2}} {
			if (r.p == nil) == (r.err == nil) {
				t.Fatalf("call %d: principal %v with error %v", i, r.p, r.err)
			}
			if r.err != nil {
				if Classify(r.err).Kind == KindInternal {
					t.Fatalf("call %d: unclassified error %v", i, r.err)
				}
				if len(token) >= 12 && strings.Contains(r.err.Error(), token) {
					t.Fatalf("call %d: error echoes the token", i)
				}
				continue
			}
			if !known[r.p.KeyManager] || r.p.Tenant != testTenant || r.p.ExpiresAt <= now.Unix() {
				t.Fatalf("call %d: principal %+v", i, r.p)
			}
		}
		if (err1 == nil) != (err2 == nil) || (err1 != nil && Classify(err1) != Classify(err2)) {
			t.Fatalf("first call %v, second call %v", err1, err2)
		}
		if p1 != nil && (p1.Subject != p2.Subject || p1.Scopes != p2.Scopes || p1.ClientID != p2.ClientID || p1.KeyManager != p2.KeyManager) {
			t.Fatalf("cached principal %+v differs from fresh %+v", p2, p1)
		}
	})
}
