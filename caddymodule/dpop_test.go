package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

const dpopTestURI = "http://api.handler.test/orders/1"

// dpopRequest is a GET /orders/1 with the DPoP scheme and the proofs.
func dpopRequest(token string, proofs ...string) *http.Request {
	req := httptest.NewRequest("GET", dpopTestURI, nil)
	req.Header.Set("Authorization", "DPoP "+token)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return req
}

func TestServeHTTP_DPoPBoundTokens(t *testing.T) {
	e := newHTEnv(t)
	client := fakeidp.EC(t, "p256-dpop-client", "")
	other := fakeidp.EC(t, "p256-dpop-other", "")
	bound := e.mint(t, map[string]any{"cnf": map[string]any{"jkt": fakeidp.Thumbprint(t, client)}})
	unbound := e.mint(t, nil)
	proof := func(k fakeidp.Key, tok string, changes map[string]any) string {
		return fakeidp.DPoPProof(t, k, "GET", dpopTestURI, tok, time.Now(), changes)
	}
	algs := `algs="` + strings.Join(keymanagers.DPoPAlgorithms, " ") + `"`
	cases := []struct {
		name       string
		h          Handler
		req        func() *http.Request
		status     int
		challenges []string // substrings, one per WWW-Authenticate value in order
		binding    string
	}{
		{"bound token with its proof", Handler{Tenant: htTenant}, func() *http.Request { return dpopRequest(bound, proof(client, bound, nil)) },
			200, nil, "dpop"},
		{"unbound bearer token on a default route", Handler{Tenant: htTenant}, func() *http.Request { return htRequest("GET", "/orders/1", unbound) },
			200, nil, "none"},
		{"bound token as Bearer", Handler{Tenant: htTenant}, func() *http.Request { return htRequest("GET", "/orders/1", bound) },
			401, []string{`Bearer realm="acme"`, `DPoP realm="acme", error="invalid_token", error_description="The access token is DPoP-bound`}, ""},
		{"proof by another key", Handler{Tenant: htTenant}, func() *http.Request { return dpopRequest(bound, proof(other, bound, nil)) },
			401, []string{`Bearer realm="acme"`, `DPoP realm="acme", error="invalid_dpop_proof"`}, ""},
		{"proof for another URL", Handler{Tenant: htTenant}, func() *http.Request {
			return dpopRequest(bound, proof(client, bound, map[string]any{"htu": "http://api.handler.test/orders/2"}))
		}, 401, []string{`Bearer realm="acme"`, `DPoP realm="acme", error="invalid_dpop_proof", error_description=`}, ""},
		{"DPoP scheme without a proof", Handler{Tenant: htTenant}, func() *http.Request { return dpopRequest(bound) },
			401, []string{`Bearer realm="acme"`, `error="invalid_dpop_proof"`}, ""},
		{"two proofs", Handler{Tenant: htTenant}, func() *http.Request {
			return dpopRequest(bound, proof(client, bound, nil), proof(client, bound, nil))
		}, 401, []string{`Bearer realm="acme"`, `error="invalid_dpop_proof"`}, ""},
		{"route dpop required refuses bearer, DPoP challenge only", Handler{Tenant: htTenant, DPoP: "required"},
			func() *http.Request { return htRequest("GET", "/orders/1", unbound) },
			401, []string{`DPoP realm="acme", error="invalid_token", error_description="This API requires DPoP`}, ""},
		{"route dpop allowed offers both schemes on a missing token", Handler{Tenant: htTenant, DPoP: "allowed"},
			func() *http.Request { return htRequest("GET", "/orders/1", "") },
			401, []string{`Bearer realm="acme"`, `DPoP realm="acme", ` + algs}, ""},
		{"route dpop off: Bearer challenge only", Handler{Tenant: htTenant, DPoP: "off"},
			func() *http.Request { return dpopRequest(bound, proof(client, bound, nil)) },
			401, []string{`Bearer realm="acme", error="invalid_token", error_description="This API does not accept DPoP."`}, ""},
		{"external origin is the htu", Handler{Tenant: htTenant, ExternalOrigin: "https://api.example.com"},
			func() *http.Request {
				return dpopRequest(bound, fakeidp.DPoPProof(t, client, "GET", "https://api.example.com/orders/1", bound, time.Now(), nil))
			}, 200, nil, "dpop"},
		{"behind an external origin the local URL is refused", Handler{Tenant: htTenant, ExternalOrigin: "https://api.example.com"},
			func() *http.Request { return dpopRequest(bound, proof(client, bound, nil)) },
			401, []string{`Bearer realm="acme"`, `invalid_dpop_proof`}, ""},
		{"challenges carry resource_metadata", Handler{Tenant: htTenant, DPoP: "allowed", Resource: "https://api.example.com/orders"},
			func() *http.Request { return htRequest("GET", "/orders/1", "") },
			401, []string{`Bearer realm="acme", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/orders"`,
				`, resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/orders"`}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := e.handler(t, c.h)
			h.resourceMeta, _ = metadataURL(h.Resource)
			res := htServe(h, c.req(), nil)
			if res.status != c.status {
				t.Fatalf("status %d, want %d (body %s)", res.status, c.status, res.body)
			}
			got := res.header.Values("WWW-Authenticate")
			if len(got) != len(c.challenges) {
				t.Fatalf("challenges %q, want %d like %q", got, len(c.challenges), c.challenges)
			}
			for i, want := range c.challenges {
				if !strings.Contains(got[i], want) {
					t.Errorf("challenge %d = %q, want it to contain %q", i, got[i], want)
				}
				if strings.HasPrefix(got[i], "DPoP ") && !strings.Contains(got[i], algs) {
					t.Errorf("DPoP challenge %q has no %s", got[i], algs)
				}
			}
			if c.status == 200 {
				if b := res.placeholder("keymanager.binding"); b != c.binding {
					t.Errorf("{keymanager.binding} = %q, want %q", b, c.binding)
				}
				if res.nextHeader.Get("DPoP") != "" || res.nextHeader.Get("Authorization") != "" {
					t.Error("the DPoP proof or token reached the upstream")
				}
			}
		})
	}
}

