package keymanagers

// Issue 10: is the hand-written JWS path (parseCompact + decodeClaims +
// verifySignature) worth keeping over jwx? BenchmarkJWSVerify measures, on
// the same tokens:
//
//	own        parseCompact + decodeClaims + verifySignature: the work the
//	           fresh-token path does before claim checks.
//	jwx_strict the duplicate-member pre-check the own path implies
//	           (decodeObject on the decoded header and payload), then
//	           jws.Verify and decoding the returned payload into
//	           map[string]json.RawMessage: what replacing the own path with
//	           jwx would cost without losing strictness.
//	jwx        jws.Verify + payload decoding alone (reference: not as
//	           strict, it accepts duplicate member names).
//	crypto     the bare signature check over a precomputed digest (floor).
//
// TestJWSCompareSameVerdict checks that own and jwx_strict accept and
// refuse the same tokens, so the benchmark compares equivalent work.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// jwsCompareCase is one algorithm under comparison: a signing key, the
// matching public key and the public half of an unrelated key of the same
// type.
type jwsCompareCase struct {
	alg      string
	priv     crypto.Signer
	pub      crypto.PublicKey
	wrongPub crypto.PublicKey
}

func jwsCompareCases(tb testing.TB) []jwsCompareCase {
	tb.Helper()
	var cases []jwsCompareCase
	for _, c := range []struct{ alg, key, other string }{
		{"RS256", "rsa-a", "rsa-b"}, // 2048-bit
		{"ES256", "p256-a", "p256-b"},
		{"PS256", "rsa-a", "rsa-b"}, // 2048-bit
	} {
		priv := poolKey(tb, c.key)
		cases = append(cases, jwsCompareCase{
			alg:      c.alg,
			priv:     priv,
			pub:      priv.Public(),
			wrongPub: poolKey(tb, c.other).Public(),
		})
	}
	return cases
}

// jwsComparePayload is a realistic access token body (1162-byte token
// signed with RS256/PS256, 906 bytes with ES256). Fixed values keep runs
// comparable; members are in a fixed order.
func jwsComparePayload(tb testing.TB, sub string) []byte {
	tb.Helper()
	now := baseTime
	b, err := json.Marshal(struct {
		Iss      string   `json:"iss"`
		Sub      string   `json:"sub"`
		Aud      []string `json:"aud"`
		Exp      int64    `json:"exp"`
		Iat      int64    `json:"iat"`
		Nbf      int64    `json:"nbf"`
		Jti      string   `json:"jti"`
		Azp      string   `json:"azp"`
		ClientID string   `json:"client_id"`
		Scope    string   `json:"scope"`
		Tenant   string   `json:"tenant"`
		Role     string   `json:"tenant_role"`
		Groups   []string `json:"groups"`
		Email    string   `json:"email"`
		Name     string   `json:"name"`
		AuthTime int64    `json:"auth_time"`
	}{
		Iss:      testIssuer,
		Sub:      sub,
		Aud:      []string{testAudience, "api://billing"},
		Exp:      now.Add(time.Hour).Unix(),
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Jti:      "4f1c9a2e7b3d4c8a9e6f0b1d2c3a4e5f",
		Azp:      "3MVG9lKcPoNINVBIPJjdw1J9LLM82HnFVVX19KY1uA5mu0QqLWf",
		ClientID: "3MVG9lKcPoNINVBIPJjdw1J9LLM82HnFVVX19KY1uA5mu0QqLWf",
		Scope:    "openid profile email orders:read orders:write billing:read inventory:read inventory:write",
		Tenant:   testTenant,
		Role:     "admin",
		Groups:   []string{"engineering", "platform", "on-call", "eu-west"},
		Email:    "alice@example.com",
		Name:     "Alice Example",
		AuthTime: now.Add(-5 * time.Minute).Unix(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// jwsCompareSign signs payload verbatim (jwx does not re-encode it) with
// jwx, with a typical access-token protected header.
func jwsCompareSign(tb testing.TB, c jwsCompareCase, payload []byte) string {
	tb.Helper()
	h := jws.NewHeaders()
	must(tb, h.Set(jws.KeyIDKey, "k1"))
	must(tb, h.Set(jws.TypeKey, "at+jwt"))
	tok, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(c.alg), c.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		tb.Fatalf("jws.Sign %s: %v", c.alg, err)
	}
	return string(tok)
}

var errJWSCompareBadSignature = errors.New("signature does not verify")

// jwsOwn is the own path: exactly what the fresh-token path does before the
// claim checks.
func jwsOwn(tok, alg string, pub crypto.PublicKey) (map[string]json.RawMessage, error) {
	p, err := parseCompact(tok)
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(p.payload)
	if err != nil {
		return nil, err
	}
	if !verifySignature(alg, pub, p.signingInput, p.sig) {
		return nil, errJWSCompareBadSignature
	}
	return claims, nil
}

// jwsStrictPrecheck is what jwx would still need in front of it to be as
// strict as the own path: base64url-decode header and payload and refuse
// duplicate (or non-object) members in either.
func jwsStrictPrecheck(tok string) error {
	i := strings.IndexByte(tok, '.')
	j := strings.LastIndexByte(tok, '.')
	if i < 0 || j <= i {
		return ErrMalformedToken
	}
	hdr, err := b64(tok[:i])
	if err != nil {
		return err
	}
	if _, err := decodeObject(hdr); err != nil {
		return err
	}
	payload, err := b64(tok[i+1 : j])
	if err != nil {
		return err
	}
	_, err = decodeObject(payload)
	return err
}

// jwsJWX verifies with jwx and decodes the returned payload.
func jwsJWX(tok string, alg jwa.SignatureAlgorithm, pub crypto.PublicKey) (map[string]json.RawMessage, error) {
	payload, err := jws.Verify([]byte(tok), jws.WithKey(alg, pub))
	if err != nil {
		return nil, err
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// jwsJWXStrict is the pre-check followed by jwx.
func jwsJWXStrict(tok string, alg jwa.SignatureAlgorithm, pub crypto.PublicKey) (map[string]json.RawMessage, error) {
	if err := jwsStrictPrecheck(tok); err != nil {
		return nil, err
	}
	return jwsJWX(tok, alg, pub)
}

// jwsCompareSink keeps the decoded claims alive so nothing is optimised
// away.
var jwsCompareSink map[string]json.RawMessage

func BenchmarkJWSVerify(b *testing.B) {
	for _, c := range jwsCompareCases(b) {
		b.Run(c.alg, func(b *testing.B) {
			tok := jwsCompareSign(b, c, jwsComparePayload(b, "alice"))
			jalg := jwa.SignatureAlgorithm(c.alg)
			for _, check := range []func() error{
				func() error { _, err := jwsOwn(tok, c.alg, c.pub); return err },
				func() error { _, err := jwsJWXStrict(tok, jalg, c.pub); return err },
			} {
				if err := check(); err != nil {
					b.Fatalf("setup: token does not verify: %v", err)
				}
			}

			b.Run("own", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					claims, err := jwsOwn(tok, c.alg, c.pub)
					if err != nil {
						b.Fatal(err)
					}
					jwsCompareSink = claims
				}
			})
			b.Run("jwx_strict", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					claims, err := jwsJWXStrict(tok, jalg, c.pub)
					if err != nil {
						b.Fatal(err)
					}
					jwsCompareSink = claims
				}
			})
			b.Run("jwx", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					claims, err := jwsJWX(tok, jalg, c.pub)
					if err != nil {
						b.Fatal(err)
					}
					jwsCompareSink = claims
				}
			})
			b.Run("crypto", func(b *testing.B) {
				benchJWSCryptoFloor(b, c, tok)
			})
		})
	}
}

