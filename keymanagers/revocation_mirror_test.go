package keymanagers

import (
	"testing"
	"time"
)

// ECDSA accepts (r, s) and (r, n-s) alike, so a second string carries the
// same signature. A revocation by token hash must refuse both, including
// for a JWT without jti (no (iss, jti) revocation to fall back on).
func TestRevocation_MirroredECDSASignatureIsRevokedToo(t *testing.T) {
	keys := []testKey{
		ecKey(t, "p256-a", "es256"),
		{KID: "es384", Alg: "ES384", Priv: poolKey(t, "p384-a")},
	}
	f := newFixture(t, keys...)
	f.add(testTenant, f.def("idp"))
	g := f.build()
	for _, k := range keys {
		t.Run(k.Alg, func(t *testing.T) {
			claims := with(f.claims(), map[string]any{"jti": nil})
			tok := mint(t, k, claims, nil)
			mirror, ok := MirrorECDSAToken(tok)
			if !ok || mirror == tok {
				t.Fatalf("MirrorECDSAToken: ok=%v, same=%v", ok, mirror == tok)
			}
			// The mirror really verifies: that is the attack.
			_, err := f.auth(mirror)
			checkErr(t, err, nil)
			g.SetRevocations(NewRevocations([]Revocation{{
				TokenHash:       TokenHash(tok),
				MirrorTokenHash: TokenHash(mirror),
				ExpiresAt:       f.clock.Now().Add(time.Hour),
			}}, f.clock.Now()))
			defer g.SetRevocations(nil)
			for _, s := range []string{tok, mirror} {
				_, err := f.auth(s)
				checkErr(t, err, ErrRevoked)
			}
			back, _ := MirrorECDSAToken(mirror)
			if back != tok {
				t.Fatal("mirroring twice does not give the token back")
			}
		})
	}
	for _, tc := range []struct{ name, token string }{
		{"RSA token", mint(t, rsaKey(t, "rsa-a", "r", "RS256"), f.claims(), nil)},
		{"opaque token", "opaque-token-value"},
		{"ES256 signature of the wrong length", b64e([]byte(`{"alg":"ES256"}`)) + "." + b64e([]byte(`{}`)) + ".AAAA"},
	} {
		t.Run("no mirror for "+tc.name, func(t *testing.T) {
			if m, ok := MirrorECDSAToken(tc.token); ok {
				t.Fatalf("MirrorECDSAToken(%s) = %q, true", tc.name, m)
			}
		})
	}
}
