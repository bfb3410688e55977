//go:build unix

// Package testidp starts real OAuth2/OIDC identity providers on loopback
// for integration tests: Ory Hydra v2.3.0 and panva/oidc-provider 9.13.3.
//
// Both are started as child processes in their own process group, bound to
// 127.0.0.1 on free ports, and killed (by process group) in t.Cleanup.
//
// Preparation (once per checkout / CI cache):
//
//	tools/hydra/build.sh          # builds tools/hydra/hydra (~3 min cold)
//	npm ci --prefix tools/oidc    # installs oidc-provider into tools/oidc/node_modules
//
// A missing prerequisite fails the test (t.Fatalf); it never skips, so CI
// cannot silently pass without the real IdPs.
//
// Token shapes differ between the two on purpose (see
// /work/shared/idp-recipes.md): Hydra issues typ "JWT" tokens with an "scp"
// array, an "aud" array and an issuer with a trailing slash; oidc-provider
// issues typ "at+jwt" tokens with a "scope" string, an "aud" string and an
// issuer without trailing slash.
package testidp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ModulePath is the module whose root ModuleRoot looks for.
const ModulePath = "github.com/kmgate/caddy-keymanager"

// Clients, secrets and resources configured in tools/oidc/idp.mjs.
const (
	// OIDCClientID / OIDCClientSecret: client_credentials client, scope "read write".
	OIDCClientID     = "cc-client"
	OIDCClientSecret = "cc-secret"
	// OIDCIntrospectClientID / OIDCIntrospectSecret: no grants; may
	// introspect and revoke any token (HTTP Basic at IntrospectionURL).
	OIDCIntrospectClientID = "gateway"
	OIDCIntrospectSecret   = "gateway-secret"
	// OIDCRegistrationIAT is the initial access token of the RFC 7591
	// registration endpoint (<issuer>/reg, in discovery); RFC 7592
	// deletion is enabled.
	OIDCRegistrationIAT = "dev-initial-access-token"
	// HydraDCREnv enables Hydra's dynamic client registration (open, no
	// initial access token) at <public>/oauth2/register with RFC 7592
	// management (pass it to StartHydraWith). Hydra's discovery document
	// does not name the endpoint: configure registration_endpoint.
	HydraDCREnv = "OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED"

	// OIDCResourceJWT issues ES256 at+jwt access tokens (aud = this value).
	// It is also the default resource when none is requested.
	OIDCResourceJWT = "https://api.example.test"
	// OIDCResourceRS256 issues RS256 at+jwt access tokens.
	OIDCResourceRS256 = "https://rs256.example.test"
	// OIDCResourceOpaque issues opaque (introspectable) access tokens.
	OIDCResourceOpaque = "urn:example:opaque"
)

// HydraSystemSecret is the SECRETS_SYSTEM value Hydra is started with.
const HydraSystemSecret = "kmgate-testidp-system-secret-0123456789"

const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	startRetries = 3 // on "address already in use" (free-port race)
)

var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Second},
}

// ModuleRoot walks up from the working directory to the directory whose
// go.mod declares module github.com/kmgate/caddy-keymanager (nested modules
// such as tools/hydra are passed over).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := findModuleRoot()
	if err != nil {
		t.Fatalf("testidp: %v", err)
	}
	return root
}

func findModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getwd: %w", err)
	}
	for dir := wd; ; {
		if modulePathOf(filepath.Join(dir, "go.mod")) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod with %q found above %s", "module "+ModulePath, wd)
		}
		dir = parent
	}
}

// modulePathOf returns the module path declared in a go.mod file, or "".
func modulePathOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "module")
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		if i := strings.Index(rest, "//"); i >= 0 {
			rest = rest[:i]
		}
		rest = strings.TrimSpace(rest)
		if s, err := strconv.Unquote(rest); err == nil {
			rest = s
		}
		return rest
	}
	return ""
}

// freePorts reserves n distinct free loopback ports (listen on 127.0.0.1:0,
// then close). There is a small race until the child binds them; start
// retries when the child reports "address already in use".
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ---------------------------------------------------------------------------
// process handling

type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
	started time.Time
}

// startProc starts bin with args in its own process group, with stdout and
// stderr going to logPath.
func startProc(name, bin string, args []string, dir string, env []string, logPath string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: lf, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to stopTimeout, then
// SIGKILLs the group. Anything left in the group is SIGKILLed as well.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid // Setpgid: pgid == pid
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers; ESRCH when the group is gone
	<-p.done
	p.logFile.Close()
}

