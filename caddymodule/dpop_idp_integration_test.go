package caddymodule_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
	"github.com/kmgate/caddy-keymanager/internal/testidp"
)

// TestRealIdP_OIDCProviderDPoPBoundTokens gets a DPoP-bound
// client_credentials token from oidc-provider (its dpop feature on, a
// proof sent to its token endpoint) and uses it through a real Caddy:
// with a fresh proof per request it passes (cache miss, then hits), and a
// replayed proof, another key's proof or the token as Bearer are refused.
func TestRealIdP_OIDCProviderDPoPBoundTokens(t *testing.T) {
	node := testidp.StartOIDCProvider(t)
	client := fakeidp.EC(t, "p256-node-dpop", "")
	other := fakeidp.EC(t, "p256-node-other", "")
	tok, typ := node.TokenDPoP(t, "read", testidp.OIDCResourceJWT,
		fakeidp.DPoPProof(t, client, "POST", node.TokenURL(), "", time.Now(), nil))
	if !strings.EqualFold(typ, "DPoP") {
		t.Fatalf("token_type %q, want DPoP", typ)
	}
	if jkt := cnfJKT(t, tok); jkt != fakeidp.Thumbprint(t, client) {
		t.Fatalf("token cnf.jkt %q is not the proof key's thumbprint", jkt)
	}
	bearer := node.Token(t, "read", testidp.OIDCResourceJWT)

	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
		tenant node {
			key_manager node {
				issuer %[1]s
				jwks_url %[2]s
				audience https://api.example.test
			}
		}
	}
}
http://localhost:9080 {
	route /orders/* {
		keymanager node
		respond "{keymanager.binding}|{keymanager.client_id}"
	}
}
`, node.Issuer(), node.JWKSURL())
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	const uri = "http://localhost:9080/orders/1"
	replayed := fakeidp.DPoPProof(t, client, "GET", uri, tok, time.Now(), nil)
	cases := []struct {
		name   string
		scheme string
		token  string
		proof  string
		status int
		body   string
		reason string // in the challenge
	}{
		{"bound token with a proof", "DPoP", tok, replayed, 200, "dpop|cc-client", ""},
		{"bound token with a new proof (cache hit)", "DPoP", tok, fakeidp.DPoPProof(t, client, "GET", uri, tok, time.Now(), nil), 200, "dpop|cc-client", ""},
		{"replayed proof", "DPoP", tok, replayed, 401, "", `error="invalid_dpop_proof"`},
		{"proof by another key", "DPoP", tok, fakeidp.DPoPProof(t, other, "GET", uri, tok, time.Now(), nil), 401, "", `error="invalid_dpop_proof"`},
		{"proof for POST", "DPoP", tok, fakeidp.DPoPProof(t, client, "POST", uri, tok, time.Now(), nil), 401, "", `error="invalid_dpop_proof"`},
		{"bound token as Bearer", "Bearer", tok, "", 401, "", `DPoP realm="node", error="invalid_token"`},
		{"unbound token as Bearer", "Bearer", bearer, "", 200, "none|cc-client", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", uri, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", c.scheme+" "+c.token)
			if c.proof != "" {
				req.Header.Set("DPoP", c.proof)
			}
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.status, b)
			}
			if c.body != "" && string(b) != c.body {
				t.Fatalf("body %q, want %q", b, c.body)
			}
			if c.reason != "" && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), "\n"), c.reason) {
				t.Fatalf("challenges %q, want %s", resp.Header.Values("WWW-Authenticate"), c.reason)
			}
		})
	}
}

// cnfJKT reads an (unverified) JWT's cnf.jkt.
func cnfJKT(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Cnf.JKT
}
