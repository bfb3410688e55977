package scopes

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// specificityRules: every rule has a distinct scope so the winner is known.
var specificityRules = []string{
	"GET /orders s-orders-get",
	"* /orders s-orders-any",
	"POST /orders s-orders-post",
	"GET /orders/{id} s-order-get",
	"* /orders/{id} s-order-any",
	"GET /orders/42 s-order42-get",
	"* /orders/43 s-order43-any",
	"GET /orders/* s-orders-wild-get",
	"* /orders/* s-orders-wild-any",
	"GET /* s-root-wild",
	"GET /orders/{id}/items s-items",
	"GET /orders/{id}/items/{item} s-item",
	"GET /orders/special/items/{item} s-special-item",
	"GET /orders/{id}/items/* s-items-wild",
	"GET /{a}/{b}/items s-any-items",
	"GET /a/{x}/{y} s-a-x-y",
	"GET /{x}/b/{y} s-x-b-y",
	"GET /{x}/{y}/c s-x-y-c",
	"GET /{x}/b/c s-x-b-c",
	"GET /tenants/{t}/* s-tenant-wild",
	"GET /tenants/acme/* s-acme-wild",
	"GET /tenants/{t}/orders/* s-tenant-orders-wild",
	"GET /{t}/acme/orders/* s-x-acme-orders-wild",
	"GET /status s-status-get",
	"HEAD /status s-status-head",
	"GET /health s-health-get",
	"* /health s-health-any",
	"DELETE /admin/* s-admin-delete",
	"* /admin/* s-admin-any",
	"GET /admin/{page} s-admin-page",
	"GET / s-root",
	"PURGE /cache/{key} s-purge",
}

