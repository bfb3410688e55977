//go:build unix

package testidp

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// jwtParts splits a compact JWS and decodes its header and payload.
func jwtParts(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a 3-part JWT (%d parts): %q", len(parts), tok)
	}
	dec := func(seg string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			t.Fatalf("base64url segment %q: %v", seg, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("JSON segment %s: %v", b, err)
		}
		return m
	}
	if parts[2] == "" {
		t.Fatalf("JWT has an empty signature: %q", tok)
	}
	return dec(parts[0]), dec(parts[1])
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
	return m
}

func jwksKids(t *testing.T, u string) map[string]bool {
	t.Helper()
	kids := map[string]bool{}
	keys, _ := getJSON(t, u)["keys"].([]any)
	for _, k := range keys {
		if m, ok := k.(map[string]any); ok {
			if kid, ok := m["kid"].(string); ok {
				kids[kid] = true
			}
		}
	}
	return kids
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	if modulePathOf(filepath.Join(root, "go.mod")) != ModulePath {
		t.Fatalf("ModuleRoot %s has no go.mod for %s", root, ModulePath)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testidp", "testidp.go")); err != nil {
		t.Fatalf("ModuleRoot %s does not look like the repository root: %v", root, err)
	}
}

func TestHydra(t *testing.T) {
	h := StartHydra(t)
	if !strings.HasSuffix(h.Issuer(), "/") || !strings.HasPrefix(h.Issuer(), h.PublicURL()) {
		t.Fatalf("Issuer() = %q, want %q + \"/\"", h.Issuer(), h.PublicURL())
	}
	const aud = "https://api.example.test"

	if iss := getJSON(t, h.WellKnownURL())["issuer"]; iss != h.Issuer() {
		t.Errorf("discovery issuer = %v, want %q", iss, h.Issuer())
	}

	// JWT access token, signed with a key created through the admin API.
	h.CreateJWK(t, "hydra.jwt.access-token", "es-1", "ES256")
	h.CreateClient(t, ClientSpec{ID: "jwt-client", Secret: "jwt-secret-123", Scopes: []string{"read", "write"}, Audiences: []string{aud}, Strategy: "jwt"})
	jwt := h.Token(t, "jwt-client", "jwt-secret-123", "read write", aud)
	hdr, claims := jwtParts(t, jwt)
	if hdr["alg"] != "ES256" || hdr["kid"] != "es-1" {
		t.Errorf("JWT header = %v, want alg ES256 kid es-1", hdr)
	}
	if claims["iss"] != h.Issuer() {
		t.Errorf("iss = %v, want %q", claims["iss"], h.Issuer())
	}
	scp, ok := claims["scp"].([]any)
	if !ok || len(scp) != 2 || scp[0] != "read" || scp[1] != "write" {
		t.Errorf("scp = %#v, want [read write] array", claims["scp"])
	}
	if a, ok := claims["aud"].([]any); !ok || len(a) != 1 || a[0] != aud {
		t.Errorf("aud = %#v, want [%q]", claims["aud"], aud)
	}
	if !jwksKids(t, h.JWKSURL())["es-1"] {
		t.Errorf("JWKS at %s does not list kid es-1", h.JWKSURL())
	}
	if in := h.Introspect(t, jwt); in["active"] != true {
		t.Errorf("introspect JWT = %v, want active", in)
	}

	// Opaque access token, introspected on the admin port, then revoked.
	h.CreateClient(t, ClientSpec{ID: "opaque-client", Secret: "opaque-secret-123", Scopes: []string{"read", "write"}, Audiences: []string{aud}, Strategy: "opaque"})
	opaque := h.Token(t, "opaque-client", "opaque-secret-123", "read", aud)
	if strings.Count(opaque, ".") == 2 || !strings.HasPrefix(opaque, "ory_at_") {
		t.Fatalf("opaque token looks wrong: %q", opaque)
	}
	in := h.Introspect(t, opaque)
	if in["active"] != true || in["client_id"] != "opaque-client" || in["scope"] != "read" {
		t.Fatalf("introspect opaque = %v, want active, client_id opaque-client, scope read", in)
	}
	h.RevokeToken(t, "opaque-client", "opaque-secret-123", opaque)
	if in := h.Introspect(t, opaque); in["active"] != false {
		t.Errorf("introspect revoked opaque = %v, want active false", in)
	}
}

