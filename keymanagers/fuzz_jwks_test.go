package keymanagers

// Fuzz targets of the JWKS parser and of decodeObject (the strict JSON
// object decoder every header, payload and introspection answer goes
// through). Seed corpora live in testdata/fuzz/FuzzParseJWKS and
// testdata/fuzz/FuzzDecodeObject as well as in the f.Add calls.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// fjAlgs are the algorithms verifySignature knows.
var fjAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// FuzzParseJWKS feeds arbitrary documents to parseJWKS. It must never
// panic; a set it accepts holds only public keys of the allowed types and
// sizes (RSA >= 2048 bits, ECDSA on P-256/384/521, 32-byte Ed25519),
// indexed consistently by kid; and every accepted key must be usable by
// verifySignature with every algorithm without panicking (a garbage
// signature never verifies).
func FuzzParseJWKS(f *testing.F) {
	rk := rsaKey(f, "rsa-a", "r1", "RS256")
	ek := ecKey(f, "p256-a", "e1")
	e384 := testKey{KID: "e3", Alg: "ES384", Priv: poolKey(f, "p384-a")}
	dk := edKey(f, "ed-a", "d1")
	weak := rsaKey(f, "rsa1024-a", "weak", "RS256")
	f.Add(jwksDoc(f, rk, ek, e384, dk))
	f.Add(jwksDoc(f, testKey{KID: "", Alg: "RS256", Priv: rk.Priv, NoAlg: true}))
	f.Add(jwksDoc(f, testKey{KID: "enc", Alg: "RS256", Priv: rk.Priv, Use: "enc"}, ek))
	f.Add(jwksDoc(f, weak))
	f.Add(jwksDoc(f, weak, dk))
	priv, err := json.Marshal(jwkPrivate(f, rk))
	must(f, err)
	f.Add([]byte(`{"keys":[` + string(priv) + `]}`))
	ep := ek.Public().(*ecdsa.PublicKey)
	x := b64e(ep.X.FillBytes(make([]byte, 32)))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"off","x":"` + x + `","y":"` + x + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"zero","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"secp256k1","kid":"k","x":"` + x + `","y":"` + x + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"X25519","kid":"x","x":"` + b64e(make([]byte, 32)) + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"hs","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"e1","n":"` + b64e(rk.Public().(*rsa.PublicKey).N.Bytes()) + `","e":"AQ"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"tiny","n":"AQ","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"nil"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[null,1,"x",[]]}`))
	f.Add([]byte(`{"kty":"RSA","n":"AQ","e":"AQAB"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte("\xff\xfe{"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ks, err := parseJWKS(body)
		if (ks == nil) == (err == nil) {
			t.Fatalf("key set %v with error %v", ks, err)
		}
		if err != nil {
			return
		}
		if len(ks.all) == 0 || ks.pinned {
			t.Fatalf("accepted set: %d keys, pinned %v", len(ks.all), ks.pinned)
		}
		n := 0
		for kid, l := range ks.byKid {
			n += len(l)
			for _, k := range l {
				if k.kid != kid || !slices.Contains(ks.all, k) {
					t.Fatalf("byKid[%q] holds a key of kid %q not in all", kid, k.kid)
				}
			}
		}
		if n != len(ks.all) {
			t.Fatalf("byKid holds %d keys, all %d", n, len(ks.all))
		}
		for _, k := range ks.all {
			switch pub := k.pub.(type) {
			case *rsa.PublicKey:
				if pub.N == nil || pub.N.BitLen() < minRSABits {
					t.Fatalf("accepted a weak RSA key (%d bits)", pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() && pub.Curve != elliptic.P521() {
					t.Fatalf("accepted an ECDSA key on %v", pub.Curve.Params().Name)
				}
			case ed25519.PublicKey:
				if len(pub) != ed25519.PublicKeySize {
					t.Fatalf("accepted an Ed25519 key of %d bytes (ed25519.Verify panics on it)", len(pub))
				}
			default:
				t.Fatalf("accepted a key of type %T", k.pub)
			}
			for _, alg := range fjAlgs {
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("verifySignature(%s) on an accepted %T key panicked: %v", alg, k.pub, r)
						}
					}()
					if keyMatchesAlg(k.pub, alg) && verifySignature(alg, k.pub, "a.b", make([]byte, 64)) {
						t.Fatalf("a zero signature verified under %s", alg)
					}
				}()
			}
		}
	})
}

// jwkPrivate is the private JWK of k (which parseJWKS must reduce to its
// public half).
func jwkPrivate(tb testing.TB, k testKey) any {
	tb.Helper()
	j := jwkOf(tb, k)
	var m map[string]any
	b, err := json.Marshal(j)
	must(tb, err)
	must(tb, json.Unmarshal(b, &m))
	p := k.Priv.(*rsa.PrivateKey)
	m["d"] = b64e(p.D.Bytes())
	m["p"] = b64e(p.Primes[0].Bytes())
	m["q"] = b64e(p.Primes[1].Bytes())
	return m
}

// FuzzDecodeObject cross-checks decodeObject against encoding/json: it
// accepts exactly the inputs json.Unmarshal accepts as a JSON object
// (a map, not null) whose top-level member names are distinct after
// unescaping, and returns the same members with the same raw values.
// Member names are listed by an independent scanner (fjMembers).
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":1,"b":[1,{"c":null}],"d":"x"}`,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":{"b":1,"b":2}}`,
		`{"\ud800":1,"\udc00":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"iss":"x","ISS":"y"}`,
		`{"a":1}x`, `{"a":1}{"b":2}`, `{"a":1}]`, `{"a":1}}`, `{"a":1`, `{"a":}`, `{"a" 1}`, `{a:1}`,
		`{"a":1,}`, `{,"a":1}`, `{"a":01}`, `{"a":1e309}`, `{"a":-0}`, `{"a":"\u0000"}`,
		`null`, `[]`, `"x"`, `1`, `true`, ``, ` `, "\ufeff{}", "{}\x00",
		`{"a":[` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]}`,
		`{"a":"}","b":"{","c":"\"}"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeObject(b)
		if (got == nil) == (err == nil) {
			t.Fatalf("members %v with error %v", got, err)
		}
		var ref map[string]json.RawMessage
		refOK := json.Unmarshal(b, &ref) == nil && ref != nil && firstNonSpace(b) == '{'
		var names []string
		if refOK {
			names = fjMembers(b)
		}
		distinct := map[string]bool{}
		for _, n := range names {
			distinct[n] = true
		}
		dup := len(distinct) != len(names)
		switch {
		case err != nil && refOK && !dup:
			t.Fatalf("decodeObject refused a JSON object without duplicate names (%v): %q", err, b)
		case err != nil:
			return
		case !refOK:
			t.Fatalf("decodeObject accepted what encoding/json does not take for an object: %q", b)
		case dup:
			t.Fatalf("decodeObject accepted duplicate member names %q: %q", names, b)
		}
		if len(got) != len(ref) || len(got) != len(names) {
			t.Fatalf("decodeObject has %d members, encoding/json %d, scanner %d", len(got), len(ref), len(names))
		}
		for _, k := range slices.Sorted(maps.Keys(ref)) {
			if !bytes.Equal(got[k], ref[k]) {
				t.Fatalf("member %q: decodeObject %q, encoding/json %q", k, got[k], ref[k])
			}
		}
	})
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