// logTail returns the last part of the process log.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	const max = 4000
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return fmt.Sprintf("--- %s log (%s) ---\n%s\n--- end of log ---", p.name, p.logPath, bytes.TrimSpace(b))
}

// waitReady polls url until it answers 200, the process exits, or
// startTimeout passes.
func (p *proc) waitReady(urls ...string) error {
	deadline := time.Now().Add(startTimeout)
	for _, u := range urls {
		for {
			resp, err := httpClient.Get(u)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %s: GET %s: %v", p.name, startTimeout, u, err)
			}
			select {
			case <-p.done:
				return fmt.Errorf("%s exited before it was ready (%v)", p.name, p.waitErr)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// runUntilReady starts a process (via launch, with fresh ports each attempt)
// and waits until it is ready; it retries when a port was taken in between.
// The process is stopped in t.Cleanup.
func runUntilReady(t testing.TB, name string, nPorts int, launch func(ports []int, attempt int) (*proc, []string, error)) (*proc, []int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(nPorts)
		if err != nil {
			t.Fatalf("testidp: %s: %v", name, err)
		}
		p, readyURLs, err := launch(ports, attempt)
		if err != nil {
			t.Fatalf("testidp: %s: %v", name, err)
		}
		err = p.waitReady(readyURLs...)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("testidp: %s", p.logTail())
				}
			})
			t.Logf("testidp: %s ready in %s (ports %v)", name, time.Since(p.started).Round(time.Millisecond), ports)
			return p, ports
		}
		p.stop()
		tail := p.logTail()
		if attempt < startRetries && strings.Contains(tail, "address already in use") {
			t.Logf("testidp: %s: port race (%v), retrying", name, err)
			continue
		}
		t.Fatalf("testidp: %s: %v\n%s", name, err, tail)
	}
}

func mergeEnv(base []string, kv map[string]string) []string {
	env := append([]string(nil), base...)
	for k, v := range kv {
		env = append(env, k+"="+v) // later duplicates win in os/exec
	}
	return env
}

// ---------------------------------------------------------------------------
// HTTP helpers

// basicAuth sets RFC 6749 §2.3.1 client authentication: the id and secret
// are form-urlencoded before being joined, so both IdPs decode them.
func basicAuth(req *http.Request, id, secret string) {
	enc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	req.SetBasicAuth(enc(id), enc(secret))
}

func do(t testing.TB, method, u, contentType string, body io.Reader, id, secret string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("testidp: %s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if id != "" {
		basicAuth(req, id, secret)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("testidp: %s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testidp: %s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

func postForm(t testing.TB, u string, form url.Values, id, secret string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodPost, u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), id, secret)
}

func postJSON(t testing.TB, u string, v any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("testidp: marshal: %v", err)
	}
	return do(t, http.MethodPost, u, "application/json", bytes.NewReader(b), "", "")
}

func accessToken(t testing.TB, u string, status int, body []byte) string {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("testidp: token request to %s: HTTP %d: %s", u, status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("testidp: token response from %s without access_token (%v): %s", u, err, body)
	}
	return tr.AccessToken
}

func decodeObject(t testing.TB, what string, status int, body []byte) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("testidp: %s: HTTP %d: %s", what, status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("testidp: %s: decode %s: %v", what, body, err)
	}
	return m
}

// ---------------------------------------------------------------------------
// Ory Hydra

// Hydra is a running Ory Hydra v2 (DSN=memory) on loopback.
type Hydra struct {
	publicURL string
	adminURL  string
	issuer    string
	logPath   string
}

// ClientSpec describes a client_credentials OAuth2 client created in Hydra.
type ClientSpec struct {
	ID        string
	Secret    string   // Hydra requires at least 6 characters
	Scopes    []string // allowed scopes
	Audiences []string // allowed audiences
	Strategy  string   // access token strategy: "jwt", "opaque", or "" for the server default (jwt)
}

// hydraManagedEnv may not be overridden through StartHydraWith.
var hydraManagedEnv = []string{"SERVE_PUBLIC_HOST", "SERVE_PUBLIC_PORT", "SERVE_ADMIN_HOST", "SERVE_ADMIN_PORT"}

// StartHydra starts <root>/tools/hydra/hydra ("serve all --dev") with an
// in-memory database, JWT access tokens by default, and the issuer
// http://127.0.0.1:<public port>/ (trailing slash). It is stopped in
// t.Cleanup. A missing binary fails the test: run tools/hydra/build.sh.
func StartHydra(t testing.TB) *Hydra {
	t.Helper()
	return StartHydraWith(t, nil)
}