func TestServeHTTP_DPoPNonceIsAskedForAndHandedOut(t *testing.T) {
	e := newHTEnv(t)
	client := fakeidp.EC(t, "p256-dpop-client", "")
	bound := e.mint(t, map[string]any{"cnf": map[string]any{"jkt": fakeidp.Thumbprint(t, client)}})
	h := e.handler(t, Handler{Tenant: htTenant, DPoPNonce: true})
	res := htServe(h, dpopRequest(bound, fakeidp.DPoPProof(t, client, "GET", dpopTestURI, bound, time.Now(), nil)), nil)
	nonce := res.header.Get("DPoP-Nonce")
	if res.status != 401 || nonce == "" {
		t.Fatalf("status %d, DPoP-Nonce %q: want 401 with a nonce", res.status, nonce)
	}
	if ch := res.header.Values("WWW-Authenticate"); len(ch) != 2 || !strings.Contains(ch[1], `DPoP realm="acme", error="use_dpop_nonce"`) {
		t.Fatalf("challenges %q", ch)
	}
	res = htServe(h, dpopRequest(bound, fakeidp.DPoPProof(t, client, "GET", dpopTestURI, bound, time.Now(), map[string]any{"nonce": nonce})), nil)
	if res.status != 200 || res.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("status %d, DPoP-Nonce %q: want 200 with the next nonce", res.status, res.header.Get("DPoP-Nonce"))
	}
}

func TestServeHTTP_CertificateBindingUsesOnlyVerifiedCertificates(t *testing.T) {
	e := newHTEnv(t)
	ca := fakeidp.NewCA(t, "p256-ca")
	a := ca.Issue(t, "p256-cert-a", "a", false)
	b := ca.Issue(t, "p256-cert-b", "b", false)
	tok := e.mint(t, map[string]any{"cnf": map[string]any{"x5t#S256": fakeidp.CertThumbprint(a)}})
	h := e.handler(t, Handler{Tenant: htTenant})
	for _, c := range []struct {
		name     string
		cert     *[]byte
		verified bool
		status   int
	}{
		{"its certificate, verified", &a.Certificate[0], true, 200},
		{"its certificate, not verified by the server", &a.Certificate[0], false, 401},
		{"another certificate", &b.Certificate[0], true, 401},
		{"no certificate", nil, false, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := htRequest("GET", "/orders/1", tok)
			if c.cert != nil {
				req.TLS = tlsStateWith(t, *c.cert, c.verified)
			}
			res := htServe(h, req, nil)
			if res.status != c.status {
				t.Fatalf("status %d, want %d", res.status, c.status)
			}
			if c.status == 200 && res.placeholder("keymanager.binding") != "mtls" {
				t.Fatalf("binding %q", res.placeholder("keymanager.binding"))
			}
		})
	}
}

