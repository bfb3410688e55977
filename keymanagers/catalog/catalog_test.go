package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// memStorage is an in-memory Storage for tests.
type memStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

func newMem() *memStorage { return &memStorage{data: map[string][]byte{}} }

func (m *memStorage) Lock(context.Context, string) error   { return nil }
func (m *memStorage) Unlock(context.Context, string) error { return nil }
func (m *memStorage) Store(_ context.Context, k string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[k] = append([]byte(nil), v...)
	return nil
}
func (m *memStorage) Load(_ context.Context, k string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[k]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v, nil
}
func (m *memStorage) Delete(_ context.Context, k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, k)
	return nil
}
func (m *memStorage) Exists(_ context.Context, k string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key := range m.data {
		if key == k || strings.HasPrefix(key, k+"/") {
			return true
		}
	}
	return false
}
func (m *memStorage) List(_ context.Context, p string, recursive bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.data {
		if rest, ok := strings.CutPrefix(k, p+"/"); ok && (recursive || !strings.Contains(rest, "/")) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	sort.Strings(out)
	return out, nil
}

func testBuild(tenant string, def keymanagers.Definition) (Runtime, error) {
	prepared, err := keymanagers.Prepare(def, nil)
	if err != nil {
		return Runtime{}, err
	}
	km, err := keymanagers.NewKeyManager(tenant, prepared, keymanagers.Options{})
	if err != nil {
		return Runtime{}, err
	}
	return Runtime{KeyManager: km, Release: km.Close}, nil
}

func newTestCatalog(t *testing.T, mutate func(*Config)) *Catalog {
	t.Helper()
	cache, err := keymanagers.NewResultCache(keymanagers.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	cfg := Config{
		Gateway:       keymanagers.NewGateway(nil, cache, nil, nil),
		Storage:       newMem(),
		Build:         testBuild,
		ConfigTenants: map[string][]*keymanagers.KeyManager{"acme": nil},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kmDef(name string) keymanagers.Definition {
	return keymanagers.Definition{Name: name, Issuer: "https://" + name + ".example.com", JWKSURL: "https://" + name + ".example.com/jwks"}
}

func introDef(name, secret string) keymanagers.Definition {
	return keymanagers.Definition{Name: name, Issuer: "https://" + name + ".example.com", IntrospectionURL: "https://" + name + ".example.com/introspect",
		ClientID: "gw", ClientSecret: secret, TokenValidation: keymanagers.ValidationIntrospection}
}

// unsignedJWT builds a compact JWS with the given payload (the revoke path
// never verifies; it only reads).
func unsignedJWT(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","kid":"k"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("sig"))
}

// TestRevoke_KeepsARevocationAsLongAsTheTokenCanBeAccepted proves the
// revoke path reads exp with the strict decoder (a second "Exp" member
// cannot end the revocation early), never falls back to 24h for an exp
// beyond the parser's range, and revokes a JWT by (issuer, jti) too.
func TestRevoke_KeepsARevocationAsLongAsTheTokenCanBeAccepted(t *testing.T) {
	c := newTestCatalog(t, nil)
	exp := time.Now().Add(3 * time.Hour).Unix()
	cases := []struct {
		name            string
		token           string
		wantAtLeast     time.Time
		wantIss, wantID string
	}{
		{"exp and a case-folded Exp: the exact member wins",
			unsignedJWT(`{"iss":"https://idp","jti":"a1","exp":` + itoa(exp) + `,"Exp":` + itoa(time.Now().Add(time.Minute).Unix()) + `}`),
			time.Unix(exp, 0), "https://idp", "a1"},
		{"exp beyond the parser's range is kept far in the future",
			unsignedJWT(`{"iss":"https://idp","jti":"a2","exp":1e300}`), time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC), "https://idp", "a2"},
		{"a JWT without jti is revoked by hash only",
			unsignedJWT(`{"iss":"https://idp","exp":` + itoa(exp) + `}`), time.Unix(exp, 0), "", ""},
		{"an opaque token is kept for the default",
			"opaque-token-value", time.Now().Add(DefaultRevocationTTL - time.Minute), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rv, err := c.Revoke(context.Background(), RevokeRequest{Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			if rv.ExpiresAt.Before(tc.wantAtLeast) {
				t.Fatalf("revocation kept until %v, want at least %v", rv.ExpiresAt, tc.wantAtLeast)
			}
			if rv.TokenHash != keymanagers.TokenHash(tc.token) || rv.Issuer != tc.wantIss || rv.JTI != tc.wantID {
				t.Fatalf("revocation %+v, want hash and (%q, %q)", rv, tc.wantIss, tc.wantID)
			}
		})
	}
}

// TestRevoke_RecordsTheMirroredECDSAEncoding proves a revoked ES256 token
// is recorded with the hash of its mirrored signature (r, n-s), which
// verifies as well; the gateway refuses both hashes.
func TestRevoke_RecordsTheMirroredECDSAEncoding(t *testing.T) {
	c := newTestCatalog(t, nil)
	enc := base64.RawURLEncoding.EncodeToString
	sig := make([]byte, 64)
	for i := range sig {
		sig[i] = byte(i + 1)
	}
	tok := enc([]byte(`{"alg":"ES256","kid":"k"}`)) + "." + enc([]byte(`{"iss":"https://idp"}`)) + "." + enc(sig)
	mirror, ok := keymanagers.MirrorECDSAToken(tok)
	if !ok {
		t.Fatal("no mirror for an ES256 token")
	}
	rv, err := c.Revoke(context.Background(), RevokeRequest{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if rv.TokenHash != keymanagers.TokenHash(tok) || rv.MirrorTokenHash != keymanagers.TokenHash(mirror) {
		t.Fatalf("revocation %+v: want both the token's and the mirror's hash", rv)
	}
	if rv.MirrorTokenHash == rv.TokenHash {
		t.Fatal("the mirror hash is the token hash")
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

// TestReplaceKeyManager_MaskedSecretOnlyWhereItWasSent proves a PUT that
// sends the masked secret keeps the stored one, unless it also moves an
// endpoint: then the secret must be sent again.
func TestReplaceKeyManager_MaskedSecretOnlyWhereItWasSent(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		change    func(*keymanagers.Definition)
		wantField string // "" accepted
	}{
		{"same endpoints keep the stored secret", func(d *keymanagers.Definition) { d.DisplayName = "renamed" }, ""},
		{"another introspection_url needs the secret again", func(d *keymanagers.Definition) { d.IntrospectionURL = "https://evil.example.net/i" }, "introspection_url"},
		{"another token_url needs the secret again", func(d *keymanagers.Definition) {
			d.IntrospectionAuth = keymanagers.AuthBearer
			d.TokenURL = "https://evil.example.net/t"
		}, "token_url"},
		{"another well_known_url needs the secret again", func(d *keymanagers.Definition) {
			d.WellKnownURL = "https://evil.example.net/.well-known/openid-configuration"
		}, "well_known_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCatalog(t, nil)
			if _, err := c.CreateKeyManager(ctx, "acme", introDef("op", "s3cret-value")); err != nil {
				t.Fatal(err)
			}
			def := introDef("op", keymanagers.Mask)
			tc.change(&def)
			_, err := c.ReplaceKeyManager(ctx, "acme", def, "")
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.kms["acme"]["op"].rec.Definition.ClientSecret; got != "s3cret-value" {
					t.Fatalf("stored secret became %q", got)
				}
				return
			}
			var fe keymanagers.FieldErrors
			if !errors.As(err, &fe) || fe[0].Field != tc.wantField {
				t.Fatalf("got %v, want a field error on %s", err, tc.wantField)
			}
			if strings.Contains(err.Error(), "s3cret-value") {
				t.Fatal("the error shows the secret")
			}
			if got := c.kms["acme"]["op"].rec.Definition.IntrospectionURL; got != introDef("op", "").IntrospectionURL {
				t.Fatalf("the change was stored anyway: %s", got)
			}
		})
	}
}

// TestETags_SayNothingOfTheSecrets proves ETags come from a revision
// counter: two definitions that differ only in their secret have the same
// ETag, and each write gives a new one.
func TestETags_SayNothingOfTheSecrets(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return fixed }
	ctx := context.Background()
	c := newTestCatalog(t, func(cfg *Config) { cfg.ConfigTenants["beta"] = nil })
	a, err := c.CreateKeyManager(ctx, "acme", introDef("op", "secret-one-aaaaaaaa"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateKeyManager(ctx, "beta", introDef("op", "secret-two-bbbbbbbb"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ETag != b.ETag || !regexp.MustCompile(`^"\d+\.[0-9a-z]+"$`).MatchString(a.ETag) {
		t.Fatalf("ETags %s and %s: want the same revision ETag for definitions that differ only in secrets", a.ETag, b.ETag)
	}
	a2, err := c.ReplaceKeyManager(ctx, "acme", introDef("op", "secret-three-cccccc"), a.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if a2.ETag == a.ETag {
		t.Fatal("a write kept the ETag")
	}
	if _, err := c.ReplaceKeyManager(ctx, "acme", introDef("op", "secret-four-ddddddd"), a.ETag); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("stale If-Match: got %v, want ErrPrecondition", err)
	}
}

// TestAdminDefinitions_NameFilesOnlyUnderCADir proves an admin-API
// definition can read no file of the host: certificate_file is refused,
// tls.ca_file must lie inside ca_dir (links followed), and the refusal
// reads the same for a missing and for an existing file.
func TestAdminDefinitions_NameFilesOnlyUnderCADir(t *testing.T) {
	dir := t.TempDir()
	caPEM := selfSignedPEM(t)
	if err := os.WriteFile(filepath.Join(dir, "corp.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "exists.pem")
	if err := os.WriteFile(outside, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link.pem")); err != nil {
		t.Fatal(err)
	}
	withCA := func(file, pemText string) keymanagers.Definition {
		d := kmDef("idp")
		d.TLS = &keymanagers.TLSConfig{CAFile: file, CAPEM: pemText}
		return d
	}
	certFile := kmDef("idp")
	certFile.JWKSURL = ""
	certFile.CertificateFile = outside
	for _, tc := range []struct {
		name   string
		caDir  string
		def    keymanagers.Definition
		field  string // "" accepted
		sameAs string // this case's message must equal that one's
	}{
		{"a file inside ca_dir", dir, withCA("corp.pem", ""), "", ""},
		{"an absolute path inside ca_dir", dir, withCA(filepath.Join(dir, "corp.pem"), ""), "", ""},
		{"inline ca_pem needs no directory", "", withCA("", string(caPEM)), "", ""},
		{"an existing file outside ca_dir", dir, withCA(outside, ""), "tls.ca_file", ""},
		{"a missing file outside ca_dir", dir, withCA("/nonexistent/ca.pem", ""), "tls.ca_file", "an existing file outside ca_dir"},
		{"a missing file inside ca_dir", dir, withCA("missing.pem", ""), "tls.ca_file", "an existing file outside ca_dir"},
		{"a link out of ca_dir", dir, withCA("link.pem", ""), "tls.ca_file", "an existing file outside ca_dir"},
		{"dot segments out of ca_dir", dir, withCA("../../../../etc/passwd", ""), "tls.ca_file", "an existing file outside ca_dir"},
		{"no ca_dir at all", "", withCA(filepath.Join(dir, "corp.pem"), ""), "tls.ca_file", ""},
		{"certificate_file", dir, certFile, "certificate_file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCatalog(t, func(cfg *Config) { cfg.CADir = tc.caDir })
			_, err := c.CreateKeyManager(context.Background(), "acme", tc.def)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe keymanagers.FieldErrors
			if !errors.As(err, &fe) || fe[0].Field != tc.field {
				t.Fatalf("got %v, want a field error on %s", err, tc.field)
			}
			messages[tc.name] = fe[0].Message
			if tc.sameAs != "" && messages[tc.sameAs] != fe[0].Message {
				t.Fatalf("message %q differs from %q: it tells files apart", fe[0].Message, messages[tc.sameAs])
			}
		})
	}
}

var messages = map[string]string{}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	return []byte(fakeidp.SelfSignedPEM(t, fakeidp.PoolKey(t, "p256-corp-ca"), "corp ca", true))
}

// TestCatalog_TypedFailures proves each rule answers with its typed error
// (the admin glue maps them to 404, 409, 412, 400).
func TestCatalog_TypedFailures(t *testing.T) {
	ctx := context.Background()
	c := newTestCatalog(t, nil)
	if _, err := c.CreateKeyManager(ctx, "acme", kmDef("idp")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutApplication(ctx, "acme", keymanagers.Application{ID: "app", KeyManager: "idp", ClientID: "c1"}, "", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"create twice", second(c.CreateKeyManager(ctx, "acme", kmDef("idp"))), ErrConflict},
		{"replace a missing one", second(c.ReplaceKeyManager(ctx, "acme", kmDef("nope"), "")), ErrNotFound},
		{"delete one an application uses", c.DeleteKeyManager(ctx, "acme", "idp", ""), ErrConflict},
		{"delete with a stale ETag", c.DeleteKeyManager(ctx, "acme", "idp", `"0.x"`), ErrPrecondition},
		{"an application of a missing Key Manager", second(c.PutApplication(ctx, "acme", keymanagers.Application{ID: "b", KeyManager: "nope", ClientID: "c"}, "", true)), ErrConflict},
		{"an application of global", second(c.PutApplication(ctx, "global", keymanagers.Application{ID: "b", KeyManager: "idp", ClientID: "c"}, "", true)), ErrInvalid},
		{"a missing application", c.DeleteApplication(ctx, "acme", "nope", ""), ErrNotFound},
		{"revoke nothing", second(c.Revoke(ctx, RevokeRequest{})), ErrInvalid},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	noStore := newTestCatalog(t, func(cfg *Config) { cfg.Storage = nil })
	if _, err := noStore.CreateKeyManager(ctx, "acme", kmDef("idp")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("without storage: got %v, want ErrUnavailable", err)
	}
}

func second[T any](_ T, err error) error { return err }