// StartHydraWith is StartHydra with extra environment variables, applied last
// so they override the defaults, e.g. TTL_ACCESS_TOKEN=5s,
// STRATEGIES_JWT_SCOPE_CLAIM=both, STRATEGIES_ACCESS_TOKEN=opaque or
// URLS_SELF_ISSUER (Issuer then returns that value). The listen hosts and
// ports (SERVE_PUBLIC_*/SERVE_ADMIN_*) are managed and cannot be set.
func StartHydraWith(t testing.TB, extraEnv map[string]string) *Hydra {
	t.Helper()
	root := ModuleRoot(t)
	bin := filepath.Join(root, "tools", "hydra", "hydra")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("testidp: Hydra binary %s is missing or not executable (%v); build it with tools/hydra/build.sh (from %s; ~3 min cold)", bin, err, root)
	}
	for _, k := range hydraManagedEnv {
		if _, ok := extraEnv[k]; ok {
			t.Fatalf("testidp: StartHydraWith: %s is managed by testidp and cannot be overridden", k)
		}
	}
	dir := t.TempDir()
	h := &Hydra{}
	runUntilReady(t, "hydra", 2, func(ports []int, attempt int) (*proc, []string, error) {
		pub, adm := ports[0], ports[1]
		env := map[string]string{
			"DSN":                     "memory",
			"SQA_OPT_OUT":             "true",
			"LOG_LEVEL":               "warn",
			"SERVE_PUBLIC_HOST":       "127.0.0.1",
			"SERVE_PUBLIC_PORT":       strconv.Itoa(pub),
			"SERVE_ADMIN_HOST":        "127.0.0.1",
			"SERVE_ADMIN_PORT":        strconv.Itoa(adm),
			"URLS_SELF_ISSUER":        fmt.Sprintf("http://127.0.0.1:%d/", pub),
			"SECRETS_SYSTEM":          HydraSystemSecret,
			"STRATEGIES_ACCESS_TOKEN": "jwt",
		}
		for k, v := range extraEnv {
			env[k] = v
		}
		h.publicURL = fmt.Sprintf("http://127.0.0.1:%d", pub)
		h.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adm)
		h.issuer = env["URLS_SELF_ISSUER"]
		h.logPath = filepath.Join(dir, fmt.Sprintf("hydra-%d.log", attempt))
		p, err := startProc("hydra", bin, []string{"serve", "all", "--dev", "--sqa-opt-out"}, dir, mergeEnv(os.Environ(), env), h.logPath)
		return p, []string{h.publicURL + "/health/ready", h.adminURL + "/health/ready"}, err
	})
	return h
}

// StartHydraDCR is StartHydra with dynamic client registration enabled
// (HydraDCREnv) and ES256 keys made up front for access and ID tokens:
// Hydra otherwise generates RSA-4096 keys on the first discovery or token
// request, which takes seconds on a busy machine and can race.
func StartHydraDCR(t testing.TB) *Hydra {
	t.Helper()
	h := StartHydraWith(t, map[string]string{HydraDCREnv: "true"})
	h.CreateJWK(t, "hydra.jwt.access-token", "es-1", "ES256")
	h.CreateJWK(t, "hydra.openid.id-token", "id-es-1", "ES256")
	return h
}

// PublicURL is the public endpoint base, e.g. http://127.0.0.1:4444 (no trailing slash).
func (h *Hydra) PublicURL() string { return h.publicURL }

// AdminURL is the admin endpoint base, e.g. http://127.0.0.1:4445 (no trailing slash).
func (h *Hydra) AdminURL() string { return h.adminURL }

// Issuer is the "iss" of Hydra's tokens, with a trailing slash.
func (h *Hydra) Issuer() string { return h.issuer }

// JWKSURL is the public /.well-known/jwks.json.
func (h *Hydra) JWKSURL() string { return h.publicURL + "/.well-known/jwks.json" }

// WellKnownURL is the OpenID discovery document (it has no introspection_endpoint).
func (h *Hydra) WellKnownURL() string { return h.publicURL + "/.well-known/openid-configuration" }

// RegistrationURL is the RFC 7591 registration endpoint on the public
// port (enabled with HydraDCREnv=true).
func (h *Hydra) RegistrationURL() string { return h.publicURL + "/oauth2/register" }

// TokenURL is the public token endpoint.
func (h *Hydra) TokenURL() string { return h.publicURL + "/oauth2/token" }

