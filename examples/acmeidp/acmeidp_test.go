package acmeidp_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	// The plugin (keymanagers app, keymanager handler, built-in
	// connectors) and this connector, as `xcaddy build --with` would.
	_ "github.com/kmgate/caddy-keymanager"
	"github.com/kmgate/caddy-keymanager/examples/acmeidp"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

func TestModuleRegistered(t *testing.T) {
	info, err := caddy.GetModule("keymanagers.connectors.acmeidp")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(keymanagers.Connector); !ok {
		t.Fatalf("%T is not a keymanagers.Connector", info.New())
	}
	found := false
	for _, m := range caddy.GetModules("keymanagers.connectors") {
		found = found || m.ID.Name() == "acmeidp"
	}
	if !found {
		t.Fatal("acmeidp is not listed among the keymanagers.connectors modules")
	}
}

func adapt(t *testing.T, km string) ([]byte, error) {
	t.Helper()
	src := "{\n\tkeymanagers {\n\t\ttenant acme {\n\t\t\tkey_manager acme {\n" + km + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// TestCaddyfileAdaptAndPrepare: the connector's fields are Key Manager
// subdirectives, checked at parse time; the definition they give prepares
// into the derived endpoints.
func TestCaddyfileAdaptAndPrepare(t *testing.T) {
	out, err := adapt(t, "type acmeidp\nserver_url https://idp.acme.example/\ndirectory employees\naudience https://api.acme.example\nclient_id gw\nclient_secret s3cret")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			Keymanagers struct {
				Tenants map[string]struct {
					KeyManagers []keymanagers.Definition `json:"key_managers"`
				} `json:"tenants"`
			} `json:"keymanagers"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	def := cfg.Apps.Keymanagers.Tenants["acme"].KeyManagers[0]
	var conn acmeidp.Connector
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(def.Connector, &fields)
	if string(fields["type"]) != `"acmeidp"` {
		t.Fatalf("connector %s", def.Connector)
	}
	delete(fields, "type")
	b, _ := json.Marshal(fields)
	if err := caddy.StrictUnmarshalJSON(b, &conn); err != nil {
		t.Fatal(err)
	}
	got, err := keymanagers.Prepare(def, &conn)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer":              "https://idp.acme.example/idp/employees",
		"jwks_url":            "https://idp.acme.example/idp/employees/keys.json",
		"introspection_url":   "https://idp.acme.example/idp/employees/token-info",
		"claims.consumer_key": "acme_client",
		"claims.scopes":       "acme_perms",
	}
	have := map[string]string{"issuer": got.Issuer, "jwks_url": got.JWKSURL, "introspection_url": got.IntrospectionURL,
		"claims.consumer_key": got.Claims.ConsumerKey, "claims.scopes": got.Claims.Scopes}
	for k, v := range want {
		if have[k] != v {
			t.Errorf("%s = %q, want %q", k, have[k], v)
		}
	}

	for km, msg := range map[string]string{
		"type acmeidp\nserver_url https://idp.acme.example\ndirectry employees": `"directry"`,
		"type acmeidp\ndirectory employees":                                     "server_url",
		"type acmeidp\nserver_url https://idp.acme.example\ndirectory a/b":      "directory",
	} {
		if _, err := adapt(t, km); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want it to mention %s", km, err, msg)
		}
	}
}

// acmeServer publishes one RSA key the way Acme IdP does and mints tokens.
type acmeServer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newAcmeServer(t *testing.T) *acmeServer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := &acmeServer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "acme-1", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/idp/employees/keys.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *acmeServer) mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "acme-1", "typ": "JWT"})
	now := time.Now().Unix()
	c := map[string]any{"iss": a.srv.URL + "/idp/employees", "aud": "https://api.acme.example", "iat": now, "exp": now + 300}
	for k, v := range claims {
		c[k] = v
	}
	payload, _ := json.Marshal(c)
	input := b64(hdr) + "." + b64(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// TestThroughCaddy loads a gateway whose Key Manager uses the acmeidp
// connector with its connection fields only, and sends it tokens.
func TestThroughCaddy(t *testing.T) {
	idp := newAcmeServer(t)
	cfg := `{
	skip_install_trust
	admin localhost:2998
	http_port 9081
	https_port 9444
	grace_period 1ns
	keymanagers {
		tenant acme {
			key_manager acme {
				type acmeidp
				server_url ` + idp.srv.URL + `
				directory employees
				audience https://api.acme.example
			}
		}
	}
}
http://localhost:9081 {
	route /who {
		keymanager acme
		respond "{keymanager.subject}|{keymanager.client_id}|{keymanager.scopes}"
	}
}
`
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: 2998})
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://localhost:9081/who", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get(idp.mint(t, map[string]any{"sub": "alice", "acme_dir": "employees", "acme_client": "orders-app",
		"acme_perms": []string{"orders.read", "orders.write"}, "acme_kind": "access"}))
	if status != http.StatusOK || body != `employees\alice|orders-app|orders.read orders.write` {
		t.Fatalf("access token: %d %s", status, body)
	}
	status, body = get(idp.mint(t, map[string]any{"sub": "alice", "acme_client": "orders-app", "acme_kind": "refresh"}))
	if status != http.StatusUnauthorized || !strings.Contains(body, "Acme IdP refresh token, not an access token") {
		t.Fatalf("refresh token: %d %s", status, body)
	}
	status, body = get(idp.mint(t, map[string]any{"sub": "alice", "aud": "https://other.example"}))
	if status != http.StatusUnauthorized || !strings.Contains(body, "audience") {
		t.Fatalf("wrong audience: %d %s", status, body)
	}
}
