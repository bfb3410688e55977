package keymanagers

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

// assertFieldError asserts err is a FieldErrors naming field.
func assertFieldError(tb testing.TB, err error, field string) {
	tb.Helper()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		tb.Fatalf("got %v (%T), want FieldErrors naming %q", err, err, field)
	}
	for _, e := range fe {
		if e.Field == field {
			if e.Message == "" {
				tb.Fatalf("field error for %q has no message", field)
			}
			return
		}
	}
	tb.Fatalf("FieldErrors %q do not name field %q", fe.Error(), field)
}

func testPublicKeyPEM(tb testing.TB) string {
	der, err := x509.MarshalPKIXPublicKey(poolKey(tb, "p256-a").Public())
	must(tb, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func validDef() Definition {
	return Definition{Name: "idp", Issuer: testIssuer, JWKSURL: "https://idp.example.com/jwks"}
}

func TestDefinitionValidate_RefusesBadDefinitionsNamingTheField(t *testing.T) {
	pubPEM := testPublicKeyPEM(t)
	d := func(mut func(*Definition)) Definition {
		def := validDef()
		mut(&def)
		return def
	}
	secret := strings.Repeat("k", 32)
	cases := []struct {
		name  string
		def   Definition
		field string
	}{
		{"empty name", d(func(x *Definition) { x.Name = "" }), "name"},
		{"upper-case name", d(func(x *Definition) { x.Name = "IdP" }), "name"},
		{"name starting with a dash", d(func(x *Definition) { x.Name = "-idp" }), "name"},
		{"name with a space", d(func(x *Definition) { x.Name = "my idp" }), "name"},
		{"name with a slash", d(func(x *Definition) { x.Name = "a/b" }), "name"},
		{"name of 65 characters", d(func(x *Definition) { x.Name = strings.Repeat("a", 65) }), "name"},
		{"name with unicode", d(func(x *Definition) { x.Name = "idé" }), "name"},
		{"alg none", d(func(x *Definition) { x.AllowedAlgorithms = []string{"RS256", "none"} }), "allowed_algorithms"},
		{"alg NONE", d(func(x *Definition) { x.AllowedAlgorithms = []string{"NONE"} }), "allowed_algorithms"},
		{"HS256 without shared_secret", d(func(x *Definition) { x.AllowedAlgorithms = []string{"HS256"} }), "allowed_algorithms"},
		{"HS512 without shared_secret", d(func(x *Definition) { x.AllowedAlgorithms = []string{"RS256", "HS512"} }), "allowed_algorithms"},
		{"unknown alg", d(func(x *Definition) { x.AllowedAlgorithms = []string{"RS1024"} }), "allowed_algorithms"},
		{"lower-case alg", d(func(x *Definition) { x.AllowedAlgorithms = []string{"rs256"} }), "allowed_algorithms"},
		{"shared_secret shorter than 32 bytes", d(func(x *Definition) { x.SharedSecret = "short" }), "shared_secret"},
		{"shared_secret placeholder is not exempt (admin API definitions are never expanded)", d(func(x *Definition) { x.SharedSecret = "{env.HMAC}" }), "shared_secret"},
		{"jwks_url with ftp scheme", d(func(x *Definition) { x.JWKSURL = "ftp://idp.example.com/jwks" }), "jwks_url"},
		{"jwks_url relative", d(func(x *Definition) { x.JWKSURL = "/jwks" }), "jwks_url"},
		{"jwks_url without host", d(func(x *Definition) { x.JWKSURL = "https:///jwks" }), "jwks_url"},
		{"jwks_url not a URL", d(func(x *Definition) { x.JWKSURL = "http://[::1" }), "jwks_url"},
		{"jwks_url with credentials", d(func(x *Definition) { x.JWKSURL = "https://user:pw@idp.example.com/jwks" }), "jwks_url"},
		{"well_known_url with file scheme", d(func(x *Definition) { x.WellKnownURL = "file:///etc/passwd" }), "well_known_url"},
		{"introspection_url with javascript scheme", d(func(x *Definition) { x.IntrospectionURL = "javascript:alert(1)" }), "introspection_url"},
		{"jwks_url and certificate_pem together", d(func(x *Definition) { x.CertificatePEM = pubPEM }), "certificate_pem"},
		{"certificate_pem that is not PEM", d(func(x *Definition) { x.JWKSURL = ""; x.CertificatePEM = "hello" }), "certificate_pem"},
		{"certificate_pem holding a private key", d(func(x *Definition) {
			x.JWKSURL = ""
			x.CertificatePEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}), "certificate_pem"},
		{"missing issuer and well_known_url", d(func(x *Definition) { x.Issuer = "" }), "issuer"},
		{"issuer with surrounding white space", d(func(x *Definition) { x.Issuer = " " + testIssuer }), "issuer"},
		{"no jwks_url, certificate_pem, well_known_url or shared_secret", d(func(x *Definition) { x.JWKSURL = "" }), "jwks_url"},
		{"empty audience", d(func(x *Definition) { x.Audiences = []string{"api://a", ""} }), "audiences[1]"},
		{"unknown token_validation", d(func(x *Definition) { x.TokenValidation = "magic" }), "token_validation"},
		{"introspection without introspection_url", d(func(x *Definition) { x.TokenValidation = ValidationIntrospection }), "introspection_url"},
		{"negative clock_skew", d(func(x *Definition) { x.ClockSkew = Duration(-time.Second) }), "clock_skew"},
		{"negative timeout", d(func(x *Definition) { x.Timeout = Duration(-time.Second) }), "timeout"},
		{"negative jwks_refresh_interval", d(func(x *Definition) { x.JWKSRefreshInterval = Duration(-time.Minute) }), "jwks_refresh_interval"},
		{"negative jwks_min_refresh_interval", d(func(x *Definition) { x.JWKSMinRefreshInterval = Duration(-time.Second) }), "jwks_min_refresh_interval"},
		{"negative introspection_cache_ttl", d(func(x *Definition) { x.IntrospectionCacheTTL = Duration(-time.Second) }), "introspection_cache_ttl"},
		{"negative negative_cache_ttl", d(func(x *Definition) { x.NegativeCacheTTL = Duration(-time.Second) }), "negative_cache_ttl"},
		{"clock_skew over 10m", d(func(x *Definition) { x.ClockSkew = Duration(11 * time.Minute) }), "clock_skew"},
		{"timeout over 2m", d(func(x *Definition) { x.Timeout = Duration(3 * time.Minute) }), "timeout"},
		{"jwks_min_refresh_interval above jwks_refresh_interval", d(func(x *Definition) {
			x.JWKSRefreshInterval = Duration(time.Minute)
			x.JWKSMinRefreshInterval = Duration(2 * time.Minute)
		}), "jwks_min_refresh_interval"},
		{"token_handling of unknown type", d(func(x *Definition) { x.TokenHandling = []TokenHandlingRule{{Type: "magic"}} }), "token_handling[0].type"},
		{"token_handling reference without pattern", d(func(x *Definition) { x.TokenHandling = []TokenHandlingRule{{Type: "reference"}} }), "token_handling[0].pattern"},
		{"token_handling reference with a bad pattern", d(func(x *Definition) {
			x.TokenHandling = []TokenHandlingRule{{Type: "reference", Pattern: "^ok$"}, {Type: "reference", Pattern: "(["}}
		}), "token_handling[1].pattern"},
		{"token_handling jwt without claims", d(func(x *Definition) { x.TokenHandling = []TokenHandlingRule{{Type: "jwt"}} }), "token_handling[0].claims"},
		{"token_handling jwt with a bad claim regex", d(func(x *Definition) {
			x.TokenHandling = []TokenHandlingRule{{Type: "jwt", Claims: map[string]string{"iss": "(["}}}
		}), "token_handling[0].claims.iss"},
		{"blank tls.ca_file", d(func(x *Definition) { x.TLS = &TLSConfig{CAFile: "  "} }), "tls.ca_file"},
		{"HS256 with a short shared_secret", d(func(x *Definition) { x.SharedSecret = secret[:31]; x.AllowedAlgorithms = []string{"HS256"} }), "shared_secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Prepare(tc.def, nil)
			assertFieldError(t, err, tc.field)
		})
	}
}

func TestDefinitionValidate_ReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Prepare(Definition{Name: "BAD", JWKSURL: "ftp://x", AllowedAlgorithms: []string{"none"}, ClockSkew: Duration(-1)}, nil)
	for _, f := range []string{"name", "jwks_url", "allowed_algorithms", "clock_skew", "issuer"} {
		assertFieldError(t, err, f)
	}
	if !strings.Contains(err.Error(), "; ") {
		t.Fatalf("FieldErrors.Error() should join problems: %q", err.Error())
	}
}