// IntrospectionURL is the admin /admin/oauth2/introspect endpoint (form
// encoded; caller authentication is not checked by Hydra).
func (h *Hydra) IntrospectionURL() string { return h.adminURL + "/admin/oauth2/introspect" }

// LogPath is the file Hydra's stdout and stderr go to.
func (h *Hydra) LogPath() string { return h.logPath }

// CreateClient registers a client_credentials client (client_secret_basic)
// through POST /admin/clients.
func (h *Hydra) CreateClient(t testing.TB, spec ClientSpec) {
	t.Helper()
	switch spec.Strategy {
	case "", "jwt", "opaque":
	default:
		t.Fatalf("testidp: CreateClient: Strategy must be \"jwt\", \"opaque\" or empty, got %q", spec.Strategy)
	}
	body := map[string]any{
		"client_id":                  spec.ID,
		"client_secret":              spec.Secret,
		"grant_types":                []string{"client_credentials"},
		"scope":                      strings.Join(spec.Scopes, " "),
		"audience":                   append([]string{}, spec.Audiences...),
		"token_endpoint_auth_method": "client_secret_basic",
	}
	if spec.Strategy != "" {
		body["access_token_strategy"] = spec.Strategy
	}
	status, resp := postJSON(t, h.adminURL+"/admin/clients", body)
	if status != http.StatusCreated {
		t.Fatalf("testidp: hydra create client %q: HTTP %d: %s", spec.ID, status, resp)
	}
}

// Token gets an access token with the client_credentials grant (HTTP Basic).
// Empty scope or audience are not sent. Several audiences go in one
// space-separated value. A non-200 answer fails the test.
func (h *Hydra) Token(t testing.TB, clientID, secret, scope, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if audience != "" {
		form.Set("audience", audience)
	}
	status, body := postForm(t, h.TokenURL(), form, clientID, secret)
	return accessToken(t, h.TokenURL(), status, body)
}

// CreateJWK generates a signing key in the key set (e.g.
// "hydra.jwt.access-token") through POST /admin/keys/{set}. New JWT access
// tokens are signed with the newest key of that set.
func (h *Hydra) CreateJWK(t testing.TB, set, kid, alg string) {
	t.Helper()
	u := h.adminURL + "/admin/keys/" + url.PathEscape(set)
	status, resp := postJSON(t, u, map[string]string{"alg": alg, "kid": kid, "use": "sig"})
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("testidp: hydra create jwk %s/%s (%s): HTTP %d: %s", set, kid, alg, status, resp)
	}
}

// RevokeToken revokes a token at the public /oauth2/revoke (HTTP Basic).
func (h *Hydra) RevokeToken(t testing.TB, clientID, secret, token string) {
	t.Helper()
	u := h.publicURL + "/oauth2/revoke"
	status, body := postForm(t, u, url.Values{"token": {token}}, clientID, secret)
	if status != http.StatusOK {
		t.Fatalf("testidp: hydra revoke: HTTP %d: %s", status, body)
	}
}

// Introspect posts the token to IntrospectionURL and returns the decoded
// response (e.g. {"active":false} for unknown or revoked tokens).
func (h *Hydra) Introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	status, body := postForm(t, h.IntrospectionURL(), url.Values{"token": {token}}, "", "")
	return decodeObject(t, "hydra introspect", status, body)
}

// ---------------------------------------------------------------------------
// oidc-provider

// OIDC is a running panva/oidc-provider (tools/oidc/idp.mjs) on loopback.
type OIDC struct {
	issuer           string
	tokenURL         string
	introspectionURL string
	revocationURL    string
	logPath          string
}

// StartOIDCProvider starts tools/oidc/idp.mjs with node on a free loopback
// port and stops it in t.Cleanup. Missing node or node_modules fail the test:
// run npm ci --prefix tools/oidc.
func StartOIDCProvider(t testing.TB) *OIDC {
	t.Helper()
	return StartOIDCProviderWith(t, nil)
}

