package scopes

import (
	"fmt"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	long := strings.Repeat("Seg/", 100) // over the 256-byte stack buffer
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"root stays root", "/", "/", true},
		{"empty path is root", "", "/", true},
		{"path without leading slash is refused", "admin", "", false},
		{"asterisk-form OPTIONS target is refused", "*", "", false},
		{"canonical path is returned unchanged", "/orders/42", "/orders/42", true},
		{"upper case is lower-cased", "/ADMIN", "/admin", true},
		{"mixed case is lower-cased", "/Orders/AbC", "/orders/abc", true},
		{"trailing slash is removed", "/admin/", "/admin", true},
		{"several trailing slashes are removed", "/admin///", "/admin", true},
		{"double leading slash is merged", "//admin", "/admin", true},
		{"repeated inner slashes are merged", "/a//b///c", "/a/b/c", true},
		{"only slashes is root", "///", "/", true},
		{"dot segment is removed", "/./admin", "/admin", true},
		{"inner dot segment is removed", "/a/./b", "/a/b", true},
		{"trailing dot segment is removed", "/admin/.", "/admin", true},
		{"dotdot removes the previous segment", "/orders/../admin", "/admin", true},
		{"dotdot never climbs above root", "/../admin", "/admin", true},
		{"many dotdots stop at root", "/../../../admin", "/admin", true},
		{"trailing dotdot removes the last segment", "/admin/users/..", "/admin", true},
		{"dotdot back to root", "/admin/..", "/", true},
		{"dotdot after merged slashes", "/a//b//..//c", "/a/c", true},
		{"two dotdots remove two segments", "/a/b/c/../../d", "/a/d", true},
		{"triple dot is an ordinary segment", "/.../admin", "/.../admin", true},
		{"dot-prefixed name is an ordinary segment", "/.well-known/x", "/.well-known/x", true},
		{"dotdot-prefixed name is an ordinary segment", "/..x/admin", "/..x/admin", true},
		{"dot-suffixed name is an ordinary segment", "/x../admin", "/x../admin", true},
		{"encoded letter is decoded", "/%61dmin", "/admin", true},
		{"encoded upper-case letter is decoded and lower-cased", "/%41DMIN", "/admin", true},
		{"upper-case hex digits are accepted", "/%4A", "/j", true},
		{"encoded slash becomes a separator", "/admin%2Fusers", "/admin/users", true},
		{"lower-case encoded slash becomes a separator", "/admin%2fusers", "/admin/users", true},
		{"trailing encoded slash is removed", "/admin%2F", "/admin", true},
		{"encoded dotdot is resolved", "/orders/%2e%2e/admin", "/admin", true},
		{"upper-case encoded dotdot is resolved", "/orders/%2E%2E/admin", "/admin", true},
		{"half-encoded dotdot is resolved", "/orders/.%2e/admin", "/admin", true},
		{"encoded dot segment is removed", "/%2e/admin", "/admin", true},
		{"encoded slashes around dotdot are resolved", "/orders%2F..%2Fadmin", "/admin", true},
		{"fully encoded traversal is resolved", "/orders%2F%2E%2E%2Fadmin", "/admin", true},
		{"encoded space is kept", "/a%20b", "/a b", true},
		{"raw space is kept", "/a b", "/a b", true},
		{"encoded question mark is data", "/a%3Fb", "/a?b", true},
		{"encoded hash is data", "/a%23b", "/a#b", true},
		{"encoded UTF-8 is decoded", "/caf%C3%A9", "/café", true},
		{"raw UTF-8 is kept", "/café", "/café", true},
		{"non-ASCII letters are not case-folded", "/%C3%89", "/É", true},
		{"colon is data", "/orders:search", "/orders:search", true},
		{"tilde and at sign are data", "/~user/@me", "/~user/@me", true},
		{"long path beyond the stack buffer is normalized", "/" + long + "X", "/" + strings.ToLower(long) + "x", true},
		{"long path with traversal is normalized", "/" + long + "../..", "/" + strings.ToLower(strings.Repeat("Seg/", 97)) + "seg", true},
		{"double-encoded dotdot is refused", "/%252e%252e/admin", "", false},
		{"encoded percent is refused", "/a%25", "", false},
		{"double-encoded letter is refused", "/%2561dmin", "", false},
		{"bare percent at the end is refused", "/a%", "", false},
		{"truncated escape is refused", "/a%4", "", false},
		{"non-hex escape is refused", "/a%zz", "", false},
		{"escape with one non-hex digit is refused", "/a%4g", "", false},
		{"percent followed by slash is refused", "/a%/b", "", false},
		{"encoded NUL is refused", "/admin%00", "", false},
		{"raw NUL is refused", "/admin\x00", "", false},
		{"encoded newline is refused", "/admin%0a", "", false},
		{"encoded carriage return is refused", "/a%0D", "", false},
		{"raw tab is refused", "/a\tb", "", false},
		{"encoded DEL is refused", "/a%7f", "", false},
		{"semicolon is refused", "/admin;x", "", false},
		{"encoded semicolon is refused", "/admin%3bx", "", false},
		{"servlet dotdot-semicolon trick is refused", "/public/..;/admin", "", false},
		{"empty path parameter is refused", "/admin;", "", false},
		{"backslash is refused", "/admin\\users", "", false},
		{"encoded backslash is refused", "/admin%5cusers", "", false},
		{"overlong UTF-8 slash is refused", "/admin%c0%afusers", "", false},
		{"overlong UTF-8 dots are refused", "/%c0%ae%c0%ae/admin", "", false},
		{"invalid UTF-8 byte is refused", "/%ff", "", false},
		{"raw invalid UTF-8 is refused", "/\xff", "", false},
		{"truncated UTF-8 sequence is refused", "/%C3", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizePath(tt.in)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if ok {
				again, ok2 := NormalizePath(got)
				if !ok2 || again != got {
					t.Fatalf("not idempotent: NormalizePath(%q) = %q, %v", got, again, ok2)
				}
			}
		})
	}
}