func TestDefinitionValidate_AcceptsGoodDefinitions(t *testing.T) {
	off := false
	cases := []struct {
		name string
		def  Definition
	}{
		{"issuer and jwks_url", validDef()},
		{"well_known_url only", Definition{Name: "disc", WellKnownURL: "https://idp.example.com/.well-known/openid-configuration"}},
		{"issuer and certificate_pem", Definition{Name: "pinned", Issuer: testIssuer, CertificatePEM: testPublicKeyPEM(t)}},
		{"issuer and shared_secret", Definition{Name: "hmac", Issuer: testIssuer, SharedSecret: strings.Repeat("k", 32)}},
		{"HS256 listed with a shared_secret", Definition{Name: "hmac", Issuer: testIssuer, SharedSecret: strings.Repeat("k", 32), AllowedAlgorithms: []string{"HS256"}}},
		{"disabled with nothing else", Definition{Name: "off", Enabled: &off}},
		{"introspection with introspection_url", Definition{Name: "intro", TokenValidation: ValidationIntrospection, IntrospectionURL: "https://idp.example.com/introspect", ClientID: "gw"}},
		{"introspection without client auth", Definition{Name: "intro", TokenValidation: ValidationIntrospection, IntrospectionURL: "https://idp.example.com/introspect", IntrospectionAuth: AuthNone}},
		{"name of 64 characters with dots, dashes and underscores", Definition{Name: "a" + strings.Repeat("._-9", 15) + "xyz", Issuer: testIssuer, JWKSURL: "http://127.0.0.1:8080/jwks"}},
		{"all bounds at their maximum", func() Definition {
			d := validDef()
			d.ClockSkew = Duration(10 * time.Minute)
			d.Timeout = Duration(2 * time.Minute)
			d.JWKSMinRefreshInterval = d.JWKSRefreshInterval
			return d
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Prepare(tc.def, nil); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
		})
	}
}