func TestHydraWithEnv(t *testing.T) {
	h := StartHydraWith(t, map[string]string{"STRATEGIES_JWT_SCOPE_CLAIM": "both"})
	h.CreateClient(t, ClientSpec{ID: "c", Secret: "c-secret-123", Scopes: []string{"read", "write"}})
	_, claims := jwtParts(t, h.Token(t, "c", "c-secret-123", "read write", ""))
	if claims["scope"] != "read write" {
		t.Errorf("scope = %#v, want \"read write\" with STRATEGIES_JWT_SCOPE_CLAIM=both", claims["scope"])
	}
	if _, ok := claims["scp"].([]any); !ok {
		t.Errorf("scp = %#v, want an array", claims["scp"])
	}
}

func TestOIDCProvider(t *testing.T) {
	o := StartOIDCProvider(t)
	if strings.HasSuffix(o.Issuer(), "/") {
		t.Fatalf("Issuer() = %q has a trailing slash", o.Issuer())
	}
	if !strings.HasPrefix(o.IntrospectionURL(), o.Issuer()+"/") {
		t.Fatalf("IntrospectionURL() = %q", o.IntrospectionURL())
	}
	kids := jwksKids(t, o.JWKSURL())
	if !kids["es256-1"] || !kids["rs256-1"] {
		t.Errorf("JWKS kids = %v, want es256-1 and rs256-1", kids)
	}

	for _, tc := range []struct{ resource, alg string }{
		{OIDCResourceJWT, "ES256"},
		{OIDCResourceRS256, "RS256"},
	} {
		hdr, claims := jwtParts(t, o.Token(t, "read write", tc.resource))
		if hdr["typ"] != "at+jwt" || hdr["alg"] != tc.alg {
			t.Errorf("%s: header = %v, want typ at+jwt alg %s", tc.resource, hdr, tc.alg)
		}
		if claims["iss"] != o.Issuer() || claims["aud"] != tc.resource || claims["scope"] != "read write" || claims["client_id"] != OIDCClientID {
			t.Errorf("%s: claims = %v", tc.resource, claims)
		}
	}

	opaque := o.Token(t, "read", OIDCResourceOpaque)
	if strings.Contains(opaque, ".") {
		t.Fatalf("opaque token looks like a JWT: %q", opaque)
	}
	// Introspect by hand with gateway:gateway-secret (what the module will do).
	req, err := http.NewRequest(http.MethodPost, o.IntrospectionURL(), strings.NewReader("token="+opaque))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(OIDCIntrospectClientID, OIDCIntrospectSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: HTTP %d: %s (%v)", resp.StatusCode, body, err)
	}
	if in["active"] != true || in["aud"] != OIDCResourceOpaque || in["scope"] != "read" || in["client_id"] != OIDCClientID {
		t.Fatalf("introspect opaque = %v, want active", in)
	}

	o.RevokeToken(t, opaque)
	if in := o.Introspect(t, opaque); in["active"] != false {
		t.Errorf("introspect revoked opaque = %v, want active false", in)
	}
}

func TestOIDCProviderTTL(t *testing.T) {
	o := StartOIDCProviderWith(t, map[string]string{"ACCESS_TOKEN_TTL": "7"})
	_, claims := jwtParts(t, o.Token(t, "read", OIDCResourceJWT))
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if exp-iat != 7 {
		t.Errorf("exp-iat = %v, want 7 (ACCESS_TOKEN_TTL)", exp-iat)
	}
}