var specificityCases = []struct {
	name, method, path, want string // want: the winning scope, "" for none
}{
	{"exact GET rule wins for its path", "GET", "/orders", "s-orders-get"},
	{"exact any-method rule covers other methods", "PUT", "/orders", "s-orders-any"},
	{"exact POST rule beats the exact any-method rule", "POST", "/orders", "s-orders-post"},
	{"method is compared case-insensitively", "post", "/orders", "s-orders-post"},
	{"template GET rule beats template any-method rule", "GET", "/orders/7", "s-order-get"},
	{"template any-method rule covers PATCH", "PATCH", "/orders/7", "s-order-any"},
	{"exact rule beats template for the same method", "GET", "/orders/42", "s-order42-get"},
	{"exact any-method rule beats template GET rule (path first)", "GET", "/orders/43", "s-order43-any"},
	{"exact rule for another method falls back to the template", "POST", "/orders/42", "s-order-any"},
	{"wildcard matches its own prefix exactly", "DELETE", "/orders", "s-orders-any"},
	{"template beats wildcard", "GET", "/orders/x", "s-order-get"},
	{"wildcard catches deeper paths", "GET", "/orders/7/notes/1", "s-orders-wild-get"},
	{"wildcard GET beats wildcard any at equal prefix", "GET", "/orders/7/notes", "s-orders-wild-get"},
	{"wildcard any covers DELETE deeper", "DELETE", "/orders/7/notes", "s-orders-wild-any"},
	{"template with more literals beats template with fewer", "GET", "/orders/7/items", "s-items"},
	{"template with three literals beats two", "GET", "/orders/special/items/9", "s-special-item"},
	{"template with two literals beats wildcard with longer prefix", "GET", "/orders/7/items/9", "s-item"},
	{"longer wildcard prefix beats shorter", "GET", "/orders/7/items/9/x", "s-items-wild"},
	{"wildcard at its prefix exactly loses to an equal-depth template", "GET", "/orders/7/items", "s-items"},
	{"root wildcard catches unknown paths", "GET", "/unknown/path", "s-root-wild"},
	{"root wildcard does not cover other methods", "POST", "/unknown/path", ""},
	{"exact root rule matches root only", "GET", "/", "s-root"},
	{"root wildcard covers root for other methods? no: GET only", "PUT", "/", ""},
	{"more literals wins among templates (x/b/c)", "GET", "/a/b/c", "s-x-b-c"},
	{"first literal position wins at equal literal count", "GET", "/a/b/z", "s-a-x-y"},
	{"middle literal beats last literal at equal count", "GET", "/z/b/c", "s-x-b-c"},
	{"only x-y-c matches", "GET", "/z/y/c", "s-x-y-c"},
	{"only x-b-y matches", "GET", "/z/b/q", "s-x-b-y"},
	{"literal tenant wildcard beats parameter tenant wildcard", "GET", "/tenants/acme/users", "s-acme-wild"},
	{"longer wildcard prefix with parameter beats shorter literal one", "GET", "/tenants/acme/orders/1", "s-tenant-orders-wild"},
	{"parameter tenant wildcard for other tenants", "GET", "/tenants/other/users", "s-tenant-wild"},
	{"equal-depth wildcards: more literals wins", "GET", "/tenants/acme/orders", "s-tenant-orders-wild"},
	{"HEAD rule beats GET rule for HEAD", "HEAD", "/status", "s-status-head"},
	{"GET rule applies to HEAD without a HEAD rule", "HEAD", "/orders/7", "s-order-get"},
	{"GET rule beats any-method rule for HEAD", "HEAD", "/health", "s-health-get"},
	{"HEAD rule does not apply to GET", "GET", "/status", "s-status-get"},
	{"lower-case head also uses GET rules", "head", "/orders", "s-orders-get"},
	{"GET rules do not apply to POST", "POST", "/status", ""},
	{"specific-method wildcard beats any wildcard", "DELETE", "/admin/users", "s-admin-delete"},
	{"template beats specific-method wildcard? no: DELETE has no template", "DELETE", "/admin/x", "s-admin-delete"},
	{"template GET beats wildcard for GET", "GET", "/admin/x", "s-admin-page"},
	{"wildcard any covers admin prefix itself", "GET", "/admin", "s-admin-any"},
	{"custom method token is matched", "PURGE", "/cache/k1", "s-purge"},
	{"custom method is case-insensitive", "purge", "/cache/k1", "s-purge"},
	{"unmatched path has no rule", "POST", "/nothing", ""},
	{"wildcard prefix is a whole segment", "GET", "/ordersx", "s-root-wild"},
	{"template parameter does not span segments", "PATCH", "/orders/7/8", "s-orders-wild-any"},
}

func checkSpecificity(t *testing.T, p *Policy) {
	t.Helper()
	for _, tc := range specificityCases {
		d := p.Check(tc.method, tc.path, "")
		got := ""
		if d.Matched {
			got = d.Required[0]
		}
		if got != tc.want {
			t.Errorf("%s: %s %s matched %q (rule %s); want %q", tc.name, tc.method, tc.path, got, ruleID(d), tc.want)
		}
	}
}

func TestSpecificity(t *testing.T) {
	p := mustCompile(t, Config{Rules: rules(specificityRules...), Unmatched: "deny"})
	for _, tc := range specificityCases {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Check(tc.method, tc.path, "")
			got := ""
			if d.Matched {
				got = d.Required[0]
			}
			if got != tc.want {
				t.Fatalf("%s %s matched %q (rule %s); want %q", tc.method, tc.path, got, ruleID(d), tc.want)
			}
			if d.Allowed {
				t.Fatalf("a token without scopes was allowed: %+v", d)
			}
			if d.Matched {
				if d2 := p.Check(tc.method, tc.path, "x "+tc.want+" y"); !d2.Allowed {
					t.Fatalf("the rule's scope does not allow: %+v", d2)
				}
			}
		})
	}
}