// StartOIDCProviderWith is StartOIDCProvider with extra environment
// variables, e.g. ACCESS_TOKEN_TTL (seconds, default 300). PORT is managed.
func StartOIDCProviderWith(t testing.TB, env map[string]string) *OIDC {
	t.Helper()
	root := ModuleRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("testidp: node is not on PATH (%v); install Node.js >= 20 and run npm ci --prefix tools/oidc (from %s)", err, root)
	}
	oidcDir := filepath.Join(root, "tools", "oidc")
	if _, err := os.Stat(filepath.Join(oidcDir, "node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("testidp: oidc-provider is not installed (%v); run npm ci --prefix tools/oidc (from %s)", err, root)
	}
	if _, ok := env["PORT"]; ok {
		t.Fatalf("testidp: StartOIDCProviderWith: PORT is managed by testidp and cannot be overridden")
	}
	dir := t.TempDir()
	o := &OIDC{}
	runUntilReady(t, "oidc-provider", 1, func(ports []int, attempt int) (*proc, []string, error) {
		kv := map[string]string{"PORT": strconv.Itoa(ports[0])}
		for k, v := range env {
			kv[k] = v
		}
		o.issuer = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		o.logPath = filepath.Join(dir, fmt.Sprintf("oidc-provider-%d.log", attempt))
		p, err := startProc("oidc-provider", node, []string{filepath.Join(oidcDir, "idp.mjs")}, oidcDir, mergeEnv(os.Environ(), kv), o.logPath)
		return p, []string{o.issuer + "/jwks"}, err
	})

	// Endpoints from the discovery document, with the known defaults as fallback.
	o.tokenURL, o.introspectionURL, o.revocationURL = o.issuer+"/token", o.issuer+"/token/introspection", o.issuer+"/token/revocation"
	status, body := do(t, http.MethodGet, o.WellKnownURL(), "", nil, "", "")
	doc := decodeObject(t, "oidc-provider discovery", status, body)
	if s, _ := doc["token_endpoint"].(string); s != "" {
		o.tokenURL = s
	}
	if s, _ := doc["introspection_endpoint"].(string); s != "" {
		o.introspectionURL = s
	}
	if s, _ := doc["revocation_endpoint"].(string); s != "" {
		o.revocationURL = s
	}
	if iss, _ := doc["issuer"].(string); iss != o.issuer {
		t.Fatalf("testidp: oidc-provider discovery issuer %q, want %q", iss, o.issuer)
	}
	return o
}

// Issuer is http://127.0.0.1:<port> (no trailing slash), the "iss" of its tokens.
func (o *OIDC) Issuer() string { return o.issuer }

// JWKSURL is <issuer>/jwks.
func (o *OIDC) JWKSURL() string { return o.issuer + "/jwks" }

// WellKnownURL is <issuer>/.well-known/openid-configuration.
func (o *OIDC) WellKnownURL() string { return o.issuer + "/.well-known/openid-configuration" }

// RegistrationURL is the RFC 7591 registration endpoint (<issuer>/reg).
func (o *OIDC) RegistrationURL() string { return o.issuer + "/reg" }

// TokenURL is the token endpoint (from discovery).
func (o *OIDC) TokenURL() string { return o.tokenURL }

// IntrospectionURL is the introspection endpoint from discovery
// (<issuer>/token/introspection). It requires client authentication (e.g.
// OIDCIntrospectClientID/OIDCIntrospectSecret) and only accepts opaque
// tokens: JWT access tokens get 400 unsupported_token_type.
func (o *OIDC) IntrospectionURL() string { return o.introspectionURL }

// RevocationURL is the revocation endpoint from discovery.
func (o *OIDC) RevocationURL() string { return o.revocationURL }

// LogPath is the file the provider's stdout and stderr go to.
func (o *OIDC) LogPath() string { return o.logPath }

// Token gets an access token for OIDCClientID with the client_credentials
// grant. resource selects the token format (OIDCResourceJWT: ES256 JWT,
// OIDCResourceRS256: RS256 JWT, OIDCResourceOpaque: opaque); empty scope or
// resource are not sent (no resource means OIDCResourceJWT). Unknown scopes
// are silently dropped by oidc-provider. A non-200 answer fails the test.
func (o *OIDC) Token(t testing.TB, scope, resource string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	status, body := postForm(t, o.tokenURL, form, OIDCClientID, OIDCClientSecret)
	return accessToken(t, o.tokenURL, status, body)
}

// Introspect introspects a (opaque) token as OIDCIntrospectClientID and
// returns the decoded response.
func (o *OIDC) Introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	status, body := postForm(t, o.introspectionURL, url.Values{"token": {token}}, OIDCIntrospectClientID, OIDCIntrospectSecret)
	return decodeObject(t, "oidc-provider introspect", status, body)
}

// RevokeToken revokes a token as OIDCClientID, the client it was issued to.
func (o *OIDC) RevokeToken(t testing.TB, token string) {
	t.Helper()
	status, body := postForm(t, o.revocationURL, url.Values{"token": {token}}, OIDCClientID, OIDCClientSecret)
	if status != http.StatusOK {
		t.Fatalf("testidp: oidc-provider revoke: HTTP %d: %s", status, body)
	}
}
