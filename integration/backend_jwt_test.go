package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// backendJWTConfig is the common gateway (gatewayConfig) whose guarded
// route answers with the backend JWT it would send upstream, plus the
// JWKS at /jwks.
func backendJWTConfig(t *testing.T, p ports, storage string, i *idp) string {
	const guarded = "\troute {\n\t\tkeymanager {\n\t\t\ttenant {http.request.header.X-Tenant}\n\t\t}\n\t\trespond \"ok {keymanager.key_manager}\"\n\t}"
	cfg := gatewayConfig{ports: p, storage: storage, cfgIdP: i, version: "bjwt"}.caddyfile()
	if !strings.Contains(cfg, guarded) {
		t.Fatalf("gatewayConfig changed; update backendJWTConfig:\n%s", cfg)
	}
	return strings.Replace(cfg, guarded, `	route /jwks {
		keymanager_backend_jwks
	}
	route {
		keymanager {
			tenant acme
			backend_jwt {
				issuer https://gw.cluster.test
				algorithm ES256
			}
		}
		respond "{http.request.header.X-JWT-Assertion}"
	}`, 1)
}

// TestBackendJWTTwoInstancesShareTheKey: two processes on one storage
// directory sign with the same key, so an upstream verifies the JWTs of
// either with the JWKS of either.
func TestBackendJWTTwoInstancesShareTheKey(t *testing.T) {
	storage := t.TempDir()
	i := newIdP(t, "k1")
	a := startCaddy(t, backendJWTConfig(t, newPorts(t), storage, i))
	b := startCaddy(t, backendJWTConfig(t, newPorts(t), storage, i))

	// The first requests reach both at once.
	var wg sync.WaitGroup
	jwts := make([]string, 8)
	errs := make([]error, 8)
	tokens := make([]string, 8)
	for n := range tokens {
		tokens[n] = i.mint("k1", fmt.Sprintf("user-%d", n))
	}
	for n := range jwts {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			p := a
			if n%2 == 1 {
				p = b
			}
			status, body, err := p.get("/api/x", tokens[n], "")
			if err == nil && status != 200 {
				err = fmt.Errorf("status %d: %s", status, body)
			}
			jwts[n], errs[n] = body, err
		}(n)
	}
	wg.Wait()
	for n, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", n, err)
		}
	}
	setA, setB := fetchJWKS(t, a), fetchJWKS(t, b)
	if setA.Len() != 1 || setB.Len() != 1 {
		t.Fatalf("JWKS of A has %d keys, of B %d; want one shared key", setA.Len(), setB.Len())
	}
	ka, _ := setA.Key(0)
	kb, _ := setB.Key(0)
	if ka.KeyID() != kb.KeyID() {
		t.Fatalf("A publishes %s, B %s", ka.KeyID(), kb.KeyID())
	}
	for n, tok := range jwts {
		if kid := kidOf(tok); kid != ka.KeyID() {
			t.Fatalf("JWT %d is signed with %s, not the shared key %s", n, kid, ka.KeyID())
		}
		for name, set := range map[string]jwk.Set{"A": setA, "B": setB} {
			parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer("https://gw.cluster.test"))
			if err != nil {
				t.Fatalf("JWT %d does not verify with %s's JWKS: %v", n, name, err)
			}
			if parsed.Subject() != fmt.Sprintf("user-%d", n) {
				t.Fatalf("JWT %d states subject %q", n, parsed.Subject())
			}
		}
	}
}

func fetchJWKS(t *testing.T, p *proc) jwk.Set {
	t.Helper()
	resp, err := http.Get(p.siteURL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	set, err := jwk.Parse(b)
	if err != nil {
		t.Fatalf("JWKS of %s: %v: %s", p.name, err, b)
	}
	return set
}

func kidOf(tok string) string {
	b, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
