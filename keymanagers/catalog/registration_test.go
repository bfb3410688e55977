package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kmgate/caddy-keymanager/internal/testidp"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// dcrCatalog is a catalog whose tenant acme has the config Key Managers defs.
func dcrCatalog(t *testing.T, st Storage, defs ...keymanagers.Definition) *Catalog {
	return dcrCatalogLogged(t, st, nil, defs...)
}

// logsContain reports whether any logged message or field holds s.
func logsContain(logs *observer.ObservedLogs, s string) bool {
	for _, e := range logs.All() {
		if strings.Contains(e.Message, s) {
			return true
		}
		for k, v := range e.ContextMap() {
			if strings.Contains(k, s) || strings.Contains(fmt.Sprint(v), s) {
				return true
			}
		}
	}
	return false
}

// dcrCatalogLogged is dcrCatalog logging to logger (nil: none).
func dcrCatalogLogged(t *testing.T, st Storage, logger *zap.Logger, defs ...keymanagers.Definition) *Catalog {
	t.Helper()
	var kms []*keymanagers.KeyManager
	for _, d := range defs {
		rt, err := testBuild("acme", d)
		if err != nil {
			t.Fatalf("key manager %s: %v", d.Name, err)
		}
		t.Cleanup(rt.Release)
		kms = append(kms, rt.KeyManager)
	}
	return newTestCatalog(t, func(c *Config) {
		c.Logger = logger
		c.ConfigTenants = map[string][]*keymanagers.KeyManager{"acme": kms}
		if st != nil {
			c.Storage = st
		}
	})
}

func hydraDCRDef(h *testidp.Hydra) keymanagers.Definition {
	return keymanagers.Definition{Name: "hydra", WellKnownURL: h.WellKnownURL(), Timeout: keymanagers.Duration(20 * time.Second), EnableOAuthAppCreation: true,
		EnableTokenGeneration: true, RegistrationEndpoint: h.RegistrationURL()}
}

func oidcDCRDef(o *testidp.OIDC) keymanagers.Definition {
	return keymanagers.Definition{Name: "node", WellKnownURL: o.WellKnownURL(), EnableOAuthAppCreation: true,
		EnableTokenGeneration: true, RegistrationAccessToken: testidp.OIDCRegistrationIAT}
}

// secretRefused checks that the IdP's token endpoint refuses the client.
func secretRefused(t *testing.T, km *keymanagers.KeyManager, id, secret string) {
	t.Helper()
	_, err := km.ClientToken(context.Background(), id, secret, nil)
	var re *keymanagers.RegistrationError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized && re.Code != "invalid_client" {
		t.Fatalf("the token endpoint still accepts (or did not refuse as invalid_client) client %s: %v", id, err)
	}
}

