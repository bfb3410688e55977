package caddymodule

// Fuzz targets of the Caddy glue: the Authorization header splitter, the
// keymanagers global option, the keymanager directive and the admin API's
// definition decoding. Seed corpora live in testdata/fuzz/<Name> as well
// as in the f.Add calls.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// FuzzExtractToken feeds arbitrary Authorization values (one or two
// headers, any max_token_size) to Handler.extractToken. It must never
// panic; refusals are "missing" or "invalid"; a token it returns comes
// from a single header, is a non-empty suffix of it after "Bearer " (any
// case) and spaces, and respects the size limit. extractToken leaves the
// b64token syntax to the gateway: a returned token that is no b64token
// must be refused by Authenticate with ErrTokenSyntax, and one that is
// must never be.
func FuzzExtractToken(f *testing.F) {
	gw := fzGateway(f)
	for _, s := range []string{
		"Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln", "bearer abc", "BEARER abc==", "Bearer  abc", "Bearer", "Bearer ",
		"Bearer      ", "Basic dXNlcjpwYXNz", "Bearer\tabc", " Bearer abc", "Bearer abc def", "Bearer abc,Bearer def",
		"Bearer tökén", "Bearer \x00", "Bearer a\"b", "Bearer ===", "Bearer a=b", "Bearer ~+/-._", "", "B", "Bearerabc",
		"Bearer " + strings.Repeat("A", DefaultMaxTokenSize), "Bearer " + strings.Repeat("A", DefaultMaxTokenSize+1),
		"Bearer " + strings.Repeat(" ", 100) + "abc",
	} {
		f.Add(s, "", uint16(0), false)
	}
	f.Add("Bearer abc", "Bearer def", uint16(0), true)
	f.Add("Bearer abcdef", "", uint16(3), false)
	f.Add("Bearer abc", "", uint16(3), false)
	f.Add("Bearer     abc", "", uint16(3), false)
	f.Fuzz(func(t *testing.T, value, second string, max uint16, two bool) {
		limit := int(max)
		if limit == 0 {
			limit = DefaultMaxTokenSize
		}
		h := &Handler{MaxTokenSize: limit}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{value}
		if two {
			r.Header["Authorization"] = append(r.Header["Authorization"], second)
		}
		tok, err := h.extractToken(r)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			if k := keymanagers.Classify(err).Kind; k != keymanagers.KindMissing && k != keymanagers.KindInvalid {
				t.Fatalf("refusal %v of kind %d", err, k)
			}
			return
		}
		switch {
		case two:
			t.Fatal("a token from two Authorization headers")
		case tok == "" || tok[0] == ' ':
			t.Fatalf("token %q", tok)
		case len(tok) > limit:
			t.Fatalf("token of %d bytes over the limit %d", len(tok), limit)
		case len(value) < 7 || !strings.EqualFold(value[:7], "Bearer "):
			t.Fatalf("token %q from a header without the Bearer scheme", tok)
		case !strings.HasSuffix(value, tok) || strings.TrimLeft(value[7:], " ") != tok:
			t.Fatalf("token %q is not what follows \"Bearer \" in %q", tok, value)
		}
		_, aerr := gw.Authenticate(context.Background(), "acme", nil, tok)
		if syntaxErr := errors.Is(aerr, keymanagers.ErrTokenSyntax); syntaxErr == keymanagers.ValidTokenSyntax(tok) {
			t.Fatalf("token %q (b64token %v): Authenticate says %v", tok, keymanagers.ValidTokenSyntax(tok), aerr)
		}
	})
}