// benchJWSCryptoFloor times the signature check alone: the digest (and,
// for ECDSA, r and s) are computed once, outside the loop.
func benchJWSCryptoFloor(b *testing.B, c jwsCompareCase, tok string) {
	j := strings.LastIndexByte(tok, '.')
	sig, err := b64(tok[j+1:])
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte(tok[:j]))
	var verify func() bool
	switch c.alg {
	case "RS256":
		pub := c.pub.(*rsa.PublicKey)
		verify = func() bool { return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil }
	case "PS256":
		pub := c.pub.(*rsa.PublicKey)
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
		verify = func() bool { return rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts) == nil }
	case "ES256":
		pub := c.pub.(*ecdsa.PublicKey)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		verify = func() bool { return ecdsa.Verify(pub, digest[:], r, s) }
	default:
		b.Fatalf("no crypto floor for %s", c.alg)
	}
	if !verify() {
		b.Fatal("setup: signature does not verify")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !verify() {
			b.Fatal("bad signature")
		}
	}
}

// TestJWSCompareSameVerdict shows that the own path and jwx_strict agree on
// the tokens that matter, so BenchmarkJWSVerify compares equivalent work.
// The duplicate-claim token also shows why plain jwx is only a reference:
// it accepts what the own path refuses.
func TestJWSCompareSameVerdict(t *testing.T) {
	for _, c := range jwsCompareCases(t) {
		t.Run(c.alg, func(t *testing.T) {
			valid := jwsCompareSign(t, c, jwsComparePayload(t, "alice"))
			t.Logf("%s token: %d bytes", c.alg, len(valid))

			// Same header and signature, different payload.
			parts := strings.Split(valid, ".")
			tampered := parts[0] + "." + b64e(jwsComparePayload(t, "mallory")) + "." + parts[2]

			// Correctly signed, but "sub" appears twice.
			p := jwsComparePayload(t, "alice")
			dup := jwsCompareSign(t, c, append(p[:len(p)-1:len(p)-1], []byte(`,"sub":"mallory"}`)...))

			jalg := jwa.SignatureAlgorithm(c.alg)
			for _, tc := range []struct {
				name   string
				tok    string
				pub    crypto.PublicKey
				accept bool
			}{
				{"valid", valid, c.pub, true},
				{"tampered-payload", tampered, c.pub, false},
				{"wrong-key", valid, c.wrongPub, false},
				{"duplicate-claim", dup, c.pub, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ownClaims, ownErr := jwsOwn(tc.tok, c.alg, tc.pub)
					jwxClaims, jwxErr := jwsJWXStrict(tc.tok, jalg, tc.pub)
					if (ownErr == nil) != tc.accept || (jwxErr == nil) != tc.accept {
						t.Fatalf("accept want %v: own err=%v, jwx_strict err=%v", tc.accept, ownErr, jwxErr)
					}
					if !tc.accept {
						return
					}
					if len(ownClaims) != len(jwxClaims) {
						t.Fatalf("claim count: own %d, jwx_strict %d", len(ownClaims), len(jwxClaims))
					}
					for name, v := range ownClaims {
						if string(jwxClaims[name]) != string(v) {
							t.Errorf("claim %q: own %s, jwx_strict %s", name, v, jwxClaims[name])
						}
					}
				})
			}

			// The reference variant without the pre-check takes the
			// duplicate-claim token: that is the strictness jwx_strict pays for.
			if _, err := jwsJWX(dup, jalg, c.pub); err != nil {
				t.Logf("plain jwx refused the duplicate-claim token too: %v", err)
			}
		})
	}
}