func TestSpecificityIndependentOfDeclarationOrder(t *testing.T) {
	for seed := int64(0); seed < 60; seed++ {
		specs := slices.Clone(specificityRules)
		r := rand.New(rand.NewSource(seed))
		r.Shuffle(len(specs), func(i, j int) { specs[i], specs[j] = specs[j], specs[i] })
		if seed == 0 {
			slices.Reverse(specs)
		}
		t.Run(fmt.Sprintf("shuffle seed %d gives the same winners", seed), func(t *testing.T) {
			checkSpecificity(t, mustCompile(t, Config{Rules: rules(specs...)}))
		})
	}
}

func TestTemplateBeatsWildcardEvenWithFewerLiterals(t *testing.T) {
	// The documented class order: a template always beats a wildcard.
	p := mustCompile(t, Config{Rules: rules("* /admin/* admin", "GET /{section} public")})
	if d := p.Check("GET", "/admin", "public"); d.Rule.Path != "/{section}" {
		t.Fatalf("GET /admin matched %s; want the /{section} template", ruleID(d))
	}
	if d := p.Check("POST", "/admin", "public"); d.Rule.Path != "/admin/*" || d.Allowed {
		t.Fatalf("POST /admin: %+v (rule %s); want the /admin/* rule to deny", d, ruleID(d))
	}
}

