// Package integration holds process-level tests: every gateway under test
// is a real, separate Caddy process (this test binary re-executed as
// `caddy run`), so restarts, clusters on one storage and config reloads
// are exercised exactly as operators run them.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/kmgate/caddy-keymanager"
)

const (
	envChild  = "KMGATE_CADDY_CHILD"
	envConfig = "KMGATE_CADDY_CONFIG"
)

// TestMain makes the test binary double as Caddy: started with
// KMGATE_CADDY_CHILD=1 it runs `caddy run` on KMGATE_CADDY_CONFIG.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Args = []string{"caddy", "run", "--config", os.Getenv(envConfig), "--adapter", "caddyfile"}
		caddycmd.Main()
		return
	}
	os.Exit(m.Run())
}

// ports are the loopback ports of one gateway process.
type ports struct {
	admin, http, https, site int
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newPorts(t *testing.T) ports {
	t.Helper()
	seen := map[int]bool{}
	pick := func() int {
		for {
			p := freePort(t)
			if !seen[p] {
				seen[p] = true
				return p
			}
		}
	}
	return ports{admin: pick(), http: pick(), https: pick(), site: pick()}
}

// gatewayConfig renders the Caddyfile every test uses: one config tenant
// (acme) with one config Key Manager, a /version route whose text changes
// between reloads, and a catch-all route guarded by keymanager with the
// tenant taken from X-Tenant (so API-made tenants work).
type gatewayConfig struct {
	ports   ports
	storage string
	cfgIdP  *idp // the config Key Manager "from-config" of tenant acme
	version string
}

func (c gatewayConfig) caddyfile() string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	http_port %[2]d
	https_port %[3]d
	skip_install_trust
	grace_period 1s
	persist_config off
	storage file_system %[5]s
	keymanagers {
		sync_interval 1s
		tenant acme {
			key_manager from-config {
				issuer %[6]s
				jwks_url %[7]s
			}
		}
	}
}

http://127.0.0.1:%[4]d {
	bind 127.0.0.1
	route /version {
		respond "version %[8]s"
	}
	route {
		keymanager {
			tenant {http.request.header.X-Tenant}
		}
		respond "ok {keymanager.key_manager}"
	}
}
`, c.ports.admin, c.ports.http, c.ports.https, c.ports.site, c.storage, c.cfgIdP.issuer, c.cfgIdP.jwksURL(), c.version)
}

// proc is one running Caddy process.
type proc struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	logPath  string
	adminURL string // http://127.0.0.1:PORT
	siteURL  string // http://127.0.0.1:PORT
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

var (
	adminRE = regexp.MustCompile(`(?m)^\s*admin\s+(127\.0\.0\.1:\d+)\s*$`)
	siteRE  = regexp.MustCompile(`(?m)^(http://127\.0\.0\.1:\d+)\s*\{`)
)

// startCaddy runs the Caddyfile in a new process and waits until its
// admin endpoint serves the loaded config. The process is stopped when
// the test ends; its log tail is printed if the test failed.
func startCaddy(t *testing.T, caddyfile string) *proc {
	t.Helper()
	am, sm := adminRE.FindStringSubmatch(caddyfile), siteRE.FindStringSubmatch(caddyfile)
	if am == nil || sm == nil {
		t.Fatalf("the Caddyfile needs `admin 127.0.0.1:PORT` and an http://127.0.0.1:PORT site:\n%s", caddyfile)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "data"), filepath.Join(home, "config"), filepath.Join(home, "cache")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envChild+"=1",
		envConfig+"="+cfgPath,
		"HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"),
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group (stopped as a group), and killed with this
	// process should the test binary die without running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: am[1], cmd: cmd, logPath: logPath, adminURL: "http://" + am[1], siteURL: sm[1], exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("KMGATE_SHOW_LOGS") == "1" {
			t.Logf("--- log tail of caddy %s (pid %d, exit: %v) ---\n%s", p.name, cmd.Process.Pid, p.waitErr, p.logTail(60))
		}
	})

	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("caddy %s exited during startup (%v); log:\n%s", p.name, p.waitErr, p.logTail(60))
		default:
		}
		if status, body, err := p.adminRaw("GET", "/config/", "", nil); err == nil && status == 200 && len(bytes.TrimSpace(body)) > 0 && string(bytes.TrimSpace(body)) != "null" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy %s did not serve its admin endpoint within 20s; log:\n%s", p.name, p.logTail(60))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("caddy %s (pid %d) ready in %v", p.name, cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	return p
}

