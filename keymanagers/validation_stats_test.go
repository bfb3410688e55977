package keymanagers

import (
	"context"
	"testing"

	"github.com/kmgate/caddy-keymanager/scopes"
)

// TestStatusCountsValidationsByOutcomeAndCacheHits: the Key Manager that
// vouched for a token counts each request by outcome (ok, or the denial
// after the token was verified) and whether the result came from the
// cache; requests it never vouched for are not its.
func TestStatusCountsValidationsByOutcomeAndCacheHits(t *testing.T) {
	k := rsaKey(t, "rsa-stats", "k1", "RS256")
	f := newFixture(t, k)
	km := f.add(testTenant, f.def("stats"))
	g := f.build()
	route, err := CompileRoute(RouteConfig{Scopes: []scopes.Rule{{Method: "GET", Path: "/admin", Scopes: []string{"admin"}}}})
	if err != nil {
		t.Fatal(err)
	}
	read := mint(t, k, with(f.claims(), map[string]any{"scope": "read"}), nil)
	other := mint(t, rsaKey(t, "rsa-stats-other", "k9", "RS256"), f.claims(), nil)
	steps := []struct {
		name, token, path string
		wantErr           *Error
	}{
		{"first use: ok, a miss", read, "/orders", nil},
		{"again: ok, a hit", read, "/orders", nil},
		{"scope missing: denied after verification", read, "/admin", ErrInsufficientScope},
		{"a token it did not sign is not its", other, "/orders", ErrUnknownKey},
		{"no token is nobody's", "", "/orders", ErrNoToken},
	}
	for _, s := range steps {
		_, err := g.Authorize(context.Background(), &Request{Tenant: testTenant, Route: route, Token: s.token, Method: "GET", EscapedPath: s.path})
		if s.wantErr == nil && err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.wantErr != nil && Classify(err).Kind != s.wantErr.Kind {
			t.Fatalf("%s: got %v, want %v", s.name, err, s.wantErr)
		}
	}
	v := km.Status().Validations
	want := map[string]uint64{"ok": 2, "insufficient_scope": 1}
	if len(v.Outcomes) != len(want) {
		t.Fatalf("outcomes %v, want %v", v.Outcomes, want)
	}
	for k, n := range want {
		if v.Outcomes[k] != n {
			t.Errorf("outcome %s = %d, want %d (all: %v)", k, v.Outcomes[k], n, v.Outcomes)
		}
	}
	if v.CacheHits != 2 || v.CacheMisses != 1 {
		t.Errorf("cache hits/misses %d/%d, want 2/1", v.CacheHits, v.CacheMisses)
	}
}

func TestOutcomeNameNamesEveryKind(t *testing.T) {
	for k := KindInternal; k <= KindBadRequest; k++ {
		if OutcomeName(k) == "" {
			t.Errorf("Kind %d has no outcome name", k)
		}
	}
	if OutcomeName(Kind(200)) != "error" {
		t.Errorf("an unknown Kind is %q, want error", OutcomeName(Kind(200)))
	}
}