// fjMembers lists the top-level member names of b, which must be a valid
// JSON object, by scanning it (names unescaped by encoding/json).
func fjMembers(b []byte) []string {
	ws := func(i int) int {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		return i
	}
	str := func(i int) int { // b[i] == '"'; returns the index after the closing quote
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		panic(fmt.Sprintf("unterminated string in %q", b))
	}
	value := func(i int) int {
		depth := 0
		for i < len(b) {
			switch c := b[i]; {
			case c == '"':
				i = str(i)
				if depth == 0 {
					return i
				}
				continue
			case c == '{' || c == '[':
				depth++
			case c == '}' || c == ']':
				if depth == 0 {
					return i
				}
				depth--
				if depth == 0 {
					return i + 1
				}
			case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
				return i
			}
			i++
		}
		return i
	}
	var names []string
	i := ws(0) + 1 // past '{'
	for {
		i = ws(i)
		switch b[i] {
		case '}':
			return names
		case ',':
			i = ws(i + 1)
		}
		j := str(i)
		var name string
		if err := json.Unmarshal(b[i:j], &name); err != nil {
			panic(fmt.Sprintf("member name %q: %v", b[i:j], err))
		}
		names = append(names, name)
		i = ws(j) + 1 // past ':'
		i = value(ws(i))
	}
}