// stop ends the process: SIGTERM, then SIGKILL of its process group after
// 5 s. A data race reported by the child fails the test.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.t.Errorf("caddy %s (pid %d) did not exit within 5s of SIGTERM; killing its process group", p.name, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.exited
		}
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			p.t.Errorf("reading the log of caddy %s: %v", p.name, err)
			return
		}
		if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			p.t.Errorf("caddy %s reported a data race; log:\n%s", p.name, raceReport(b))
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			for _, msg := range productErrors {
				if bytes.Contains(line, []byte(msg)) {
					p.t.Errorf("caddy %s logged %q: %s", p.name, msg, line)
				}
			}
		}
	})
}

// productErrors are log messages of the plugin that no test here should
// cause: each means state was lost or a background loop broke.
var productErrors = []string{
	"ignoring a stored key manager",
	"key managers from storage conflict with the configuration",
	"reading API-made key managers from storage",
	"panicked",
}

func raceReport(b []byte) string {
	i := bytes.Index(b, []byte("WARNING: DATA RACE"))
	end := min(len(b), i+6000)
	return string(b[i:end])
}

func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// adminClient talks to admin endpoints without keep-alives: Caddy replaces
// its admin server on every config load.
var adminClient = &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// gwClient is the gateway client: keep-alives on, as real clients do.
var gwClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxIdleConns: 64}}

func (p *proc) adminRaw(method, path, contentType string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, p.adminURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// admin calls the admin API with a JSON body (nil for none) and fails the
// test on a transport error.
func (p *proc) admin(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	ct := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		ct = "application/json"
	}
	status, resp, err := p.adminRaw(method, path, ct, b)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, p.adminURL, path, err)
	}
	return status, resp
}

// mustAdmin is admin that also requires a status.
func (p *proc) mustAdmin(t *testing.T, want int, method, path string, body any) []byte {
	t.Helper()
	status, b := p.admin(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s on %s: status %d, want %d: %s", method, path, p.name, status, want, b)
	}
	return b
}

// load POSTs a Caddyfile to /load.
func (p *proc) load(caddyfile string) error {
	status, b, err := p.adminRaw("POST", "/load", "text/caddyfile", []byte(caddyfile))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("POST /load: status %d: %s", status, b)
	}
	return nil
}

// get sends one gateway request; token and tenant may be empty.
func (p *proc) get(path, token, tenant string) (int, string, error) {
	req, err := http.NewRequest("GET", p.siteURL+path, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if tenant != "" {
		req.Header.Set("X-Tenant", tenant)
	}
	resp, err := gwClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect requires one gateway answer (body checked when want is set).
func (p *proc) expect(t *testing.T, token, tenant string, status int, body string) {
	t.Helper()
	got, b, err := p.get("/api/x", token, tenant)
	if err != nil {
		t.Fatalf("gateway %s: %v", p.name, err)
	}
	if got != status || (body != "" && b != body) {
		t.Fatalf("gateway %s, tenant %s: %d %q, want %d %q", p.name, tenant, got, b, status, body)
	}
}

// waitStatus polls the gateway until it answers status for the token, and
// returns how long that took; it fails the test after within.
func (p *proc) waitStatus(t *testing.T, token, tenant string, status int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for {
		got, b, err := p.get("/api/x", token, tenant)
		if err == nil && got == status {
			return time.Since(start)
		}
		last = fmt.Sprintf("%d %q %v", got, b, err)
		if time.Since(start) > within {
			t.Fatalf("gateway %s, tenant %s: no %d within %v (last answer: %s)", p.name, tenant, status, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cacheCounters reads caddy_keymanagers_cache_requests_total{result=hit}
// and {result=miss} from the admin endpoint's /metrics.
func (p *proc) cacheCounters(t *testing.T) (hits, misses float64) {
	t.Helper()
	body := p.mustAdmin(t, 200, "GET", "/metrics", nil)
	found := 0
	for _, line := range strings.Split(string(body), "\n") {
		for result, dst := range map[string]*float64{"hit": &hits, "miss": &misses} {
			prefix := `caddy_keymanagers_cache_requests_total{result="` + result + `"} `
			if v, ok := strings.CutPrefix(line, prefix); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				*dst = f
				found++
			}
		}
	}
	if found == 0 {
		t.Fatalf("no caddy_keymanagers_cache_requests_total in /metrics of %s", p.name)
	}
	return hits, misses
}

// kmView is the part of an admin API listing entry the tests read.
type kmView struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Source string `json:"source"`
	ETag   string `json:"etag"`
}

func parseList(t *testing.T, b []byte) []kmView {
	t.Helper()
	var l []kmView
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("listing is not JSON: %v: %s", err, b)
	}
	return l
}

// kmDef is an API Key Manager definition for an IdP.
func kmDef(name string, i *idp, audiences ...string) map[string]any {
	d := map[string]any{"name": name, "issuer": i.issuer, "jwks_url": i.jwksURL()}
	if len(audiences) > 0 {
		d["audiences"] = audiences
	}
	return d
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
