package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

const portalBase = gatewayBase + "/portal/"

// portalSession is a browser-like client of the portal: it holds the CSRF
// cookie the page handed out and sends the headers a same-origin fetch
// sends.
type portalSession struct {
	csrf   string
	client *http.Client
}

func newPortalSession(t *testing.T) *portalSession {
	t.Helper()
	s := &portalSession{client: &http.Client{}}
	resp, err := s.client.Get(portalBase)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "kmportal_csrf" {
			if c.SameSite != http.SameSiteStrictMode || c.Path != "/portal/" {
				t.Fatalf("CSRF cookie %+v: want SameSite=Strict and Path=/portal/", c)
			}
			s.csrf = c.Value
		}
	}
	if s.csrf == "" {
		t.Fatalf("the portal page set no kmportal_csrf cookie (Set-Cookie %q)", resp.Header.Values("Set-Cookie"))
	}
	return s
}

// sameOrigin are the headers of a same-origin fetch from the portal page.
func (s *portalSession) sameOrigin() map[string]string {
	return map[string]string{"Origin": gatewayBase, "Sec-Fetch-Site": "same-origin",
		"Cookie": "kmportal_csrf=" + s.csrf, "X-CSRF-Token": s.csrf}
}

// do calls the portal API (path relative to {portal}/api/) with exactly
// the headers given; a header with an empty value is left out.
func (s *portalSession) do(t *testing.T, method, path string, body any, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, portalBase+"api/"+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// with returns the same-origin headers with some replaced ("" drops one).
func (s *portalSession) with(changes map[string]string) map[string]string {
	h := s.sameOrigin()
	for k, v := range changes {
		h[k] = v
	}
	return h
}

func TestPortalRefusesWritesWithoutSameOriginAndCSRFToken(t *testing.T) {
	f := startAdminFixture(t)
	s := newPortalSession(t)
	idp := newTestIdP(t, jwa.RS256, "csrf-1")
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no Origin and no Sec-Fetch-Site", map[string]string{"Origin": "", "Sec-Fetch-Site": ""}, "neither an Origin nor a Sec-Fetch-Site"},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, `Sec-Fetch-Site is "cross-site"`},
		{"same-site but other origin", map[string]string{"Sec-Fetch-Site": "same-site"}, `Sec-Fetch-Site is "same-site"`},
		{"foreign Origin without Sec-Fetch-Site", map[string]string{"Sec-Fetch-Site": "", "Origin": "http://evil.example:9080"}, `Origin "http://evil.example:9080" is not this portal's origin`},
		{"no CSRF cookie", map[string]string{"Cookie": ""}, "the kmportal_csrf cookie is not set"},
		{"no X-CSRF-Token header", map[string]string{"X-CSRF-Token": ""}, "in the X-CSRF-Token header"},
		{"X-CSRF-Token differs from the cookie", map[string]string{"X-CSRF-Token": strings.Repeat("A", 43)}, "does not match"},
	}
	writes := []struct{ method, path string }{
		{"POST", "acme/"}, {"PUT", "acme/csrf-km"}, {"DELETE", "acme/from-config"}, {"DELETE", "cache"}, {"POST", "revoke"},
	}
	for _, c := range cases {
		for _, w := range writes {
			t.Run(c.name+"/"+w.method+" "+w.path, func(t *testing.T) {
				resp, body := s.do(t, w.method, w.path, kmDef("csrf-km", idp), s.with(c.headers))
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403; body %s", resp.StatusCode, body)
				}
				var got struct{ Error, Code string }
				if err := json.Unmarshal(body, &got); err != nil || got.Code != "csrf" || !strings.Contains(got.Error, c.want) {
					t.Fatalf("body %s: want a JSON error with code csrf mentioning %q", body, c.want)
				}
			})
		}
	}
	t.Run("refused writes changed nothing", func(t *testing.T) {
		if resp, body := s.do(t, "GET", "acme/csrf-km", nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET csrf-km: %d %s, want 404", resp.StatusCode, body)
		}
	})
	t.Run("a same-origin write with the token passes", func(t *testing.T) {
		resp, body := s.do(t, "POST", "acme/", kmDef("csrf-km", idp), s.sameOrigin())
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, want 201; body %s", resp.StatusCode, body)
		}
		resp, body = s.do(t, "DELETE", "acme/csrf-km", nil, s.with(map[string]string{"Sec-Fetch-Site": ""}))
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete with Origin only: status %d, want 204; body %s", resp.StatusCode, body)
		}
	})
	t.Run("reads need no token", func(t *testing.T) {
		resp, body := s.do(t, "GET", "acme/", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
		}
	})
	_ = f
}

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func TestPortalSetsStrictCSPOnEveryResponse(t *testing.T) {
	startAdminFixture(t)
	s := newPortalSession(t)
	cases := []struct {
		name, method, path string
		status             int
		contentType        string
	}{
		{"the page", "GET", "", 200, "text/html"},
		{"a script", "GET", "app.js", 200, "text/javascript"},
		{"the style sheet", "GET", "style.css", 200, "text/css"},
		{"a missing file", "GET", "missing.js", 404, ""},
		{"a write to a file", "POST", "index.html", 405, ""},
		{"an API list", "GET", "api/", 200, "application/json"},
		{"an API 404", "GET", "api/acme/nope", 404, "application/json"},
		{"an API refusal", "DELETE", "api/cache", 403, "application/json"},
		{"connector types", "GET", "api/connectors", 200, "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, portalBase+c.path, nil)
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			for k, want := range map[string]string{"Content-Security-Policy": wantCSP, "X-Content-Type-Options": "nosniff",
				"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if ct := resp.Header.Get("Content-Type"); c.contentType != "" && !strings.HasPrefix(ct, c.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, c.contentType)
			}
		})
	}
}