// TestRegisteredApplication_LifecycleAtRealIdPs registers an application
// at Ory Hydra (open registration, endpoint configured) and oidc-provider
// (initial access token, endpoint discovered), shows its secret once,
// generates a token with the chosen scopes and deletes the client at the
// IdP (RFC 7592) with the application.
func TestRegisteredApplication_LifecycleAtRealIdPs(t *testing.T) {
	hydra := testidp.StartHydraDCR(t)
	node := testidp.StartOIDCProvider(t)
	cases := []struct {
		name string
		def  keymanagers.Definition
	}{
		{"hydra", hydraDCRDef(hydra)},
		{"oidc-provider", oidcDCRDef(node)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newMem()
			core, logs := observer.New(zap.DebugLevel)
			c := dcrCatalogLogged(t, st, zap.New(core), tc.def)
			ctx := context.Background()
			v, err := c.PutApplication(ctx, "acme", keymanagers.Application{ID: "shop", KeyManager: tc.def.Name, Register: true,
				ClientName: "Shop", RegistrationScopes: []string{"read", "write"}}, "", true)
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			ap := v.Application
			if ap.ClientID == "" || ap.ClientSecret == "" || ap.ClientSecret == keymanagers.Mask || !ap.Registered || ap.Register {
				t.Fatalf("create answer: client_id %q, secret shown %v, registered %v, register %v", ap.ClientID, ap.ClientSecret != "", ap.Registered, ap.Register)
			}
			secret := ap.ClientSecret
			if len(ap.GrantTypes) != 1 || ap.GrantTypes[0] != "client_credentials" {
				t.Fatalf("grant_types %v, want the default [client_credentials]", ap.GrantTypes)
			}
			got, err := c.Application("acme", "shop")
			if err != nil || got.Application.ClientSecret != keymanagers.Mask || got.Application.ClientID != ap.ClientID {
				t.Fatalf("a later read must mask the secret: %+v %v", got.Application, err)
			}
			list, _ := json.Marshal(c.Applications("acme"))
			if bytes.Contains(list, []byte(secret)) {
				t.Fatal("the application list shows the client secret")
			}
			stored, _ := st.Load(ctx, appKey("acme", "shop"))
			if !bytes.Contains(stored, []byte(secret)) || !bytes.Contains(stored, []byte(`"registration_client_uri"`)) {
				t.Fatalf("storage lacks the registration: %s", stored)
			}
			if reg := c.cfg.Gateway.Registry().Tenant("acme").Application(tc.def.Name, ap.ClientID); reg == nil {
				t.Fatal("the registered application is not in the gateway's snapshot")
			}
			tok, err := c.ApplicationToken(ctx, "acme", "shop", []string{"read"})
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Scope != "read" || tok.ExpiresIn <= 0 {
				t.Fatalf("token answer: type %q scope %q expires_in %d", tok.TokenType, tok.Scope, tok.ExpiresIn)
			}
			if err := c.DeleteApplication(ctx, "acme", "shop", ""); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if _, err := c.Application("acme", "shop"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after delete: %v", err)
			}
			secretRefused(t, c.Runtime("acme", tc.def.Name), ap.ClientID, secret)
			for what, v := range map[string]string{"client secret": secret, "access token": tok.AccessToken, "initial access token": testidp.OIDCRegistrationIAT} {
				if logsContain(logs, v) {
					t.Fatalf("the %s was logged", what)
				}
			}
		})
	}
}

// recorder is a reverse proxy in front of a registration endpoint that
// keeps the clients it saw registered and counts the requests.
type recorder struct {
	srv     *httptest.Server
	url     string // the registration endpoint through the proxy
	mu      sync.Mutex
	clients []keymanagers.RegisteredClient
	posts   int
}

func newRecorder(t *testing.T, target string) *recorder {
	u, _ := url.Parse(target)
	r := &recorder{}
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	p.ModifyResponse = func(resp *http.Response) error {
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		var rc keymanagers.RegisteredClient
		if json.Unmarshal(b, &rc) == nil && rc.ClientID != "" {
			r.mu.Lock()
			r.clients = append(r.clients, rc)
			r.mu.Unlock()
		}
		return nil
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.posts++
		r.mu.Unlock()
		p.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.url = r.srv.URL + u.Path
	return r
}

// closedURL is an http URL nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/reg"
	_ = l.Close()
	return u
}