// fzGateway is a gateway over one shared-secret Key Manager (no network).
func fzGateway(tb testing.TB) *keymanagers.Gateway {
	tb.Helper()
	def, err := keymanagers.Prepare(keymanagers.Definition{Name: "hmac", Issuer: "https://hmac.fuzz.test",
		SharedSecret: "fuzz-shared-secret-0123456789abcdef"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	km, err := keymanagers.NewKeyManager("acme", def, keymanagers.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(km.Close)
	reg, err := keymanagers.NewRegistry(map[string][]*keymanagers.KeyManager{"acme": {km}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cache, err := keymanagers.NewResultCache(keymanagers.CacheConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cache.Close() })
	return keymanagers.NewGateway(reg, cache, nil, nil)
}

// fzDispenser tokenizes src as a Caddyfile, or reports false when the
// lexer refuses it (caddyfile.NewTestDispenser would log.Fatal instead).
func fzDispenser(src string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(src), "Fuzzfile")
	if err != nil {
		return nil, false
	}
	return caddyfile.NewDispenser(tokens), true
}

// fzUnsafeFile reports bodies that could make the parser read a device
// or pseudo-file (certificate_file /dev/zero never ends): configuration is
// trusted, so that is no bug, but it would hang the fuzzer.
func fzUnsafeFile(s string) bool {
	return strings.Contains(s, "/dev") || strings.Contains(s, "/proc") || strings.Contains(s, "/sys")
}

// fzRecover turns a panic into a test failure naming the input.
func fzRecover(t *testing.T, what, input string) {
	if r := recover(); r != nil {
		t.Fatalf("%s panicked on %q: %v", what, input, r)
	}
}

// FuzzCaddyfileGlobalOption parses arbitrary bodies placed inside
// `keymanagers { ... }` (as in the global options block). It must never
// panic, and what it accepts must be the keymanagers app's JSON.
func FuzzCaddyfileGlobalOption(f *testing.F) {
	for _, s := range []string{
		"",
		"cache_size 64MiB\nmax_ttl 15m\nsync_interval 10s\nexpose_claims email groups",
		"tenant acme {\n key_manager idp {\n  issuer https://idp.example.com\n  jwks_url https://idp.example.com/jwks\n  audience api://a api://b\n }\n}",
		"global corp {\n issuer https://corp.example.com\n jwks_url https://corp.example.com/jwks\n}\ntenant acme {\n key_manager corp {\n  issuer https://x\n  jwks_url https://x/j\n }\n}",
		"tenant acme {\n key_manager a {\n  issuer https://same\n  jwks_url https://a/j\n }\n key_manager b {\n  issuer https://same\n  jwks_url https://b/j\n }\n}",
		"tenant acme {\n key_manager kc {\n  type keycloak\n  base_url https://kc.example.com\n  realm demo\n }\n}",
		"tenant acme {\n key_manager kc {\n  base_url https://kc.example.com\n }\n}",
		"tenant acme {\n key_manager op {\n  issuer https://op\n  introspection_url https://op/introspect\n  client_id gw\n  client_secret s3cr3t\n  introspection_auth client_secret_post\n  token_validation introspection\n  token_handling {\n   reference ^[0-9a-f-]{36}$\n   jwt iss ^https://other$\n  }\n  stale_if_error 1m\n  breaker_threshold 3\n }\n}",
		"tenant acme {\n key_manager h {\n  issuer https://h\n  shared_secret abcdefghijklmnopqrstuvwxyz012345\n  allowed_algorithms HS256\n  claims {\n   subject uid\n   consumer_key cid\n   scopes scp\n  }\n  tls {\n   insecure_skip_verify\n  }\n }\n application app1 {\n  key_manager h\n  client_id c1\n  scopes read\n  deny_scopes admin\n  subscriptions orders\n }\n}",
		"tenant global {\n}", "tenant ACME {\n}", "tenant acme {\n}\ntenant acme {\n}", "tenant", "global", "cache_size 0", "cache_size -1",
		"max_ttl -5s", "bogus", "tenant acme {\n key_manager {\n }\n}", "tenant acme {\n key_manager x y {\n }\n}",
		"tenant acme {\n key_manager x {\n  enabled maybe\n  breaker_threshold -1\n }\n}", "tenant acme {\n key_manager x {\n  timeout forever\n }\n}",
		"tenant acme {\n key_manager x {\n  certificate_file /nonexistent/cert.pem\n }\n}",
		"tenant acme {\n key_manager x {\n  type nosuchconnector\n  foo bar\n }\n}",
		"tenant acme {\n key_manager x {\n  type okta\n  domain a.okta.com\n  domain b.okta.com\n }\n}",
		"}\n}\n{", "{\n{\n{", "tenant acme {\n key_manager x {\n  claims {\n   claims {\n   }\n  }\n }\n}",
		"tenant acme {\n key_manager x {\n  token_handling {\n   reference (\n  }\n }\n}",
		"expose_claims", "tenant acme {\n application {\n }\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if fzUnsafeFile(body) {
			return // not an interesting input (a device path would block the parser)
		}
		src := "keymanagers {\n" + body + "\n}\n"
		d, ok := fzDispenser(src)
		if !ok {
			return
		}
		defer fzRecover(t, "parseGlobalOption", body)
		v, err := parseGlobalOption(d, nil)
		if err != nil {
			if v != nil {
				t.Fatalf("a value with error %v", err)
			}
			return
		}
		app, ok := v.(httpcaddyfile.App)
		if !ok || app.Name != "keymanagers" {
			t.Fatalf("parseGlobalOption returned %T %+v", v, v)
		}
		var decoded App
		if err := caddy.StrictUnmarshalJSON(app.Value, &decoded); err != nil {
			t.Fatalf("accepted body gives JSON the app cannot load: %v", err)
		}
		// The option may appear only once.
		if d2, ok := fzDispenser(src); ok {
			if _, err := parseGlobalOption(d2, v); err == nil {
				t.Fatal("a second keymanagers option was accepted")
			}
		}
	})
}

// FuzzHandlerCaddyfile parses arbitrary bodies of the `keymanager`
// directive. It must never panic; what it accepts has a tenant, valid
// forward_claim header names and a coherent require_subscription.
func FuzzHandlerCaddyfile(f *testing.F) {
	for _, s := range []string{
		"acme", "{http.request.header.X-Tenant}", "acme extra", "",
		"{\n tenant acme\n key_managers idp corp\n forward_claim sub X-User\n keep_token\n max_token_size 16KiB\n realm api\n}",
		"{\n tenant acme\n scope GET /orders/{id} orders:read {\n  match all\n }\n scope POST /orders orders:write\n scope_strategy hierarchic\n unmatched deny\n}",
		"{\n tenant acme\n api orders\n require_subscription\n require_claim groups.0 admins\n}",
		"{\n tenant acme\n require_subscription\n}", "{\n tenant acme\n forward_claim sub Authorization\n}", "{\n tenant acme\n forward_claim sub X\\nY\n}",
		"{\n tenant acme\n max_token_size 0\n}", "{\n tenant acme\n max_token_size 2MiB\n}", "{\n tenant acme\n max_token_size -1\n}",
		"{\n tenant acme\n scope GET\n}", "{\n tenant acme\n scope GET /a a {\n  match some\n }\n}", "{\n tenant acme\n scope GET /a a\n scope GET /a b\n}",
		"{\n tenant acme\n scope_strategy fuzzy\n}", "{\n tenant acme\n require_claim a..b c\n}", "{\n tenant acme\n require_claim\n}",
		"{\n}", "{\n tenant\n}", "{\n bogus\n}", "{\n tenant a b\n}", "}", "{\n{\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d, ok := fzDispenser("keymanager " + body)
		if !ok {
			return
		}
		defer fzRecover(t, "UnmarshalCaddyfile", body)
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		if h.Tenant == "" {
			t.Fatal("accepted without a tenant")
		}
		for _, fc := range h.ForwardClaim {
			if !validHeaderName(fc.Header) || strings.EqualFold(fc.Header, "Authorization") {
				t.Fatalf("accepted forward_claim header %q", fc.Header)
			}
		}
		if h.RequireSubscription && h.API == "" {
			t.Fatal("accepted require_subscription without api")
		}
		if h.MaxTokenSize < 0 || h.MaxTokenSize > keymanagers.MaxTokenSize {
			t.Fatalf("accepted max_token_size %d", h.MaxTokenSize)
		}
	})
}

