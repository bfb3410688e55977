package keymanagers

import (
	"encoding/json"
	"strings"
	"testing"
)

func dcrDef(mut func(*Definition)) Definition {
	d := validDef()
	d.EnableOAuthAppCreation, d.EnableTokenGeneration = true, true
	d.RegistrationEndpoint, d.TokenURL = "https://idp.example.com/register", "https://idp.example.com/token"
	if mut != nil {
		mut(&d)
	}
	return d.Normalize()
}

// TestDefinitionValidate_DeveloperKeyFields proves the developer-key
// fields are checked together and name the field at fault.
func TestDefinitionValidate_DeveloperKeyFields(t *testing.T) {
	cases := []struct {
		name  string
		def   Definition
		field string // "" means valid
	}{
		{"registration and tokens", dcrDef(nil), ""},
		{"endpoints from discovery", dcrDef(func(d *Definition) {
			d.RegistrationEndpoint, d.TokenURL, d.WellKnownURL, d.JWKSURL = "", "", "https://idp.example.com/.well-known/openid-configuration", ""
		}), ""},
		{"loopback http registration", dcrDef(func(d *Definition) { d.RegistrationEndpoint = "http://127.0.0.1:4444/oauth2/register" }), ""},
		{"initial access token", dcrDef(func(d *Definition) { d.RegistrationAccessToken = "iat" }), ""},
		{"tokens without app creation", dcrDef(func(d *Definition) { d.EnableOAuthAppCreation = false }), "enable_token_generation"},
		{"tokens without a token endpoint", dcrDef(func(d *Definition) { d.TokenURL = "" }), "enable_token_generation"},
		{"creation without a registration endpoint", dcrDef(func(d *Definition) { d.RegistrationEndpoint = "" }), "enable_oauth_app_creation"},
		{"plain http registration to the network", dcrDef(func(d *Definition) { d.RegistrationEndpoint = "http://idp.example.com/register" }), "registration_endpoint"},
		{"registration endpoint not a URL", dcrDef(func(d *Definition) { d.RegistrationEndpoint = "/register" }), "registration_endpoint"},
		{"registration endpoint with credentials", dcrDef(func(d *Definition) { d.RegistrationEndpoint = "https://u:p@idp.example.com/register" }), "registration_endpoint"},
		{"initial access token without creation", dcrDef(func(d *Definition) {
			d.EnableOAuthAppCreation, d.EnableTokenGeneration, d.RegistrationAccessToken = false, false, "iat"
		}), "registration_access_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.def.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid definition refused: %v", err)
				}
				return
			}
			assertFieldError(t, err, tc.field)
		})
	}
}

// TestRegistrationAccessToken_IsMaskedLikeClientSecret proves the initial
// access token is masked in every shown definition, restored from the
// previous one when sent back masked, and not sent to a new endpoint.
func TestRegistrationAccessToken_IsMaskedLikeClientSecret(t *testing.T) {
	prev := dcrDef(func(d *Definition) { d.RegistrationAccessToken, d.ClientSecret = "iat-secret-value", "cs" })
	red := prev.Redacted()
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), "iat-secret-value") || red.RegistrationAccessToken != Mask {
		t.Fatalf("Redacted shows the initial access token: %s", b)
	}
	back, err := red.RestoreMaskedSecrets(prev)
	if err != nil || back.RegistrationAccessToken != "iat-secret-value" {
		t.Fatalf("restore: %q %v", back.RegistrationAccessToken, err)
	}
	moved := red
	moved.RegistrationEndpoint = "https://attacker.example/register"
	if _, err := moved.RestoreMaskedSecrets(prev); err == nil {
		t.Fatal("a masked initial access token was restored for a new registration_endpoint")
	} else {
		assertFieldError(t, err, "registration_endpoint")
	}
}

// TestApplicationValidate_RegistrationFields proves the rules of
// register and the metadata sent to the Key Manager.
func TestApplicationValidate_RegistrationFields(t *testing.T) {
	reg := func(mut func(*Application)) Application {
		a := Application{ID: "shop", KeyManager: "idp", Register: true}
		mut(&a)
		return a
	}
	cases := []struct {
		name  string
		app   Application
		field string
	}{
		{"register with metadata", reg(func(a *Application) {
			a.ClientName, a.GrantTypes, a.RedirectURIs = "Shop", []string{"authorization_code", "refresh_token"}, []string{"https://shop.example/cb"}
			a.RegistrationScopes = []string{"read"}
		}), ""},
		{"stored registered application", Application{ID: "shop", KeyManager: "idp", ClientID: "c1", Registered: true, ClientName: "Shop"}, ""},
		{"register with a client_id", reg(func(a *Application) { a.ClientID = "c1" }), "client_id"},
		{"neither client_id nor register", reg(func(a *Application) { a.Register = false }), "client_id"},
		{"metadata without register", Application{ID: "shop", KeyManager: "idp", ClientID: "c1", ClientName: "Shop"}, "register"},
		{"unknown grant", reg(func(a *Application) { a.GrantTypes = []string{"password"} }), "grant_types[0]"},
		{"code grant without redirect", reg(func(a *Application) { a.GrantTypes = []string{"authorization_code"} }), "redirect_uris"},
		{"relative redirect", reg(func(a *Application) { a.RedirectURIs = []string{"/cb"} }), "redirect_uris[0]"},
		{"redirect with a fragment", reg(func(a *Application) { a.RedirectURIs = []string{"https://shop.example/cb#x"} }), "redirect_uris[0]"},
		{"bad registration scope", reg(func(a *Application) { a.RegistrationScopes = []string{"a b"} }), "registration_scopes[0]"},
		{"long client name", reg(func(a *Application) { a.ClientName = strings.Repeat("n", 201) }), "client_name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.app.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			assertFieldError(t, err, tc.field)
		})
	}
}

// TestWithApplications_RefusesRegisterOutsideTheAdminAPI proves a config
// application cannot ask for registration nor carry a client secret.
func TestWithApplications_RefusesRegisterOutsideTheAdminAPI(t *testing.T) {
	f := newFixture(t)
	f.add("acme", validDef())
	reg := f.build().Registry()
	for _, a := range []*Application{
		{ID: "shop", KeyManager: "idp", Register: true},
		{ID: "shop", KeyManager: "idp", ClientID: "c1", ClientSecret: "s"},
	} {
		if _, err := reg.WithApplications(map[string][]*Application{"acme": {a}}); err == nil {
			t.Fatalf("accepted %+v", *a)
		}
	}
}