// TestRegisterApplication_FailurePaths proves each refusal of a
// registration is reported as the caller's mistake (field errors, 409) or
// the IdP's failure (ErrUpstream), without echoing secrets, and leaves
// nothing stored.
func TestRegisterApplication_FailurePaths(t *testing.T) {
	node := testidp.StartOIDCProvider(t)
	rec := newRecorder(t, node.RegistrationURL())
	good := oidcDCRDef(node)
	good.RegistrationEndpoint = rec.url
	down := oidcDCRDef(node)
	down.Name, down.RegistrationEndpoint = "down", closedURL(t)
	badIAT := oidcDCRDef(node)
	badIAT.Name, badIAT.RegistrationAccessToken = "bad-iat", "not-the-initial-access-token"
	off := keymanagers.Definition{Name: "off", WellKnownURL: node.WellKnownURL()}
	c := dcrCatalog(t, nil, good, down, badIAT, off)
	if _, err := c.PutApplication(context.Background(), "acme", keymanagers.Application{ID: "taken", KeyManager: "node", ClientID: "cc-client"}, "", true); err != nil {
		t.Fatal(err)
	}
	app := func(km string) keymanagers.Application {
		return keymanagers.Application{ID: "shop", KeyManager: km, Register: true, RegistrationScopes: []string{"read"}}
	}
	cases := []struct {
		name      string
		ap        keymanagers.Application
		kind      error  // catalog kind, or nil for field errors
		field     string // expected field error
		wantCalls int    // registration requests the recorder sees
	}{
		{"idp down", app("down"), ErrUpstream, "", 0},
		{"idp refuses the metadata", func() keymanagers.Application { a := app("node"); a.RegistrationScopes = []string{"admin"}; return a }(), nil, "registration_scopes", 1},
		{"bad initial access token", app("bad-iat"), ErrUpstream, "", 0},
		{"creation not enabled", app("off"), ErrConflict, "", 0},
		{"client_id set", func() keymanagers.Application { a := app("node"); a.ClientID = "mine"; return a }(), nil, "client_id", 0},
		{"unknown key manager", app("nope"), nil, "key_manager", 0},
		{"id taken", func() keymanagers.Application { a := app("node"); a.ID = "taken"; return a }(), ErrConflict, "", 0},
		{"registered sent by the caller", func() keymanagers.Application { a := app("node"); a.Registered = true; return a }(), nil, "registered", 0},
		{"authorization_code without redirect", func() keymanagers.Application {
			a := app("node")
			a.GrantTypes = []string{"authorization_code"}
			return a
		}(), nil, "redirect_uris", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.posts = 0
			rec.mu.Unlock()
			_, err := c.PutApplication(context.Background(), "acme", tc.ap, "", true)
			if err == nil {
				t.Fatal("registered")
			}
			if strings.Contains(err.Error(), badIAT.RegistrationAccessToken) || strings.Contains(err.Error(), testidp.OIDCRegistrationIAT) {
				t.Fatalf("the error echoes an initial access token: %v", err)
			}
			var fe keymanagers.FieldErrors
			switch {
			case tc.kind != nil && !errors.Is(err, tc.kind):
				t.Fatalf("error %v, want kind %v", err, tc.kind)
			case tc.kind == nil && (!errors.As(err, &fe) || fe[0].Field != tc.field):
				t.Fatalf("error %v, want a field error on %s", err, tc.field)
			}
			rec.mu.Lock()
			calls := rec.posts
			rec.mu.Unlock()
			if calls != tc.wantCalls {
				t.Fatalf("%d registration requests, want %d", calls, tc.wantCalls)
			}
			if _, err := c.Application("acme", "shop"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("something was stored: %v", err)
			}
		})
	}
}

// failingStorage fails every write of an application.
type failingStorage struct{ *memStorage }

func (f failingStorage) Store(ctx context.Context, k string, v []byte) error {
	if strings.HasPrefix(k, storageApplications) {
		return errors.New("disk full")
	}
	return f.memStorage.Store(ctx, k, v)
}

// TestRegisterApplication_StorageFailureDeletesTheClient proves a client
// registered for an application that cannot be stored is deleted again at
// the IdP (its secret no longer works), so nothing is left half-made.
func TestRegisterApplication_StorageFailureDeletesTheClient(t *testing.T) {
	node := testidp.StartOIDCProvider(t)
	rec := newRecorder(t, node.RegistrationURL())
	def := oidcDCRDef(node)
	def.RegistrationEndpoint = rec.url
	c := dcrCatalog(t, failingStorage{newMem()}, def)
	_, err := c.PutApplication(context.Background(), "acme", keymanagers.Application{ID: "shop", KeyManager: "node", Register: true,
		RegistrationScopes: []string{"read"}}, "", true)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want the storage failure", err)
	}
	rec.mu.Lock()
	clients := rec.clients
	rec.mu.Unlock()
	if len(clients) != 1 {
		t.Fatalf("%d clients registered, want 1", len(clients))
	}
	secretRefused(t, c.Runtime("acme", "node"), clients[0].ClientID, clients[0].ClientSecret)
	if len(c.Applications("acme")) != 0 {
		t.Fatal("an application was kept")
	}
}
