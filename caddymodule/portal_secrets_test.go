package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestPortalMasksSecretsInEveryResponse walks a Key Manager with secrets
// through every portal API call that shows it, and a few that fail, and
// checks no response (body or header) carries a secret.
func TestPortalMasksSecretsInEveryResponse(t *testing.T) {
	startAdminFixture(t)
	s := newPortalSession(t)
	idp := newTestIdP(t, jwa.RS256, "mask-1")
	const clientSecret, sharedSecret = "portal-client-secret-value", "portal-shared-secret-value-0123456789abcdef"
	def := kmDef("masked", idp)
	def["client_secret"] = clientSecret
	def["shared_secret"] = sharedSecret
	def["well_known_url"] = idp.WellKnownURL()
	bad := kmDef("masked-bad", idp)
	bad["client_secret"] = clientSecret
	bad["allowed_algorithms"] = []string{"none"}
	discover := map[string]any{"well_known_url": idp.WellKnownURL(), "client_id": "x", "client_secret": clientSecret}
	renamedURL := kmDef("masked", idp)
	renamedURL["client_secret"] = "********"
	renamedURL["well_known_url"] = idp.WellKnownURL()
	renamedURL["jwks_url"] = "http://127.0.0.1:1/elsewhere"

	var etag string
	steps := []struct {
		name, method, path string
		body               any
		ifMatch            bool
		status             int
	}{
		{"create", "POST", "acme/", def, false, http.StatusCreated},
		{"create again (409)", "POST", "acme/", def, false, http.StatusConflict},
		{"create with a field error (400)", "POST", "acme/", bad, false, http.StatusBadRequest},
		{"list all", "GET", "", nil, false, http.StatusOK},
		{"list the tenant", "GET", "acme/", nil, false, http.StatusOK},
		{"read one", "GET", "acme/masked", nil, false, http.StatusOK},
		{"read the config one", "GET", "acme/from-config", nil, false, http.StatusOK},
		{"status", "GET", "acme/masked/status", nil, false, http.StatusOK},
		{"status of all", "GET", "status", nil, false, http.StatusOK},
		{"discover", "POST", "discover", discover, false, http.StatusOK},
		{"replace keeping the masked secrets", "PUT", "acme/masked", map[string]any{"name": "masked", "issuer": idp.Issuer,
			"jwks_url": idp.Srv.URL + "/jwks", "client_id": "api-client", "client_secret": "********", "shared_secret": "********",
			"well_known_url": idp.WellKnownURL(), "display_name": "changed"}, true, http.StatusOK},
		{"mask sent to another endpoint (400)", "PUT", "acme/masked", renamedURL, true, http.StatusBadRequest},
		{"refresh", "POST", "acme/masked/refresh", nil, false, http.StatusOK},
		{"read after replace", "GET", "acme/masked", nil, false, http.StatusOK},
		{"revoke by jti", "POST", "revoke", map[string]any{"issuer": idp.Issuer, "jti": "j-1"}, false, http.StatusCreated},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			hdr := s.sameOrigin()
			if st.ifMatch {
				hdr["If-Match"] = etag
			}
			resp, body := s.do(t, st.method, st.path, st.body, hdr)
			if resp.StatusCode != st.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, st.status, body)
			}
			if e := resp.Header.Get("ETag"); e != "" && strings.HasSuffix(st.path, "masked") {
				etag = e
			}
			all := string(body)
			for k, vs := range resp.Header {
				all += k + ": " + strings.Join(vs, ",") + "\n"
			}
			for _, secret := range []string{clientSecret, sharedSecret, "cfg-secret-value"} {
				if strings.Contains(all, secret) {
					t.Fatalf("the response carries a secret (%s...):\n%s", secret[:8], all)
				}
			}
		})
	}
	t.Run("the secrets were kept", func(t *testing.T) {
		_, body := s.do(t, "GET", "acme/masked", nil, nil)
		if strings.Count(string(body), `"********"`) != 2 || !strings.Contains(string(body), `"changed"`) {
			t.Fatalf("want both secrets masked (so still set) and the change saved: %s", body)
		}
	})
}
