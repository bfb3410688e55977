package fakeidp

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return b
}

// The IdP's tokens verify against the keys it publishes, and its discovery
// document is served under the issuer it names.
func TestIdP_TokensVerifyAgainstThePublishedSetAndDiscoveryIsBound(t *testing.T) {
	for _, k := range []Key{RSA(t, "rsa-self", "r1", "RS256"), EC(t, "p256-self", "e1"), Ed(t, "ed-self", "d1")} {
		t.Run(k.Alg, func(t *testing.T) {
			idp := NewIdP(t, k)
			raw := map[string]string{}
			if err := json.Unmarshal(get(t, idp.WellKnownURL()), &raw); err != nil || raw["issuer"] != idp.Issuer {
				t.Fatalf("discovery %v %v", raw, err)
			}
			set, err := jwk.Parse(get(t, raw["jwks_uri"]))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.Parse([]byte(idp.Mint(map[string]any{"sub": "alice"})), jwt.WithKeySet(set), jwt.WithIssuer(idp.Issuer))
			if err != nil || tok.Subject() != "alice" {
				t.Fatalf("token does not verify: %v", err)
			}
			other := NewIdP(t, RSA(t, "rsa-other", "r1", "RS256"))
			if _, err := jwt.Parse([]byte(other.Mint(nil)), jwt.WithKeySet(set)); err == nil {
				t.Fatal("another IdP's token verified")
			}
		})
	}
}

func TestPoolKey_SameLabelSameKeyOtherLabelOtherKey(t *testing.T) {
	a, b := PoolKey(t, "p256-x"), PoolKey(t, "p256-y")
	if PoolKey(t, "p256-x") != a || a == b {
		t.Fatal("pool does not key by label")
	}
}
