package scopes

import (
	"fmt"
	"testing"
)

func TestStrategies(t *testing.T) {
	type tc struct {
		name     string
		strategy string
		granted  string
		required string
		want     bool
	}
	tests := []tc{
		// exact
		{"exact: equal scope satisfies", "exact", "orders:read", "orders:read", true},
		{"exact: scope among others satisfies", "exact", "a b orders:read c", "orders:read", true},
		{"exact: last scope satisfies", "exact", "a b orders:read", "orders:read", true},
		{"exact: first scope satisfies", "exact", "orders:read a b", "orders:read", true},
		{"exact: parent scope does not satisfy", "exact", "orders", "orders:read", false},
		{"exact: wildcard scope does not satisfy", "exact", "orders:*", "orders:read", false},
		{"exact: prefix of a granted scope does not satisfy", "exact", "orders:readx", "orders:read", false},
		{"exact: granted scope prefix does not satisfy", "exact", "orders:rea", "orders:read", false},
		{"exact: scopes are case-sensitive", "exact", "Orders:Read", "orders:read", false},
		{"exact: empty granted string satisfies nothing", "exact", "", "orders:read", false},
		{"exact: blank granted string satisfies nothing", "exact", "   ", "orders:read", false},
		{"exact: repeated spaces are separators", "exact", "a   orders:read  ", "orders:read", true},
		{"exact: tabs and newlines are not separators (RFC 6749 SP only)", "exact", "a\torders:read\nb", "orders:read", false},
		{"exact: substring spanning a space does not satisfy", "exact", "orders :read", "orders:read", false},
		// hierarchic
		{"hierarchic: equal scope satisfies", "hierarchic", "orders.read", "orders.read", true},
		{"hierarchic: parent satisfies dot child", "hierarchic", "orders", "orders.read", true},
		{"hierarchic: parent satisfies colon child", "hierarchic", "orders", "orders:read", true},
		{"hierarchic: parent satisfies slash child", "hierarchic", "orders", "orders/read", true},
		{"hierarchic: parent satisfies grandchild", "hierarchic", "orders", "orders:read:own", true},
		{"hierarchic: mid-level parent satisfies deeper", "hierarchic", "orders:read", "orders:read.own", true},
		{"hierarchic: parent among others satisfies", "hierarchic", "a orders b", "orders:write", true},
		{"hierarchic: child does not satisfy parent", "hierarchic", "orders.read", "orders", false},
		{"hierarchic: sibling does not satisfy", "hierarchic", "orders:write", "orders:read", false},
		{"hierarchic: name prefix without separator does not satisfy", "hierarchic", "order", "orders.read", false},
		{"hierarchic: dash is not a separator", "hierarchic", "orders", "orders-read", false},
		{"hierarchic: underscore is not a separator", "hierarchic", "orders", "orders_read", false},
		{"hierarchic: trailing separator scope is not a parent", "hierarchic", "orders:", "orders:read", false},
		{"hierarchic: wildcard is literal", "hierarchic", "orders:*", "orders:read", false},
		{"hierarchic: case-sensitive", "hierarchic", "Orders", "orders:read", false},
		{"hierarchic: URL-style scope parent satisfies path child", "hierarchic", "https://api.example.com/orders", "https://api.example.com/orders/read", true},
		{"hierarchic: URL host prefix satisfies via dot", "hierarchic", "https://api", "https://api.example.com/orders", true},
		// wildcard
		{"wildcard: equal scope satisfies", "wildcard", "orders:read", "orders:read", true},
		{"wildcard: colon star satisfies a child", "wildcard", "orders:*", "orders:read", true},
		{"wildcard: dot star satisfies a child", "wildcard", "orders.*", "orders.read", true},
		{"wildcard: slash star satisfies a child", "wildcard", "orders/*", "orders/read", true},
		{"wildcard: final star satisfies deeper scopes", "wildcard", "orders:*", "orders:read:own", true},
		{"wildcard: final star spans mixed separators", "wildcard", "orders:*", "orders:read.own/x", true},
		{"wildcard: star does not satisfy the bare prefix", "wildcard", "orders:*", "orders", false},
		{"wildcard: star does not satisfy the prefix with separator", "wildcard", "orders:*", "orders:", false},
		{"wildcard: star needs a non-empty first segment", "wildcard", "orders:*", "orders::read", false},
		{"wildcard: separator must match", "wildcard", "orders:*", "orders.read", false},
		{"wildcard: literal segment must match whole", "wildcard", "orders:*", "ordersx:read", false},
		{"wildcard: literal segment must match exactly", "wildcard", "orders:*", "order:read", false},
		{"wildcard: middle star matches one segment", "wildcard", "orders:*:read", "orders:eu:read", true},
		{"wildcard: middle star does not match two segments", "wildcard", "orders:*:read", "orders:eu:x:read", false},
		{"wildcard: middle star does not match zero segments", "wildcard", "orders:*:read", "orders::read", false},
		{"wildcard: middle star needs the rest", "wildcard", "orders:*:read", "orders:eu", false},
		{"wildcard: suffix after middle star must match", "wildcard", "orders:*:read", "orders:eu:write", false},
		{"wildcard: leading star with literal rest", "wildcard", "*:read", "orders:read", true},
		{"wildcard: leading star with other literal", "wildcard", "*:read", "orders:write", false},
		{"wildcard: two stars with a literal", "wildcard", "api:*:*", "api:orders:read", true},
		{"wildcard: two stars with a literal and deeper scope", "wildcard", "api:*:*", "api:orders:read:own", true},
		{"wildcard: lone star grants nothing", "wildcard", "*", "orders:read", false},
		{"wildcard: lone star grants nothing even plain", "wildcard", "*", "orders", false},
		{"wildcard: star-colon-star grants nothing", "wildcard", "*:*", "orders:read", false},
		{"wildcard: star-dot-star grants nothing", "wildcard", "*.*", "orders.read", false},
		{"wildcard: star with empty segment grants nothing", "wildcard", "*:", "orders:", false},
		{"wildcard: lone star satisfies a literal star scope", "wildcard", "*", "*", true},
		{"wildcard: star inside a segment is literal", "wildcard", "orders*", "orders:read", false},
		{"wildcard: star inside a segment matches only itself", "wildcard", "ord*rs:read", "orders:read", false},
		{"wildcard: no hierarchic fallback", "wildcard", "orders", "orders:read", false},
		{"wildcard: required star is literal", "wildcard", "orders:read", "orders:*", false},
		{"wildcard: pattern satisfies a literal star required scope", "wildcard", "orders:*", "orders:*", true},
		{"wildcard: pattern among other scopes", "wildcard", "a b orders:* c", "orders:write", true},
		{"wildcard: case-sensitive literal", "wildcard", "Orders:*", "orders:read", false},
		{"wildcard: longer literal than required", "wildcard", "orders:read:*", "orders:read", false},
	}
	// Cases that hold under every strategy.
	for _, st := range []string{"exact", "hierarchic", "wildcard"} {
		tests = append(tests,
			tc{st + ": equality always satisfies", st, "x orders:read y", "orders:read", true},
			tc{st + ": unrelated scope never satisfies", st, "inventory:read", "orders:read", false},
			tc{st + ": no granted scopes never satisfy", st, "", "orders", false},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Config{Strategy: tt.strategy, Rules: []Rule{{Method: "*", Path: "/x", Scopes: []string{tt.required}}}})
			d := p.Check("GET", "/x", tt.granted)
			if !d.Matched || d.Allowed != tt.want {
				t.Fatalf("granted %q, required %q: %+v; want allowed=%v", tt.granted, tt.required, d, tt.want)
			}
		})
	}
}