func TestResourceMetadata_DocumentsFollowTheHandlersConfig(t *testing.T) {
	e := newHTEnv(t)
	e.app.resources = new(resourceRegistry)
	register := func(h Handler) {
		hh := e.handler(t, h)
		hh.resourceMeta, _ = metadataURL(hh.Resource)
		e.app.resources.add(hh)
	}
	register(Handler{Tenant: htTenant, Resource: "https://api.example.com/orders", DPoP: "required",
		Scope: []ScopeRule{{Method: "GET", Path: "/orders/{id}", Scopes: []string{"orders:read"}}, {Method: "POST", Path: "/orders", Scopes: []string{"orders:write"}}}})
	register(Handler{Tenant: htTenant, Resource: "https://api.example.com/billing", KeyManagers: []string{htKM},
		Scope: []ScopeRule{{Method: "GET", Path: "/billing", Scopes: []string{"billing:read"}}}})
	m := &ResourceMetadata{app: e.app}
	get := func(target string) (int, ProtectedResourceMetadata, http.Header) {
		req := httptest.NewRequest("GET", target, nil)
		w := httptest.NewRecorder()
		nextCalled := false
		err := m.ServeHTTP(w, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			nextCalled = true
			w.WriteHeader(404)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		var md ProtectedResourceMetadata
		if w.Code == 200 {
			if nextCalled {
				t.Fatal("served and passed on")
			}
			must(t, json.Unmarshal(w.Body.Bytes(), &md))
		}
		return w.Code, md, w.Header()
	}
	code, orders, hdr := get("https://api.example.com/.well-known/oauth-protected-resource/orders")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("orders: %d %q", code, hdr.Get("Content-Type"))
	}
	want := ProtectedResourceMetadata{Resource: "https://api.example.com/orders", AuthorizationServers: []string{htIssuer},
		ScopesSupported: []string{"orders:read", "orders:write"}, BearerMethodsSupported: []string{"header"},
		DPoPSigningAlgValuesSupported: keymanagers.DPoPAlgorithms, DPoPBoundAccessTokensRequired: true}
	if !equalJSON(t, orders, want) {
		t.Fatalf("orders document %+v, want %+v", orders, want)
	}
	_, billing, _ := get("https://api.example.com/.well-known/oauth-protected-resource/billing")
	want = ProtectedResourceMetadata{Resource: "https://api.example.com/billing", AuthorizationServers: []string{htIssuer},
		ScopesSupported: []string{"billing:read"}, BearerMethodsSupported: []string{"header"},
		DPoPSigningAlgValuesSupported: keymanagers.DPoPAlgorithms}
	if !equalJSON(t, billing, want) {
		t.Fatalf("billing document %+v, want %+v", billing, want)
	}
	for _, target := range []string{
		"https://api.example.com/.well-known/oauth-protected-resource/unknown",
		"https://other.example.com/.well-known/oauth-protected-resource/orders",
		"https://api.example.com/orders/1",
	} {
		if code, _, _ := get(target); code != 404 {
			t.Errorf("%s: %d, want passed on (404)", target, code)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com":             "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com/":            "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com:8443/a/b":    "https://api.example.com:8443/.well-known/oauth-protected-resource/a/b",
		"http://127.0.0.1:9080/acme/orders/":  "http://127.0.0.1:9080/.well-known/oauth-protected-resource/acme/orders",
		"https://api.example.com/%7Euser/api": "https://api.example.com/.well-known/oauth-protected-resource/%7Euser/api",
	} {
		got, err := metadataURL(in)
		if err != nil || got != want {
			t.Errorf("metadataURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api.example.com/orders", "https://api.example.com/o?x=1", "https://api.example.com/o#f", "ftp://x/y", "https://u@x/y"} {
		if _, err := metadataURL(bad); err == nil {
			t.Errorf("metadataURL(%q) accepted", bad)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	ja, err := json.Marshal(a)
	must(t, err)
	jb, err := json.Marshal(b)
	must(t, err)
	return string(ja) == string(jb)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tlsStateWith is a TLS connection state with the client certificate der;
// verified: as when the server's client_auth verified it.
func tlsStateWith(t *testing.T, der []byte, verified bool) *tls.ConnectionState {
	c, err := x509.ParseCertificate(der)
	must(t, err)
	st := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{c}}
	if verified {
		st.VerifiedChains = [][]*x509.Certificate{{c}}
	}
	return st
}

func TestServeHTTP_BindingMetricCountsAllowedRequests(t *testing.T) {
	initMetrics()
	e := newHTEnv(t)
	client := fakeidp.EC(t, "p256-dpop-client", "")
	bound := e.mint(t, map[string]any{"cnf": map[string]any{"jkt": fakeidp.Thumbprint(t, client)}})
	h := e.handler(t, Handler{Tenant: htTenant})
	before := map[string]float64{}
	for b, c := range bindingMetric.by {
		before[b] = counterValue(t, c)
	}
	htServe(h, dpopRequest(bound, fakeidp.DPoPProof(t, client, "GET", dpopTestURI, bound, time.Now(), nil)), nil)
	htServe(h, htRequest("GET", "/orders/1", e.mint(t, nil)), nil)
	htServe(h, htRequest("GET", "/orders/1", bound), nil) // refused: not counted
	for b, want := range map[string]float64{"dpop": 1, "none": 1, "mtls": 0, "dpop+mtls": 0} {
		if got := counterValue(t, bindingMetric.by[b]) - before[b]; got != want {
			t.Errorf("bindings_total{binding=%q} rose by %v, want %v", b, got, want)
		}
	}
}

func TestCaddyfile_SenderConstraintOptionsAreChecked(t *testing.T) {
	for _, c := range []struct {
		name, body, wantErr string
	}{
		{"all options", "dpop required\n dpop_nonce\n external_origin https://api.example.com\n resource https://api.example.com/orders", ""},
		{"unknown dpop mode", "dpop sometimes", "dpop: \"sometimes\" is not one of required, allowed, off"},
		{"dpop without a value", "dpop", "dpop: expected a value"},
		{"dpop_nonce with a value", "dpop_nonce yes", "wrong argument count"},
		{"nonce with dpop off", "dpop off\n dpop_nonce", "dpop_nonce needs dpop allowed or required"},
		{"external origin with a path", "external_origin https://api.example.com/v1", "is not an origin"},
		{"external origin without scheme", "external_origin api.example.com", "is not an origin"},
		{"resource with a query", "resource https://api.example.com/orders?x=1", "no query or fragment"},
		{"resource not absolute", "resource /orders", "not an absolute http(s) URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser("keymanager acme {\n " + c.body + "\n}")
			var h Handler
			err := h.UnmarshalCaddyfile(d)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), "Testfile:"):
				t.Fatalf("error %v does not name the file and line", err)
			}
		})
	}
	d := caddyfile.NewTestDispenser("keymanager_resource_metadata extra")
	if err := new(ResourceMetadata).UnmarshalCaddyfile(d); err == nil {
		t.Fatal("keymanager_resource_metadata took an argument")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	must(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

func TestHandlerValidate_SenderConstraintOptions(t *testing.T) {
	for _, c := range []struct {
		name    string
		h       Handler
		dyn     bool
		wantErr string
		origin  string
	}{
		{"origin with a trailing slash is trimmed", Handler{ExternalOrigin: "https://api.example.com/"}, false, "", "https://api.example.com"},
		{"origin with a query", Handler{ExternalOrigin: "https://api.example.com?x"}, false, "external_origin", ""},
		{"resource with a placeholder tenant", Handler{Resource: "https://api.example.com/orders"}, true, "resource needs a fixed tenant", ""},
		{"resource with a fixed tenant", Handler{Resource: "https://api.example.com/orders"}, false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.h
			h.dynTenant = c.dyn
			err := h.validateSenderConstraint()
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if c.origin != "" && h.ExternalOrigin != c.origin {
				t.Fatalf("external_origin %q, want %q", h.ExternalOrigin, c.origin)
			}
		})
	}
}