// TestPortalFilesNeedNoInlineCodeOrExternalResources proves the page works
// under its CSP: no inline script or style, no URL of another origin.
func TestPortalFilesNeedNoInlineCodeOrExternalResources(t *testing.T) {
	files, err := os.ReadDir("portal")
	if err != nil {
		t.Fatal(err)
	}
	rules := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"an inline script", regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`)},
		{"a script without src", regexp.MustCompile(`<script(?:\s+(?:type|async|defer)(?:="[^"]*")?)*\s*>`)},
		{"a style element", regexp.MustCompile(`<style`)},
		{"a style attribute", regexp.MustCompile(`\sstyle=|'style'|setAttribute\(\s*'style`)},
		{"an inline event handler", regexp.MustCompile(`\son[a-z]+="`)},
		{"an external URL", regexp.MustCompile(`(src|href)=["']?(https?:)?//`)},
		{"eval or new Function", regexp.MustCompile(`\beval\(|new Function\(`)},
		{"innerHTML", regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML`)},
	}
	for _, fi := range files {
		b, err := os.ReadFile("portal/" + fi.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if loc := r.re.FindIndex(b); loc != nil {
				t.Errorf("%s has %s: %q", fi.Name(), r.what, b[loc[0]:min(loc[1]+20, len(b))])
			}
		}
	}
}

// TestPortalLocationPointsIntoThePortal proves a create answered through
// the portal names the new resource under the portal's own API (the
// browser cannot reach the admin endpoint), and the same create on the
// admin endpoint names it under /keymanagers/.
func TestPortalLocationPointsIntoThePortal(t *testing.T) {
	f := startAdminFixture(t)
	s := newPortalSession(t)
	idp := newTestIdP(t, jwa.RS256, "loc-1")
	idp2 := newTestIdP(t, jwa.RS256, "loc-2")
	cases := []struct {
		name, path string
		body       any
		portal     bool
		want       string
	}{
		{"a Key Manager created in the portal", "acme/", kmDef("loc-portal", idp), true, "/portal/api/acme/loc-portal"},
		{"an application created in the portal", "acme/applications/", map[string]any{"id": "loc-app", "key_manager": "loc-portal", "client_id": "c1"}, true, "/portal/api/acme/applications/loc-app"},
		{"a Key Manager created on the admin endpoint", "acme/", kmDef("loc-admin", idp2), false, "/keymanagers/acme/loc-admin"},
		{"an application created on the admin endpoint", "acme/applications/", map[string]any{"id": "loc-app2", "key_manager": "loc-admin", "client_id": "c2"}, false, "/keymanagers/acme/applications/loc-app2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			var body []byte
			base := adminBase
			if c.portal {
				resp, body = s.do(t, "POST", c.path, c.body, s.sameOrigin())
				base = gatewayBase
			} else {
				resp, body = f.call(t, "POST", "/keymanagers/"+c.path, c.body, nil)
			}
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("create: %d %s", resp.StatusCode, body)
			}
			loc := resp.Header.Get("Location")
			if loc != c.want {
				t.Fatalf("Location %q, want %q", loc, c.want)
			}
			got, err := http.Get(base + loc)
			if err != nil {
				t.Fatal(err)
			}
			got.Body.Close()
			if got.StatusCode != http.StatusOK {
				t.Fatalf("GET Location %s: %d, want 200", base+loc, got.StatusCode)
			}
		})
	}
}
