package scopes

import "testing"

// A scope the application denies never satisfies a rule, under any
// strategy, whatever the token holds that would grant it otherwise.
func TestCheckDenying_DenialWinsUnderEveryStrategy(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		granted  string
		denied   []string
		required string
		want     bool
	}{
		{"exact: denied scope held exactly is refused", "exact", "orders:delete", []string{"orders:delete"}, "orders:delete", false},
		{"exact: denying a parent leaves a child", "exact", "orders:read", []string{"orders"}, "orders:read", true},
		{"exact: unrelated denial changes nothing", "exact", "orders:read", []string{"admin"}, "orders:read", true},
		{"hierarchic: a granted parent does not undo a denied child", "hierarchic", "orders", []string{"orders:delete"}, "orders:delete", false},
		{"hierarchic: a granted parent still grants other children", "hierarchic", "orders", []string{"orders:delete"}, "orders:read", true},
		{"hierarchic: denying a parent denies its children", "hierarchic", "orders:read", []string{"orders"}, "orders:read", false},
		{"hierarchic: denying a child leaves its parent", "hierarchic", "orders", []string{"orders:delete"}, "orders", true},
		{"wildcard: a granted star does not undo a denied child", "wildcard", "orders:*", []string{"orders:delete"}, "orders:delete", false},
		{"wildcard: a granted star still grants other children", "wildcard", "orders:*", []string{"orders:delete"}, "orders:read", true},
		{"wildcard: a denied star denies what it covers", "wildcard", "orders:read", []string{"orders:*"}, "orders:read", false},
		{"wildcard: a denied star leaves the bare prefix", "wildcard", "orders", []string{"orders:*"}, "orders", true},
		{"no denial: the plain check", "hierarchic", "orders", nil, "orders:delete", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Config{Strategy: tt.strategy, Rules: rules("GET /x " + tt.required)})
			d := p.CheckDenying("GET", "/x", tt.granted, tt.denied)
			if d.Allowed != tt.want || !d.Matched {
				t.Fatalf("granted %q denied %q required %q: %+v; want allowed=%v", tt.granted, tt.denied, tt.required, d, tt.want)
			}
		})
	}
	// "all" rules: one denied scope refuses the whole rule.
	p := mustCompile(t, Config{Strategy: "hierarchic", Rules: rules("GET /x orders:read orders:delete | all")})
	if d := p.CheckDenying("GET", "/x", "orders", []string{"orders:delete"}); d.Allowed {
		t.Fatalf("match all with a denied scope: %+v; want refused", d)
	}
}