// Every byte value, raw and encoded: which ones are refused and which are
// kept (lower-cased).
func TestNormalizePathEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		c := byte(b)
		refusedByte := c < 0x20 || c == 0x7f || c == ';' || c == '\\' || c == '%' || c >= 0x80
		want := "/x" + string([]byte{c}) + "y"
		if 'A' <= c && c <= 'Z' {
			want = "/x" + string(c+'a'-'A') + "y"
		}
		if c == '/' {
			want = "/x/y"
		}
		for _, form := range []string{"encoded", "raw"} {
			in := fmt.Sprintf("/x%%%02Xy", c)
			if form == "raw" {
				if c == '%' {
					continue // a raw % is an escape, covered elsewhere
				}
				in = "/x" + string([]byte{c}) + "y"
			}
			name := fmt.Sprintf("%s byte 0x%02X is kept", form, c)
			if refusedByte {
				name = fmt.Sprintf("%s byte 0x%02X is refused", form, c)
			}
			t.Run(name, func(t *testing.T) {
				got, ok := NormalizePath(in)
				if refusedByte {
					if ok {
						t.Fatalf("NormalizePath(%q) = %q, true; want refusal", in, got)
					}
					return
				}
				if !ok || got != want {
					t.Fatalf("NormalizePath(%q) = %q, %v; want %q", in, got, ok, want)
				}
			})
		}
	}
}

func TestNormalizePathCanonicalDoesNotAllocate(t *testing.T) {
	for _, in := range []string{"/", "/orders/42", "/api/r57/items/abc-def_1.json", "/café/x"} {
		allocs := testing.AllocsPerRun(100, func() {
			if out, ok := NormalizePath(in); !ok || out != in {
				t.Fatalf("NormalizePath(%q) = %q, %v", in, out, ok)
			}
		})
		if allocs != 0 {
			t.Errorf("NormalizePath(%q) allocates %v times; want 0", in, allocs)
		}
	}
}

