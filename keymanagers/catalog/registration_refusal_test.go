package catalog

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kmgate/caddy-keymanager/internal/testidp"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// fakeRegistrar is an RFC 7591 endpoint answering answer (with %s for its
// own URL) to registrations and deleteStatus to RFC 7592 deletions.
type fakeRegistrar struct {
	srv          *httptest.Server
	answer       string
	contentType  string
	deleteStatus int
	deletes      atomic.Int32
	auth         atomic.Value // the Authorization of the last registration
}

func newFakeRegistrar(t *testing.T) *fakeRegistrar {
	f := &fakeRegistrar{contentType: "application/json", deleteStatus: http.StatusNoContent}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token": // the gateway's own client, for the registration's token
			id, secret, _ := r.BasicAuth()
			if id != "gw" || secret != "gw-secret" || r.FormValue("grant_type") != "client_credentials" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"gw-token","token_type":"bearer","expires_in":60}`))
		case r.Method == http.MethodPost:
			f.auth.Store(r.Header.Get("Authorization"))
			w.Header().Set("Content-Type", f.contentType)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(strings.ReplaceAll(f.answer, "$URL", f.srv.URL)))
		case r.Method == http.MethodDelete:
			if r.Header.Get("Authorization") != "Bearer rat-1" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			f.deletes.Add(1)
			w.WriteHeader(f.deleteStatus)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func fakeDef(f *fakeRegistrar) keymanagers.Definition {
	d := kmDef("fake")
	d.EnableOAuthAppCreation, d.RegistrationEndpoint = true, f.srv.URL+"/reg"
	return d
}

const goodAnswer = `{"client_id":"c1","client_secret":"s3cret-value","registration_access_token":"rat-1","registration_client_uri":"$URL/reg/c1"}`

// TestRegisterClient_RefusesAnswersThatBreakTheRFCs proves the strict
// checks of the registration answer: each bad answer is ErrUpstream, the
// secret it may carry is never in the error, and a client that exists
// after all is deleted again.
func TestRegisterClient_RefusesAnswersThatBreakTheRFCs(t *testing.T) {
	cases := []struct {
		name, answer, contentType string
		wantDeletes               int32
	}{
		{"no client_id", `{"client_secret":"s3cret-value"}`, "application/json", 0},
		{"no client_secret", `{"client_id":"c1","registration_access_token":"rat-1","registration_client_uri":"$URL/reg/c1"}`, "application/json", 1},
		{"other auth method", `{"client_id":"c1","client_secret":"s3cret-value","token_endpoint_auth_method":"none","registration_access_token":"rat-1","registration_client_uri":"$URL/reg/c1"}`, "application/json", 1},
		{"token without uri", `{"client_id":"c1","client_secret":"s3cret-value","registration_access_token":"rat-1"}`, "application/json", 0},
		{"uri of another scheme", `{"client_id":"c1","client_secret":"s3cret-value","registration_access_token":"rat-1","registration_client_uri":"https://elsewhere.example/reg/c1"}`, "application/json", 0},
		{"not json", `<html>s3cret-value</html>`, "text/html", 0},
		{"json of the wrong shape", `["s3cret-value"]`, "application/json", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistrar(t)
			f.answer, f.contentType = tc.answer, tc.contentType
			c := dcrCatalog(t, nil, fakeDef(f))
			_, err := c.PutApplication(context.Background(), "acme", keymanagers.Application{ID: "shop", KeyManager: "fake", Register: true}, "", true)
			if !errors.Is(err, ErrUpstream) {
				t.Fatalf("error %v, want ErrUpstream", err)
			}
			if strings.Contains(err.Error(), "s3cret-value") || strings.Contains(err.Error(), "rat-1") {
				t.Fatalf("the error carries a secret: %v", err)
			}
			if got := f.deletes.Load(); got != tc.wantDeletes {
				t.Fatalf("%d deletions at the IdP, want %d", got, tc.wantDeletes)
			}
			if len(c.Applications("acme")) != 0 {
				t.Fatal("an application was stored")
			}
		})
	}
}

// TestRegisterClient_AuthenticatesAsConfigured proves the registration
// carries the initial access token, else a client-credentials token of the
// Key Manager's own client, else nothing (open registration).
func TestRegisterClient_AuthenticatesAsConfigured(t *testing.T) {
	cases := []struct {
		name string
		mut  func(d *keymanagers.Definition)
		want string
	}{
		{"initial access token", func(d *keymanagers.Definition) {
			d.RegistrationAccessToken, d.ClientID, d.ClientSecret = "iat-1", "gw", "gw-secret"
		}, "Bearer iat-1"},
		{"token of the gateway's client", func(d *keymanagers.Definition) { d.ClientID, d.ClientSecret = "gw", "gw-secret" }, "Bearer gw-token"},
		{"open registration", func(*keymanagers.Definition) {}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRegistrar(t)
			f.answer = goodAnswer
			def := fakeDef(f)
			def.TokenURL = f.srv.URL + "/token"
			tc.mut(&def)
			c := dcrCatalog(t, nil, def)
			if _, err := c.PutApplication(context.Background(), "acme", keymanagers.Application{ID: "shop", KeyManager: "fake", Register: true}, "", true); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.auth.Load().(string); got != tc.want {
				t.Fatalf("Authorization %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDeleteRegisteredApplication_WhenTheIdPRefuses proves the policy: a
// refused RFC 7592 deletion keeps the application (502, nothing changed),
// and force deletes it here anyway.
func TestDeleteRegisteredApplication_WhenTheIdPRefuses(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFakeRegistrar(t)
			f.answer, f.deleteStatus = goodAnswer, status
			core, logs := observer.New(zap.DebugLevel)
			c := dcrCatalogLogged(t, nil, zap.New(core), fakeDef(f))
			ctx := context.Background()
			if _, err := c.PutApplication(ctx, "acme", keymanagers.Application{ID: "shop", KeyManager: "fake", Register: true}, "", true); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if !logsContain(logs, "c1") || logsContain(logs, "s3cret-value") || logsContain(logs, "rat-1") {
					t.Fatal("the forced delete must log the client id, never its secret or registration token")
				}
			}()
			err := c.DeleteApplication(ctx, "acme", "shop", "")
			if !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "nothing was deleted") {
				t.Fatalf("error %v, want ErrUpstream saying nothing was deleted", err)
			}
			if _, err := c.Application("acme", "shop"); err != nil {
				t.Fatalf("the application is gone after a refused deletion: %v", err)
			}
			if err := c.DeleteApplicationWith(ctx, "acme", "shop", "", DeleteOptions{Force: true}); err != nil {
				t.Fatalf("forced delete: %v", err)
			}
			if _, err := c.Application("acme", "shop"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after a forced delete: %v", err)
			}
			if f.deletes.Load() != 2 {
				t.Fatalf("%d deletion attempts at the IdP, want 2", f.deletes.Load())
			}
		})
	}
}

// TestDeleteRegisteredApplication_WithoutRFC7592 proves an application
// whose Key Manager answered without management fields is deleted here
// without any call to the Key Manager.
func TestDeleteRegisteredApplication_WithoutRFC7592(t *testing.T) {
	f := newFakeRegistrar(t)
	f.answer, f.deleteStatus = `{"client_id":"c1","client_secret":"s3cret-value"}`, http.StatusForbidden
	c := dcrCatalog(t, nil, fakeDef(f))
	ctx := context.Background()
	if _, err := c.PutApplication(ctx, "acme", keymanagers.Application{ID: "shop", KeyManager: "fake", Register: true}, "", true); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteApplication(ctx, "acme", "shop", ""); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Application("acme", "shop"); !errors.Is(err, ErrNotFound) || f.deletes.Load() != 0 {
		t.Fatalf("after delete: %v, %d calls to the IdP", err, f.deletes.Load())
	}
}

// TestReplaceRegisteredApplication_KeepsTheRegistration proves a PUT of a
// registered application may change scopes and subscriptions, keeps the
// client and its secret, and refuses changes the IdP would not see.
func TestReplaceRegisteredApplication_KeepsTheRegistration(t *testing.T) {
	f := newFakeRegistrar(t)
	f.answer = goodAnswer
	c := dcrCatalog(t, nil, fakeDef(f))
	ctx := context.Background()
	v, err := c.PutApplication(ctx, "acme", keymanagers.Application{ID: "shop", KeyManager: "fake", Register: true, ClientName: "Shop"}, "", true)
	if err != nil {
		t.Fatal(err)
	}
	read := v.Application
	read.ClientSecret = keymanagers.Mask // as a GET shows it
	cases := []struct {
		name   string
		change func(a *keymanagers.Application)
		field  string // "" means accepted
	}{
		{"scopes as read back", func(a *keymanagers.Application) { a.Scopes = []string{"read"} }, ""},
		{"metadata left out", func(a *keymanagers.Application) {
			a.ClientID, a.ClientName, a.GrantTypes, a.Registered, a.ClientSecret = "", "", nil, false, ""
		}, ""},
		{"client_id changed", func(a *keymanagers.Application) { a.ClientID = "other" }, "client_id"},
		{"client_name changed", func(a *keymanagers.Application) { a.ClientName = "Other" }, "client_name"},
		{"a secret sent", func(a *keymanagers.Application) { a.ClientSecret = "guess" }, "client_secret"},
		{"another application claims to be registered", func(a *keymanagers.Application) {
			a.ID, a.ClientID = "plain", "someone"
		}, "registered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ap := read
			tc.change(&ap)
			got, err := c.PutApplication(ctx, "acme", ap, "", false)
			var fe keymanagers.FieldErrors
			if tc.field != "" {
				if !errors.As(err, &fe) || fe[0].Field != tc.field {
					t.Fatalf("error %v, want a field error on %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Application.ClientID != "c1" || !got.Application.Registered || got.Application.ClientSecret != keymanagers.Mask {
				t.Fatalf("the registration was not kept: %+v", got.Application)
			}
			c.mu.Lock()
			reg := c.apps["acme"]["shop"].rec.Registration
			c.mu.Unlock()
			if reg == nil || reg.ClientSecret != "s3cret-value" {
				t.Fatal("the stored secret was lost")
			}
		})
	}
}

// TestApplicationToken_Refusals proves token generation refuses what the
// gateway did not register or the Key Manager does not allow (409), an
// unknown application (404), a bad scope (400) and a scope the IdP refuses
// (400 from Hydra's invalid_scope).
func TestApplicationToken_Refusals(t *testing.T) {
	hydra := testidp.StartHydraDCR(t)
	noTokens := hydraDCRDef(hydra)
	noTokens.Name, noTokens.EnableTokenGeneration = "no-tokens", false
	c := dcrCatalog(t, nil, hydraDCRDef(hydra), noTokens)
	c.cfg.ConfigApps = map[string][]*keymanagers.Application{"acme": {{ID: "from-config", KeyManager: "hydra", ClientID: "x"}}}
	ctx := context.Background()
	for _, ap := range []keymanagers.Application{
		{ID: "registered", KeyManager: "hydra", Register: true, RegistrationScopes: []string{"read"}},
		{ID: "no-tokens", KeyManager: "no-tokens", Register: true},
		{ID: "plain", KeyManager: "hydra", ClientID: "someone"},
	} {
		if _, err := c.PutApplication(ctx, "acme", ap, "", true); err != nil {
			t.Fatalf("%s: %v", ap.ID, err)
		}
	}
	cases := []struct {
		name, id string
		scopes   []string
		kind     error
		field    string
	}{
		{"not registered by the gateway", "plain", nil, ErrConflict, ""},
		{"config application", "from-config", nil, ErrConflict, ""},
		{"token generation off", "no-tokens", nil, ErrConflict, ""},
		{"unknown application", "nope", nil, ErrNotFound, ""},
		{"bad scope token", "registered", []string{"a b"}, nil, "scopes[0]"},
		{"scope the IdP refuses", "registered", []string{"write"}, nil, "scopes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := c.ApplicationToken(ctx, "acme", tc.id, tc.scopes)
			var fe keymanagers.FieldErrors
			switch {
			case tok != nil:
				t.Fatal("a token was issued")
			case tc.kind != nil && !errors.Is(err, tc.kind):
				t.Fatalf("error %v, want %v", err, tc.kind)
			case tc.kind == nil && (!errors.As(err, &fe) || fe[0].Field != tc.field):
				t.Fatalf("error %v, want a field error on %s", err, tc.field)
			}
		})
	}
	tok, err := c.ApplicationToken(ctx, "acme", "registered", nil)
	if err != nil || tok.Scope != "read" {
		t.Fatalf("default scopes (the registration's): %+v %v", tok, err)
	}
}