func TestUnmatched(t *testing.T) {
	rs := rules("GET /orders/{id} orders:read")
	tests := []struct {
		name, unmatched, method, path string
		allowed, matched              bool
	}{
		{"default allows unmatched path", "", "GET", "/other", true, false},
		{"allow allows unmatched path", "allow", "GET", "/other", true, false},
		{"deny denies unmatched path", "deny", "GET", "/other", false, false},
		{"deny denies unmatched method", "deny", "POST", "/orders/1", false, false},
		{"allow allows unmatched method", "allow", "POST", "/orders/1", true, false},
		{"deny does not affect a matched rule that is satisfied", "deny", "GET", "/orders/1", true, true},
		{"allow does not affect a matched rule that is not satisfied", "allow", "GET", "/orders/2", true, true},
		{"deny denies the root when no rule covers it", "deny", "GET", "/", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, Config{Rules: rs, Unmatched: tt.unmatched})
			d := p.Check(tt.method, tt.path, "orders:read")
			if d.Allowed != tt.allowed || d.Matched != tt.matched {
				t.Fatalf("got %+v; want allowed=%v matched=%v", d, tt.allowed, tt.matched)
			}
			if !d.Matched && (d.Rule != nil || d.Required != nil) {
				t.Fatalf("unmatched decision carries a rule: %+v", d)
			}
		})
	}
	t.Run("empty policy with deny denies everything", func(t *testing.T) {
		p := mustCompile(t, Config{Unmatched: "deny"})
		if d := p.Check("GET", "/", "a"); d.Allowed || d.Matched {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("nil policy allows everything", func(t *testing.T) {
		var p *Policy
		if d := p.Check("GET", "/x", ""); !d.Allowed || d.Matched {
			t.Fatalf("got %+v", d)
		}
	})
}

func TestDecisionFields(t *testing.T) {
	in := Config{Rules: []Rule{{Method: "get", Path: "/Orders/{ID}/", Scopes: []string{"b", "a", "b"}, Match: "all"}}}
	p := mustCompile(t, in)
	d := p.Check("GET", "/orders/1", "a b")
	t.Run("rule is reported as declared", func(t *testing.T) {
		if d.Rule == nil || d.Rule.Method != "get" || d.Rule.Path != "/Orders/{ID}/" || d.Rule.Match != "all" {
			t.Fatalf("rule %+v", d.Rule)
		}
	})
	t.Run("required scopes are deduplicated in order", func(t *testing.T) {
		if !slices.Equal(d.Required, []string{"b", "a"}) {
			t.Fatalf("required %v", d.Required)
		}
	})
	t.Run("all-match rule with every scope is allowed", func(t *testing.T) {
		if !d.Allowed || !d.Matched {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("compile copies the caller's scopes", func(t *testing.T) {
		in.Rules[0].Scopes[0] = "changed"
		d := p.Check("GET", "/orders/1", "a b")
		if d.Rule.Scopes[0] != "b" || !d.Allowed {
			t.Fatalf("policy changed with its input: %+v %v", d, d.Rule.Scopes)
		}
	})
	t.Run("rule paths are case-insensitive and lose their trailing slash", func(t *testing.T) {
		if d := p.Check("GET", "/orders/x", ""); !d.Matched {
			t.Fatalf("got %+v", d)
		}
	})
}

func TestCompileAcceptsEquivalentSpellings(t *testing.T) {
	tests := []struct {
		name, spec, path string
	}{
		{"trailing slash in a rule is dropped", "GET /orders/ s", "/orders"},
		{"repeated slashes in a rule are merged", "GET //orders//{id} s", "/orders/7"},
		{"upper-case rule path is lower-cased", "GET /ORDERS/Archive s", "/orders/archive"},
		{"lower-case method is accepted", "get /x s", "/x"},
		{"root rule matches root", "GET / s", "/"},
		{"root wildcard matches root", "GET /* s", "/"},
		{"root wildcard matches deep paths", "GET /* s", "/a/b/c"},
		{"wildcard after trailing slash spelling", "GET /orders/*/ s", "/orders/1"},
		{"non-ASCII literal segment", "GET /café s", "/café"},
		{"parameter names may be anything but braces", "GET /o/{order-id.v2} s", "/o/1"},
		{"custom method", "M-SEARCH /x s", "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rule(tt.spec)
			p := mustCompile(t, Config{Rules: []Rule{r}, Unmatched: "deny"})
			if d := p.Check(strings.ToUpper(r.Method), tt.path, "s"); !d.Matched || !d.Allowed {
				t.Fatalf("%s does not match %s: %+v", tt.spec, tt.path, d)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // exact error text
	}{
		{"identical rules are a duplicate", Config{Rules: rules("GET /orders a", "GET /orders b")},
			`scope[1] "GET /orders": path: duplicates scope[0] "GET /orders" (same method and path)`},
		{"parameter names do not distinguish rules", Config{Rules: rules("GET /o/{id} a", "GET /o/{oid} b")},
			`scope[1] "GET /o/{oid}": path: duplicates scope[0] "GET /o/{id}" (same method and path)`},
		{"path case does not distinguish rules", Config{Rules: rules("GET /Orders a", "GET /orders b")},
			`scope[1] "GET /orders": path: duplicates scope[0] "GET /Orders" (same method and path)`},
		{"trailing slash does not distinguish rules", Config{Rules: rules("GET /orders/ a", "GET /orders b")},
			`scope[1] "GET /orders": path: duplicates scope[0] "GET /orders/" (same method and path)`},
		{"method case does not distinguish rules", Config{Rules: rules("get /x a", "GET /x b")},
			`scope[1] "GET /x": path: duplicates scope[0] "get /x" (same method and path)`},
		{"duplicate wildcard rules", Config{Rules: rules("* /x/* a", "GET /y b", "* /x/* c")},
			`scope[2] "* /x/*": path: duplicates scope[0] "* /x/*" (same method and path)`},
		{"method with a space is refused", Config{Rules: []Rule{{Method: "G T", Path: "/x", Scopes: []string{"a"}}}},
			`scope[0] "G T /x": method: "G T" is not an HTTP method (want a token such as GET, or *)`},
		{"method list is refused", Config{Rules: rules("GET,POST /x a")},
			`scope[0] "GET,POST /x": method: "GET,POST" is not an HTTP method (want a token such as GET, or *)`},
		{"star inside a method is refused", Config{Rules: rules("G* /x a")},
			`scope[0] "G* /x": method: "G*" is not an HTTP method (want a token such as GET, or *)`},
		{"empty method is refused", Config{Rules: []Rule{{Path: "/x", Scopes: []string{"a"}}}},
			`scope[0] " /x": method: empty (want an HTTP method or *)`},
		{"unknown strategy is refused", Config{Strategy: "regex"},
			`strategy "regex": unknown (want exact, hierarchic or wildcard)`},
		{"strategy names are case-sensitive", Config{Strategy: "Exact"},
			`strategy "Exact": unknown (want exact, hierarchic or wildcard)`},
		{"unknown unmatched mode is refused", Config{Unmatched: "maybe"},
			`unmatched "maybe": unknown (want allow or deny)`},
		{"unknown match mode is refused", Config{Rules: rules("GET /x a | some")},
			`scope[0] "GET /x": match: "some" is unknown (want any or all)`},
		{"match modes are case-sensitive", Config{Rules: rules("GET /x a | ALL")},
			`scope[0] "GET /x": match: "ALL" is unknown (want any or all)`},
		{"empty scope list is refused", Config{Rules: rules("GET /x")},
			`scope[0] "GET /x": scopes: no scopes (a rule needs at least one)`},
		{"empty scope is refused", Config{Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{"a", ""}}}},
			`scope[0] "GET /x": scopes: empty scope`},
		{"scope with a space is refused", Config{Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{"a b"}}}},
			`scope[0] "GET /x": scopes: scope "a b": character ' ' not allowed (RFC 6749 scope-token)`},
		{"scope with a quote is refused", Config{Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{`a"b`}}}},
			`scope[0] "GET /x": scopes: scope "a\"b": character '"' not allowed (RFC 6749 scope-token)`},
		{"scope with a backslash is refused", Config{Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{`a\b`}}}},
			`scope[0] "GET /x": scopes: scope "a\\b": character '\\' not allowed (RFC 6749 scope-token)`},
		{"non-ASCII scope is refused", Config{Rules: []Rule{{Method: "GET", Path: "/x", Scopes: []string{"é"}}}},
			`scope[0] "GET /x": scopes: scope "é": byte 0xC3 not allowed (RFC 6749 scope-token)`},
		{"unterminated brace is refused", Config{Rules: rules("GET /ok a", "GET /x b", "GET /y c", "GET /orders/{id a")},
			`scope[3] "GET /orders/{id": path: unterminated { in segment "{id"`},
		{"brace spanning a slash is unterminated", Config{Rules: rules("GET /o/{a/b} a")},
			`scope[0] "GET /o/{a/b}": path: unterminated { in segment "{a"`},
		{"empty parameter name is refused", Config{Rules: rules("GET /o/{} a")},
			`scope[0] "GET /o/{}": path: empty {} parameter name`},
		{"parameter followed by text is refused", Config{Rules: rules("GET /o/{id}.json a")},
			`scope[0] "GET /o/{id}.json": path: a {parameter} must be a whole segment, not "{id}.json"`},
		{"text before a parameter is refused", Config{Rules: rules("GET /o/x{id} a")},
			`scope[0] "GET /o/x{id}": path: a {parameter} must be a whole segment, not "x{id}"`},
		{"unterminated brace after text is refused", Config{Rules: rules("GET /o/x{id a")},
			`scope[0] "GET /o/x{id": path: unterminated { in segment "x{id"`},
		{"stray closing brace is refused", Config{Rules: rules("GET /o/x} a")},
			`scope[0] "GET /o/x}": path: a {parameter} must be a whole segment, not "x}"`},
		{"nested braces are refused", Config{Rules: rules("GET /o/{a{b} a")},
			`scope[0] "GET /o/{a{b}": path: a {parameter} must be a whole segment, not "{a{b}"`},
		{"star not at the end is refused", Config{Rules: rules("GET /orders/*/items a")},
			`scope[0] "GET /orders/*/items": path: * must be the last segment`},
		{"star glued to a name is refused", Config{Rules: rules("GET /orders* a")},
			`scope[0] "GET /orders*": path: * must be a whole last segment, not part of "orders*"`},
		{"star glued before a name is refused", Config{Rules: rules("GET /*x a")},
			`scope[0] "GET /*x": path: * must be a whole last segment, not part of "*x"`},
		{"double star is refused", Config{Rules: rules("GET /a/** a")},
			`scope[0] "GET /a/**": path: * must be a whole last segment, not part of "**"`},
		{"empty path is refused", Config{Rules: []Rule{{Method: "GET", Scopes: []string{"a"}}}},
			`scope[0] "GET ": path: empty (want a path starting with /)`},
		{"relative path is refused", Config{Rules: rules("GET orders a")},
			`scope[0] "GET orders": path: "orders" does not start with /`},
		{"percent in a rule path is refused", Config{Rules: rules("GET /a%20b a")},
			`scope[0] "GET /a%20b": path: character '%' not allowed (write paths decoded; ; and \ are refused in requests, so never match)`},
		{"semicolon in a rule path is refused", Config{Rules: rules("GET /a;b a")},
			`scope[0] "GET /a;b": path: character ';' not allowed (write paths decoded; ; and \ are refused in requests, so never match)`},
		{"backslash in a rule path is refused", Config{Rules: rules(`GET /a\b a`)},
			`scope[0] "GET /a\\b": path: character '\\' not allowed (write paths decoded; ; and \ are refused in requests, so never match)`},
		{"control character in a rule path is refused", Config{Rules: []Rule{{Method: "GET", Path: "/a\nb", Scopes: []string{"a"}}}},
			`scope[0] "GET /a\nb": path: character '\n' not allowed (write paths decoded; ; and \ are refused in requests, so never match)`},
		{"dot segment in a rule path is refused", Config{Rules: rules("GET /a/./b a")},
			`scope[0] "GET /a/./b": path: dot segment "." not allowed`},
		{"dotdot segment in a rule path is refused", Config{Rules: rules("GET /a/../b a")},
			`scope[0] "GET /a/../b": path: dot segment ".." not allowed`},
		{"invalid UTF-8 in a rule path is refused", Config{Rules: []Rule{{Method: "GET", Path: "/\xff", Scopes: []string{"a"}}}},
			`scope[0] "GET /\xff": path: invalid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.cfg)
			if err == nil {
				t.Fatalf("compiled; want error %q", tt.want)
			}
			if p != nil {
				t.Fatalf("returned a policy with the error")
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
			var re *RuleError
			if strings.HasPrefix(tt.want, "scope[") != errors.As(err, &re) {
				t.Fatalf("RuleError-ness wrong for %v", err)
			}
		})
	}
	t.Run("rule error exposes index and field", func(t *testing.T) {
		_, err := Compile(Config{Rules: rules("GET /a a", "GET /b b", "GET /c c", "GET /orders/{id a")})
		var re *RuleError
		if !errors.As(err, &re) || re.Index != 3 || re.Field != "path" || re.Rule != "GET /orders/{id" {
			t.Fatalf("got %#v", err)
		}
	})
}

// A check walks the index, not the rules: with many rules the time of a
// check does not grow with their number (measured as allocations here; the
// benchmark shows the time).
func TestCheckDoesNotAllocate(t *testing.T) {
	for _, st := range []string{"exact", "hierarchic", "wildcard"} {
		p := mustCompile(t, Config{Rules: benchRules(500), Strategy: st})
		for _, path := range []string{"/api/r57/12345", "/api/r3", "/api/r99/x/sub/y", "/api/r10/a/b/c", "/nothing/here"} {
			t.Run(fmt.Sprintf("%s check of %s does not allocate", st, path), func(t *testing.T) {
				allocs := testing.AllocsPerRun(200, func() {
					p.Check("GET", path, "inventory:write profile r57:read orders:read")
				})
				if allocs != 0 {
					t.Fatalf("%v allocations", allocs)
				}
			})
		}
	}
}
