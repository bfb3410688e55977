package caddymodule_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
)

// A real Caddy HTTPS server with client_auth (verify_if_given, a test CA)
// in front of two APIs: /orders accepts Key Manager "idp" (DPoP
// allowed, certificate-bound tokens checked), /billing accepts Key Manager
// "partner" (dpop required); both publish RFC 9728 metadata.
const bindingBase = "https://localhost:9443"

type bindingFixture struct {
	tester       *caddytest.Tester
	idp, partner *testIdP
	ca           *fakeidp.CA
	certA, certB tls.Certificate
}

func startBindingGateway(t *testing.T) *bindingFixture {
	t.Helper()
	f := &bindingFixture{idp: newTestIdP(t, jwa.ES256, "bind-idp"), partner: newTestIdP(t, jwa.ES256, "bind-partner"),
		ca: fakeidp.NewCA(t, "p256-bind-ca")}
	f.certA = f.ca.Issue(t, "p256-bind-a", "client-a", false)
	f.certB = f.ca.Issue(t, "p256-bind-b", "client-b", false)
	server := f.ca.Issue(t, "p256-bind-server", "localhost", true)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	keymanagers {
		tenant acme {
			key_manager idp {
				issuer %[1]s
				jwks_url %[2]s/jwks
			}
			key_manager partner {
				issuer %[3]s
				jwks_url %[4]s/jwks
				dpop required
			}
		}
	}
}
https://localhost:9443 {
	tls %[5]s %[6]s {
		client_auth {
			mode verify_if_given
			trust_pool file {
				pem_file %[7]s
			}
		}
	}
	keymanager_resource_metadata
	route /orders/* {
		keymanager acme {
			key_managers idp
			scope GET /orders/{id} orders:read
			resource https://localhost:9443/orders
		}
		respond "{keymanager.binding}"
	}
	route /billing/* {
		keymanager acme {
			key_managers partner
			scope GET /billing/{id} billing:read
			scope POST /billing billing:write
			resource https://localhost:9443/billing
		}
		respond "{keymanager.binding}"
	}
}
`, f.idp.Issuer, f.idp.Srv.URL, f.partner.Issuer, f.partner.Srv.URL,
		write("gw-cert.pem", fakeidp.CertPEM(server)), write("gw-key.pem", fakeidp.KeyPEM(t, server)), write("client-ca.pem", f.ca.PEM))
	f.tester = caddytest.NewTester(t)
	f.tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return f
}

// client is an HTTPS client trusting the test CA, presenting cert (nil:
// none), on its own connections.
func (f *bindingFixture) client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

func (f *bindingFixture) get(t *testing.T, c *http.Client, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", bindingBase+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestBinding_CertificateBoundTokensThroughCaddyTLS(t *testing.T) {
	f := startBindingGateway(t)
	bound := f.idp.Mint(map[string]any{"sub": "alice", "scope": "orders:read", "cnf": map[string]any{"x5t#S256": fakeidp.CertThumbprint(f.certA)}})
	plain := f.idp.Mint(map[string]any{"sub": "bob", "scope": "orders:read"})
	cases := []struct {
		name   string
		cert   *tls.Certificate
		token  string
		status int
		body   string
	}{
		{"bound token with its certificate", &f.certA, bound, 200, "mtls"},
		{"bound token with the other client certificate", &f.certB, bound, 401, ""},
		{"bound token without a certificate", nil, bound, 401, ""},
		{"unbound token without a certificate", nil, plain, 200, "none"},
		{"unbound token with a certificate", &f.certB, plain, 200, "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.get(t, f.client(c.cert), "/orders/1", map[string]string{"Authorization": "Bearer " + c.token})
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, c.status, body)
			}
			if c.status == 200 && body != c.body {
				t.Fatalf("{keymanager.binding} = %q, want %q", body, c.body)
			}
			if c.status == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestBinding_ProtectedResourceMetadataThroughCaddy(t *testing.T) {
	f := startBindingGateway(t)
	c := f.client(nil)
	cases := []struct {
		path string
		want map[string]any
	}{
		{"/.well-known/oauth-protected-resource/orders", map[string]any{
			"resource": bindingBase + "/orders", "authorization_servers": []any{f.idp.Issuer},
			"scopes_supported": []any{"orders:read"}, "bearer_methods_supported": []any{"header"},
			"dpop_bound_access_tokens_required": false, "tls_client_certificate_bound_access_tokens": false}},
		{"/.well-known/oauth-protected-resource/billing", map[string]any{
			"resource": bindingBase + "/billing", "authorization_servers": []any{f.partner.Issuer},
			"scopes_supported": []any{"billing:read", "billing:write"}, "bearer_methods_supported": []any{"header"},
			"dpop_bound_access_tokens_required": true, "tls_client_certificate_bound_access_tokens": false}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := f.get(t, c, tc.path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if algs, ok := got["dpop_signing_alg_values_supported"].([]any); !ok || len(algs) == 0 {
				t.Fatalf("no dpop_signing_alg_values_supported in %s", body)
			}
			delete(got, "dpop_signing_alg_values_supported")
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tc.want)
			if string(gb) != string(wb) {
				t.Fatalf("document\n got %s\nwant %s", gb, wb)
			}
		})
	}
	resp, _ := f.get(t, c, "/billing/1", nil)
	ch := resp.Header.Values("WWW-Authenticate")
	want := `resource_metadata="` + bindingBase + `/.well-known/oauth-protected-resource/billing"`
	if resp.StatusCode != 401 || len(ch) != 1 || !strings.HasPrefix(ch[0], "DPoP ") || !strings.Contains(ch[0], want) {
		t.Fatalf("status %d, challenges %q: want one DPoP challenge with %s", resp.StatusCode, ch, want)
	}
	resp, _ = f.get(t, c, "/orders/1", nil)
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `/.well-known/oauth-protected-resource/orders"`) {
		t.Fatalf("orders challenge %q", ch)
	}
}