// The request tricks of the brief, and many generated combinations, cannot
// reach /admin (or something under it) without meeting the admin rule:
// either NormalizePath refuses them (the caller denies) or Check matches
// the admin rule and denies a token without the admin scope.
func TestPathTricksCannotSlipPastAdminRule(t *testing.T) {
	exactAdmin := mustCompile(t, Config{Rules: rules(
		"* /admin admin",
		"* /orders/{id} orders",
		"* /public/* public",
	)})
	wildAdmin := mustCompile(t, Config{Rules: rules(
		"* /admin/* admin",
		"* /orders/{id} orders",
		"* /orders/* orders",
		"* /public/* public",
		"GET /{section}/{id}/{sub} public",
	)})
	const granted = "orders public"

	guarded := func(t *testing.T, p *Policy, in, adminRule string) {
		t.Helper()
		norm, ok := NormalizePath(in)
		if !ok {
			return // refused: the caller denies the request
		}
		d := p.Check("GET", norm, granted)
		if d.Allowed || !d.Matched || d.Rule.Path != adminRule {
			t.Fatalf("%q -> %q: decision %+v (rule %s); want the %s rule to deny", in, norm, d, ruleID(d), adminRule)
		}
		if d2 := p.Check("GET", norm, granted+" admin"); !d2.Allowed {
			t.Fatalf("%q -> %q: the admin scope is not enough: %+v", in, norm, d2)
		}
	}

	brief := []string{
		"/admin", "/orders/../admin", "//admin", "/ADMIN", "/admin/", "/%61dmin",
		"/orders/%2e%2e/admin", "/admin;x", "/admin%00", "/public/..;/admin",
		"/%2561dmin", "/admin%2F", "/admin\\", "/./admin/.", "/x/y/../../admin",
	}
	for _, in := range brief {
		t.Run(fmt.Sprintf("%q meets the exact /admin rule", in), func(t *testing.T) { guarded(t, exactAdmin, in, "/admin") })
		t.Run(fmt.Sprintf("%q meets the /admin/* rule", in), func(t *testing.T) { guarded(t, wildAdmin, in, "/admin/*") })
	}
	under := []string{
		"/admin/users", "/admin%2Fusers", "/admin%2fusers/", "/ADMIN/Users", "//admin//users",
		"/public/../admin/users", "/public/%2e%2e/admin/users", "/public/%2E%2E%2Fadmin%2Fusers",
		"/admin;x/users", "/admin/users;x", "/public/..;/admin/users", "/admin/./users/",
		"/admin/x/../users", "/orders/1/../../admin/users", "/%61%64%6d%69%6e/users",
	}
	for _, in := range under {
		t.Run(fmt.Sprintf("%q meets the /admin/* rule", in), func(t *testing.T) { guarded(t, wildAdmin, in, "/admin/*") })
	}

	// Generated: prefix x spelling of "admin" x suffix.
	prefixes := []string{"/", "//", "/./", "/orders/../", "/orders/%2e%2e/", "/orders/.%2E/", "/%2e/", "/%2F", "/a/b/../../"}
	names := []string{"admin", "ADMIN", "aDmIn", "%61dmin", "%41DMIN", "adm%49n", "%61%64%6d%69%6e"}
	exactSuffixes := []string{"", "/", "//", "/.", "%2F", "/%2e", "/x/..", "/x/%2e%2e"}
	for _, pre := range prefixes {
		for _, name := range names {
			for _, suf := range exactSuffixes {
				in := pre + name + suf
				t.Run(fmt.Sprintf("generated %q meets the exact /admin rule", in), func(t *testing.T) { guarded(t, exactAdmin, in, "/admin") })
			}
			for _, suf := range []string{"/users", "%2Fusers", "/Users/", "//users", "/x/../users", "%2Fx%2F..%2Fusers"} {
				in := pre + name + suf
				t.Run(fmt.Sprintf("generated %q meets the /admin/* rule", in), func(t *testing.T) { guarded(t, wildAdmin, in, "/admin/*") })
			}
		}
	}
}
