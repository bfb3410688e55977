package keymanagers

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestDefinitionWarnings_NameWhatWeakensAKeyManager(t *testing.T) {
	base := Definition{Name: "k", Issuer: "https://idp.test", JWKSURL: "https://idp.test/jwks", Audiences: []string{"api://orders"}}
	off := false
	for _, tc := range []struct {
		name string
		edit func(*Definition)
		want []string // substrings, one per expected warning, in order
	}{
		{"https endpoints and an audience warn of nothing", func(*Definition) {}, nil},
		{"a JWT Key Manager without audience", func(d *Definition) { d.Audiences = nil }, []string{"no audience"}},
		{"require_at_jwt stands in for an audience", func(d *Definition) { d.Audiences, d.RequireATJWT = nil, true }, nil},
		{"an introspection-only Key Manager needs no audience", func(d *Definition) {
			d.Audiences, d.JWKSURL, d.TokenValidation, d.IntrospectionURL = nil, "", ValidationIntrospection, "https://idp.test/introspect"
		}, nil},
		{"a disabled Key Manager is not nagged about audience", func(d *Definition) { d.Audiences, d.Enabled = nil, &off }, nil},
		{"a static http jwks_url", func(d *Definition) { d.JWKSURL = "http://idp.corp.test/jwks" }, []string{"jwks_url is plain http://"}},
		{"static http introspection and token URLs", func(d *Definition) {
			d.IntrospectionURL, d.TokenURL = "http://10.0.0.5/introspect", "http://10.0.0.5/token"
		}, []string{"introspection_url is plain http://", "token_url is plain http://"}},
		{"http to loopback is not on the network", func(d *Definition) {
			d.JWKSURL, d.WellKnownURL, d.IntrospectionURL = "http://127.0.0.1:4444/jwks", "http://localhost:4444/.well-known/openid-configuration", "http://[::1]/introspect"
		}, nil},
		{"insecure_discovery", func(d *Definition) { d.InsecureDiscovery = true }, []string{"insecure_discovery is on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base
			tc.edit(&d)
			got := d.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Fatalf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestNewKeyManager_LogsEachWarningOnce(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	def := Definition{Name: "k", Issuer: "https://idp.test", JWKSURL: "http://idp.corp.test/jwks"}.Normalize()
	km, err := NewKeyManager(testTenant, def, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	if logs.FilterMessageSnippet("no audience").Len() != 1 || logs.FilterMessageSnippet("jwks_url is plain http://").Len() != 1 {
		t.Fatalf("logged %v", logs.All())
	}
	if e := logs.All()[0]; e.ContextMap()["key_manager"] != "k" {
		t.Fatalf("entry does not name its Key Manager: %v", e.ContextMap())
	}
}