func TestNormalize_FillsDefaultsAndAddsHMACOnlyWithASharedSecret(t *testing.T) {
	d := validDef().Normalize()
	if d.TokenValidation != ValidationAuto || time.Duration(d.ClockSkew) != DefaultClockSkew ||
		time.Duration(d.Timeout) != DefaultTimeout || time.Duration(d.JWKSRefreshInterval) != DefaultJWKSRefreshInterval ||
		time.Duration(d.JWKSMinRefreshInterval) != DefaultJWKSMinRefreshInterval ||
		time.Duration(d.IntrospectionCacheTTL) != DefaultIntrospectionCacheTTL || time.Duration(d.NegativeCacheTTL) != DefaultNegativeCacheTTL {
		t.Fatalf("defaults not applied: %+v", d)
	}
	for _, a := range d.AllowedAlgorithms {
		if strings.HasPrefix(a, "HS") || strings.EqualFold(a, "none") {
			t.Fatalf("default algorithms include %s without a shared secret", a)
		}
	}
	if len(d.AllowedAlgorithms) != 10 {
		t.Fatalf("default algorithms = %v", d.AllowedAlgorithms)
	}
	s := validDef()
	s.SharedSecret = strings.Repeat("k", 32)
	if n := s.Normalize(); !contains(n.AllowedAlgorithms, "HS256") || !contains(n.AllowedAlgorithms, "RS256") {
		t.Fatalf("with a shared secret: %v", n.AllowedAlgorithms)
	}
	// Explicit values are kept.
	e := validDef()
	e.ClockSkew = Duration(time.Second)
	e.AllowedAlgorithms = []string{"ES256"}
	if n := e.Normalize(); n.ClockSkew != Duration(time.Second) || len(n.AllowedAlgorithms) != 1 {
		t.Fatalf("explicit values overwritten: %+v", n)
	}
	// Normalizing must not alias the package's default list.
	n1 := validDef().Normalize()
	n1.AllowedAlgorithms[0] = "XX"
	if n2 := validDef().Normalize(); n2.AllowedAlgorithms[0] == "XX" {
		t.Fatal("Normalize returns the shared default slice")
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

type failingConnector struct{}

func (failingConnector) Derive(*Definition) error { return errors.New("tenant_domain is required") }

type derivingConnector struct{}

func (derivingConnector) Derive(d *Definition) error {
	if d.Issuer == "" {
		d.Issuer = "https://derived.example.com"
	}
	if d.JWKSURL == "" {
		d.JWKSURL = "https://derived.example.com/jwks"
	}
	return nil
}

func TestPrepare_AppliesConnectorBeforeValidation(t *testing.T) {
	_, err := Prepare(Definition{Name: "x"}, failingConnector{})
	assertFieldError(t, err, "connector")
	d, err := Prepare(Definition{Name: "x"}, derivingConnector{})
	if err != nil || d.Issuer != "https://derived.example.com" {
		t.Fatalf("derived definition: %+v, %v", d, err)
	}
	d, err = Prepare(Definition{Name: "x", Issuer: "https://mine.example.com"}, derivingConnector{})
	if err != nil || d.Issuer != "https://mine.example.com" {
		t.Fatalf("connector overwrote a user value: %+v, %v", d, err)
	}
	if err := (Custom{}).Derive(&Definition{}); err != nil {
		t.Fatal(err)
	}
}

func TestParseDuration_AcceptsGoDurationsAndDays(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"30s", 30 * time.Second},
		{"1m30s", 90 * time.Second},
		{"1d", 24 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"0d", 0},
		{"250ms", 250 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// ParseDuration's "d" branch converts any float, so NaN, ±Inf and values
// beyond int64 nanoseconds turn into arbitrary durations (time.ParseDuration
// refuses overflow). See the report.
func TestParseDuration_RefusesMalformedAndOverflowingValues(t *testing.T) {
	for _, in := range []string{"", "d", "xd", "1x", "30", "NaNd", "Infd", "+Infd", "-Infd", "1e300d", "200000d"} {
		t.Run(in, func(t *testing.T) {
			if got, err := ParseDuration(in); err == nil {
				t.Fatalf("ParseDuration(%q) = %v (%d ns), want an error", in, got, int64(got))
			}
		})
	}
}

func TestDuration_JSONReadsStringsAndNanosecondsAndWritesStrings(t *testing.T) {
	var v struct {
		A Duration `json:"a"`
		B Duration `json:"b"`
		C Duration `json:"c"`
	}
	must(t, json.Unmarshal([]byte(`{"a":"45s","b":1000000000,"c":"2d"}`), &v))
	if time.Duration(v.A) != 45*time.Second || time.Duration(v.B) != time.Second || time.Duration(v.C) != 48*time.Hour {
		t.Fatalf("decoded %+v", v)
	}
	out, err := json.Marshal(v)
	must(t, err)
	if string(out) != `{"a":"45s","b":"1s","c":"48h0m0s"}` {
		t.Fatalf("encoded %s", out)
	}
	for _, bad := range []string{`{"a":"soon"}`, `{"a":1.5}`, `{"a":true}`, `{"a":[]}`} {
		var w struct {
			A Duration `json:"a"`
		}
		if err := json.Unmarshal([]byte(bad), &w); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
}

func TestDefinition_JSONRoundTripAndRedactedHidesSecrets(t *testing.T) {
	in := `{"name":"idp","issuer":"https://idp.example.com","jwks_url":"https://idp.example.com/jwks",
		"client_secret":"cs-123","shared_secret":"` + strings.Repeat("k", 32) + `","clock_skew":"1m","audiences":["api://a"],
		"claims":{"consumer_key":"cid","scopes":"scp"}}`
	var d Definition
	must(t, json.Unmarshal([]byte(in), &d))
	if time.Duration(d.ClockSkew) != time.Minute || d.Claims.ConsumerKey != "cid" || !d.IsEnabled() {
		t.Fatalf("decoded %+v", d)
	}
	r := d.Redacted()
	if r.ClientSecret != Mask || r.SharedSecret != Mask {
		t.Fatalf("Redacted kept secrets: %+v", r)
	}
	if d.ClientSecret != "cs-123" {
		t.Fatal("Redacted modified the original")
	}
	b, err := json.Marshal(r)
	must(t, err)
	if strings.Contains(string(b), "cs-123") || strings.Contains(string(b), strings.Repeat("k", 32)) {
		t.Fatalf("redacted JSON leaks a secret: %s", b)
	}
	empty := Definition{Name: "x"}.Redacted()
	if empty.ClientSecret != "" || empty.SharedSecret != "" {
		t.Fatal("Redacted invented secrets")
	}
}

func TestFingerprint_ChangesWithTenantAndDefinition(t *testing.T) {
	a := mustPrepare(t, validDef())
	b := a
	b.Audiences = []string{"api://x"}
	fa, fb, fc := Fingerprint("t1", a), Fingerprint("t1", b), Fingerprint("t2", a)
	if fa == fb || fa == fc || fb == fc {
		t.Fatalf("fingerprints collide: %s %s %s", fa, fb, fc)
	}
	if Fingerprint("t1", a) != fa {
		t.Fatal("fingerprint is not deterministic")
	}
	if !strings.HasPrefix(fa, "t1/idp#") {
		t.Fatalf("fingerprint %q", fa)
	}
	// Secrets are part of behaviour: changing one changes the fingerprint.
	s1, s2 := a, a
	s1.SharedSecret, s2.SharedSecret = strings.Repeat("a", 32), strings.Repeat("b", 32)
	if Fingerprint("t1", s1) == Fingerprint("t1", s2) {
		t.Fatal("shared secret change keeps the fingerprint")
	}
}

func TestValidName_AcceptsOnlyLowerCaseNamesOfUpTo64Characters(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "acme": true, "0": true, "a.b_c-d": true, strings.Repeat("x", 64): true,
		"": false, "A": false, ".a": false, "_a": false, strings.Repeat("x", 65): false, "a b": false, "a\n": false, "global": true,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
