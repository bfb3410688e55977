package scopes

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"", "/", "//", "/admin", "/ADMIN/", "/orders/../admin", "//admin", "/%61dmin",
		"/admin%2Fusers", "/orders/%2e%2e/admin", "/admin;x", "/public/..;/admin",
		"/%252e", "/a%", "/a%4", "/%c0%af", "/a\\b", "/caf%C3%A9", "/./.././a/b/../../..",
		"/a//b/./c/..//d/", "/%2E%2e%2f%2E", "admin", "/\x00", "/%ff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := NormalizePath(in)
		if !ok {
			if out != "" {
				t.Fatalf("refused %q but returned %q", in, out)
			}
			return
		}
		again, ok2 := NormalizePath(out)
		if !ok2 || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, ok2)
		}
		if out == "" || out[0] != '/' {
			t.Fatalf("%q -> %q: does not start with /", in, out)
		}
		if len(out) > 1 && out[len(out)-1] == '/' {
			t.Fatalf("%q -> %q: trailing slash", in, out)
		}
		for _, bad := range []string{"//", "/./", "/../", "%", ";", "\\"} {
			if strings.Contains(out, bad) {
				t.Fatalf("%q -> %q: contains %q", in, out, bad)
			}
		}
		if strings.HasSuffix(out, "/.") || strings.HasSuffix(out, "/..") {
			t.Fatalf("%q -> %q: ends with a dot segment", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; 'A' <= c && c <= 'Z' || c < 0x20 || c == 0x7f {
				t.Fatalf("%q -> %q: byte %q at %d", in, out, c, i)
			}
		}
		if !utf8.ValidString(out) {
			t.Fatalf("%q -> %q: invalid UTF-8", in, out)
		}
		// Cross-check with the standard library: decode once, clean,
		// lower-case ASCII.
		dec, err := url.PathUnescape(in)
		if err != nil {
			t.Fatalf("accepted %q that net/url cannot unescape: %v", in, err)
		}
		want := []byte(path.Clean("/" + strings.TrimPrefix(dec, "/")))
		for i, c := range want {
			if 'A' <= c && c <= 'Z' {
				want[i] = c + 'a' - 'A'
			}
		}
		if out != string(want) {
			t.Fatalf("%q -> %q; path.Clean of the decoded path gives %q", in, out, want)
		}
	})
}