func TestMatchAnyAll(t *testing.T) {
	tests := []struct {
		name, strategy, match, granted string
		want                           bool
	}{
		{"any: first scope suffices", "exact", "any", "a", true},
		{"any: second scope suffices", "exact", "any", "b", true},
		{"any: default mode is any", "exact", "", "c", true},
		{"any: none of the scopes denies", "exact", "any", "x y", false},
		{"all: every scope allows", "exact", "all", "c b a", true},
		{"all: one missing denies", "exact", "all", "a b", false},
		{"all: none denies", "exact", "all", "", false},
		{"all: extra scopes do not matter", "exact", "all", "z a y b x c", true},
		{"all: an unrelated hierarchic parent covers none", "hierarchic", "all", "orders", false},
		{"all: hierarchic parents cover each", "hierarchic", "all", "a b c", true},
		{"any: a wildcard pattern of another prefix covers none", "wildcard", "any", "x:*", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Config{Strategy: tt.strategy, Rules: []Rule{{Method: "*", Path: "/x", Scopes: []string{"a", "b", "c"}, Match: tt.match}}})
			if d := p.Check("GET", "/x", tt.granted); d.Allowed != tt.want {
				t.Fatalf("granted %q: %+v; want allowed=%v", tt.granted, d, tt.want)
			}
		})
	}
	children := []string{"orders:read", "orders:write", "orders.admin"}
	for _, m := range []string{"any", "all"} {
		for _, st := range []string{"hierarchic", "wildcard"} {
			granted := "orders"
			if st == "wildcard" {
				granted = "orders:*"
			}
			// hierarchic "orders" covers all three; wildcard "orders:*"
			// covers only the colon ones.
			want := st == "hierarchic" || m == "any"
			t.Run(fmt.Sprintf("%s %s: %q vs %v gives %v", m, st, granted, children, want), func(t *testing.T) {
				p := mustCompile(t, Config{Strategy: st, Rules: []Rule{{Method: "*", Path: "/x", Scopes: children, Match: m}}})
				if d := p.Check("GET", "/x", granted); d.Allowed != want {
					t.Fatalf("%+v", d)
				}
			})
		}
	}
}