// FuzzAdminDefinition posts arbitrary bodies to decodeDefinition (as the
// admin API does), then prepares what decodes with its connector. It must
// never panic; decoding errors are 400 or 413 API errors; preparation
// errors are FieldErrors; a prepared definition validates again and its
// redacted form hides its secrets.
func FuzzAdminDefinition(f *testing.F) {
	for _, s := range []string{
		`{"name":"idp","issuer":"https://idp.example.com","jwks_url":"https://idp.example.com/jwks"}`,
		`{"name":"op","issuer":"https://op","introspection_url":"https://op/i","client_id":"gw","client_secret":"s3cr3t-s3cr3t","introspection_auth":"client_secret_post","token_handling":[{"type":"reference","pattern":"^x"},{"type":"jwt","claims":{"iss":"^a$"}}]}`,
		`{"name":"h","issuer":"https://h","shared_secret":"abcdefghijklmnopqrstuvwxyz012345","allowed_algorithms":["HS256","none"]}`,
		`{"name":"kc","connector":{"type":"keycloak","base_url":"https://kc.example.com","realm":"demo"}}`,
		`{"name":"kc","connector":{"type":"nosuch"}}`, `{"name":"kc","connector":{"type":"okta","bogus":1}}`, `{"name":"kc","connector":"okta"}`,
		`{"name":"p","issuer":"https://p","certificate_pem":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`,
		`{"name":"d","issuer":"https://d","jwks_url":"https://d/j","timeout":"-5s","clock_skew":"99999999h","negative_cache_ttl":1e300}`,
		`{"name":"d","issuer":"https://d","jwks_url":"https://d/j","timeout":"5d"}`,
		`{"name":"UPPER","issuer":"x"}`, `{"name":""}`, `{"name":"a","unknown":1}`, `{"name":"a","name":"b"}`, `{"name":"a","Name":"b"}`,
		`{"name":"a","enabled":null,"audiences":null,"claims":null,"tls":{"ca_file":"/nonexistent"}}`,
		`{}`, `[]`, `null`, ``, `{`, `{"name":1}`, `{"name":"a"} {"name":"b"}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if fzUnsafeFile(string(body)) {
			return // not an interesting input (a device path would block the parser)
		}
		defer fzRecover(t, "decodeDefinition/Prepare", string(body))
		r := httptest.NewRequest(http.MethodPost, "/keymanagers/acme/", bytes.NewReader(body))
		def, err := decodeDefinition(r)
		if err != nil {
			var ae caddy.APIError
			if !errors.As(err, &ae) || (ae.HTTPStatus != http.StatusBadRequest && ae.HTTPStatus != http.StatusRequestEntityTooLarge) {
				t.Fatalf("decoding error %v is not a 400/413 API error", err)
			}
			return
		}
		conn, err := connectorFor(&def)
		if err != nil {
			return // the admin API answers this as a field error on "connector"
		}
		prepared, err := keymanagers.Prepare(def, conn)
		if err != nil {
			var fe keymanagers.FieldErrors
			if !errors.As(err, &fe) || len(fe) == 0 {
				t.Fatalf("preparation error %v (%T) is not FieldErrors", err, err)
			}
			return
		}
		if err := prepared.Validate(); err != nil {
			t.Fatalf("a prepared definition does not validate again: %v", err)
		}
		red := prepared.Redacted()
		if prepared.ClientSecret != "" && prepared.ClientSecret != keymanagers.Mask && red.ClientSecret == prepared.ClientSecret {
			t.Fatal("Redacted keeps the client secret")
		}
		if prepared.SharedSecret != "" && prepared.SharedSecret != keymanagers.Mask && red.SharedSecret == prepared.SharedSecret {
			t.Fatal("Redacted keeps the shared secret")
		}
	})
}
