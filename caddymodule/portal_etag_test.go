package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestPortalRefusesStaleETag: a write with the ETag of an older version
// is refused with 412 and changes nothing; the current ETag passes.
func TestPortalRefusesStaleETag(t *testing.T) {
	f := startAdminFixture(t)
	s := newPortalSession(t)
	idp := newTestIdP(t, jwa.RS256, "etag-1")
	resp, body := s.do(t, "POST", "acme/", kmDef("etag-km", idp), s.sameOrigin())
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	stale := resp.Header.Get("ETag")
	// Someone else changes it (through the admin API): stale is stale now.
	changed := kmDef("etag-km", idp)
	changed["display_name"] = "by someone else"
	r2, b2 := f.call(t, "PUT", "/keymanagers/acme/etag-km", changed, map[string]string{"If-Match": stale})
	if r2.StatusCode != http.StatusOK {
		t.Fatalf("concurrent change: %d %s", r2.StatusCode, b2)
	}
	current := r2.Header.Get("ETag")
	app := map[string]any{"id": "etag-app", "key_manager": "etag-km", "client_id": "c1"}
	r3, b3 := s.do(t, "POST", "acme/applications/", app, s.sameOrigin())
	if r3.StatusCode != http.StatusCreated {
		t.Fatalf("create app: %d %s", r3.StatusCode, b3)
	}
	appStale := r3.Header.Get("ETag")
	app["scopes"] = []string{"read"}
	if r, b := s.do(t, "PUT", "acme/applications/etag-app", app, s.with(map[string]string{"If-Match": appStale})); r.StatusCode != http.StatusOK {
		t.Fatalf("app change: %d %s", r.StatusCode, b)
	}
	mine := kmDef("etag-km", idp)
	mine["display_name"] = "mine"
	cases := []struct {
		name, method, path string
		body               any
		ifMatch            string
	}{
		{"replace a Key Manager", "PUT", "acme/etag-km", mine, stale},
		{"delete a Key Manager", "DELETE", "acme/etag-km", nil, stale},
		{"replace with a made-up ETag", "PUT", "acme/etag-km", mine, `"0123"`},
		{"replace an application", "PUT", "acme/applications/etag-app", map[string]any{"id": "etag-app", "key_manager": "etag-km", "client_id": "c2"}, appStale},
		{"delete an application", "DELETE", "acme/applications/etag-app", nil, appStale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := s.do(t, c.method, c.path, c.body, s.with(map[string]string{"If-Match": c.ifMatch}))
			if resp.StatusCode != http.StatusPreconditionFailed {
				t.Fatalf("status %d, want 412; body %s", resp.StatusCode, body)
			}
			if !strings.Contains(string(body), `"error"`) {
				t.Fatalf("want a JSON error, got %s", body)
			}
		})
	}
	t.Run("nothing was overwritten", func(t *testing.T) {
		_, body := s.do(t, "GET", "acme/etag-km", nil, nil)
		if !strings.Contains(string(body), "by someone else") {
			t.Fatalf("the concurrent change was lost: %s", body)
		}
		_, body = s.do(t, "GET", "acme/applications/etag-app", nil, nil)
		if !strings.Contains(string(body), `"c1"`) {
			t.Fatalf("the application was overwritten: %s", body)
		}
	})
	t.Run("the current ETag passes", func(t *testing.T) {
		resp, body := s.do(t, "PUT", "acme/etag-km", mine, s.with(map[string]string{"If-Match": current}))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
		}
	})
}
