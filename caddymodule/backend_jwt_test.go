package caddymodule_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/kmgate/caddy-keymanager/caddymodule"
)

const (
	bjwtIssuer   = "https://gw.example.test"
	bjwtAudience = "orders-svc"
	bjwtJWKSURL  = gatewayBase + "/.well-known/backend-jwks.json"
)

// jwtUpstream verifies every request's X-JWT-Assertion with jwx against
// the gateway's JWKS, as a backend would. It refreshes the JWKS on a
// timer and never on an unknown kid, so a key the gateway signs with
// before publishing it fails verification.
type jwtUpstream struct {
	srv      *httptest.Server
	set      atomic.Pointer[jwk.Set]
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
	kids     map[string]int
	last     http.Header
	claims   map[string]any
}

func newJWTUpstream(t *testing.T) *jwtUpstream {
	u := &jwtUpstream{kids: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-JWT-Assertion")
		claims, kid, err := u.verify(tok)
		u.mu.Lock()
		defer u.mu.Unlock()
		u.last = r.Header.Clone()
		if err != nil {
			u.failures = append(u.failures, err.Error())
			http.Error(w, "bad backend JWT", http.StatusUnauthorized)
			return
		}
		u.ok.Add(1)
		u.kids[kid]++
		u.claims = claims
		_, _ = io.WriteString(w, kid)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *jwtUpstream) verify(tok string) (map[string]any, string, error) {
	set := u.set.Load()
	if set == nil {
		return nil, "", fmt.Errorf("no JWKS fetched yet")
	}
	parsed, err := jwt.ParseString(tok, jwt.WithKeySet(*set), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(caddymodule.BackendJWTNow)), jwt.WithIssuer(bjwtIssuer), jwt.WithAudience(bjwtAudience))
	if err != nil {
		return nil, "", fmt.Errorf("kid %s: %v", jwtHeader(tok)["kid"], err)
	}
	m, err := parsed.AsMap(context.Background())
	return m, jwtHeader(tok)["kid"], err
}

// refresh fetches the gateway's JWKS now.
func (u *jwtUpstream) refresh(t *testing.T) error {
	resp, err := http.Get(bjwtJWKSURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("JWKS: %d %s", resp.StatusCode, b)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return err
	}
	u.set.Store(&set)
	return nil
}

// refreshEvery refreshes the JWKS on a timer until the test ends.
func (u *jwtUpstream) refreshEvery(t *testing.T, d time.Duration) {
	if err := u.refresh(t); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tk := time.NewTicker(d)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				_ = u.refresh(t)
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
}

func (u *jwtUpstream) failed() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.failures...)
}

func jwtHeader(tok string) map[string]string {
	var h map[string]string
	b, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	_ = json.Unmarshal(b, &h)
	return h
}

type bjwtFixture struct {
	tester *caddytest.Tester
	idp    *testIdP
	up     *jwtUpstream
}

func startBackendJWTGateway(t *testing.T) *bjwtFixture {
	t.Helper()
	caddymodule.SetBackendJWTClockShift(0)
	t.Cleanup(func() { caddymodule.SetBackendJWTClockShift(0) })
	f := &bjwtFixture{idp: newTestIdP(t, jwa.RS256, "bjwt-1"), up: newJWTUpstream(t)}
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	storage file_system %[1]s
	keymanagers {
		sync_interval 1s
		backend_jwt {
			rotate_every 10m
		}
		tenant acme {
			key_manager acme-idp {
				issuer %[2]s
				jwks_url %[3]s/jwks
				audience https://api.example.test
			}
			application shop {
				key_manager acme-idp
				client_id shop-client
			}
		}
	}
}
http://localhost:9080 {
	handle /.well-known/backend-jwks.json {
		keymanager_backend_jwks
	}
	handle {
		keymanager {
			tenant acme
			forward_claim email X-Email
			backend_jwt {
				issuer %[5]s
				audience %[6]s
				ttl 1m
				algorithm ES256
				claims email groups
				claim_mapping groups http://wso2.org/claims/role
			}
		}
		reverse_proxy %[4]s
	}
}
`, t.TempDir(), f.idp.Issuer, f.idp.Srv.URL, f.up.srv.Listener.Addr(), bjwtIssuer, bjwtAudience)
	f.tester = caddytest.NewTester(t)
	f.tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return f
}

func (f *bjwtFixture) get(t *testing.T, token string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", gatewayBase+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *bjwtFixture) mint(sub string, extra map[string]any) string {
	c := map[string]any{"sub": sub, "aud": "https://api.example.test", "client_id": "shop-client", "scope": "orders:read",
		"jti": "client-token-jti-" + sub, "email": sub + "@acme.test", "groups": []string{"buyers"}, "secret_claim": "not-for-upstreams"}
	for k, v := range extra {
		c[k] = v
	}
	return f.idp.Mint(c)
}

// TestBackendJWTEndToEnd: the upstream verifies the gateway's JWT with
// the served JWKS (jwx); the JWT states the caller and nothing of the
// client's token; spoofed inbound headers are replaced; a cached principal
// gets its cached JWT.
func TestBackendJWTEndToEnd(t *testing.T) {
	f := startBackendJWTGateway(t)
	f.up.refreshEvery(t, time.Hour) // one fetch
	tok := f.mint("alice", nil)

	status, body := f.get(t, tok, map[string]string{"X-JWT-Assertion": "forged", "X-JWT_Assertion": "forged-alias"})
	if status != 200 {
		t.Fatalf("status %d %q; upstream failures %v", status, body, f.up.failed())
	}
	f.up.mu.Lock()
	claims, last := f.up.claims, f.up.last
	f.up.mu.Unlock()
	want := map[string]any{"iss": bjwtIssuer, "aud": []string{bjwtAudience}, "sub": "alice", "tenant": "acme", "key_manager": "acme-idp",
		"client_id": "shop-client", "application": "shop", "scope": "orders:read", "email": "alice@acme.test",
		"http://wso2.org/claims/role": []any{"buyers"}}
	for k, v := range want {
		if fmt.Sprint(claims[k]) != fmt.Sprint(v) {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	for k := range claims {
		if _, ok := want[k]; !ok && k != "iat" && k != "exp" && k != "jti" {
			t.Errorf("unexpected claim %s = %v", k, claims[k])
		}
	}
	if fmt.Sprint(claims["jti"]) == "client-token-jti-alice" {
		t.Error("the JWT carries the client token's jti")
	}
	assertion := last.Get("X-JWT-Assertion")
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(assertion, ".")[1])
	for _, leak := range []string{tok, sig, "not-for-upstreams", "client-token-jti"} {
		if strings.Contains(assertion, leak) || strings.Contains(string(payload), leak) {
			t.Errorf("the backend JWT carries %q of the client's token", leak)
		}
	}
	if len(last.Values("X-JWT-Assertion")) != 1 || last.Get("X-Jwt_assertion") != "" {
		t.Errorf("spoofed headers reached the upstream: %v", last)
	}
	for k := range last {
		if strings.EqualFold(k, "Authorization") {
			t.Error("the client's token reached the upstream")
		}
	}

	t.Run("a cached principal gets the cached JWT", func(t *testing.T) {
		f.get(t, tok, nil)
		f.up.mu.Lock()
		again := f.up.last.Get("X-JWT-Assertion")
		f.up.mu.Unlock()
		if again != assertion {
			t.Fatal("the second request with the same token was signed anew")
		}
		f.get(t, f.mint("bob", nil), nil)
		f.up.mu.Lock()
		bob := f.up.last.Get("X-JWT-Assertion")
		f.up.mu.Unlock()
		if bob == assertion {
			t.Fatal("another caller got alice's JWT")
		}
	})

	t.Run("the JWKS and the admin API list the key", func(t *testing.T) {
		resp, err := http.Get(bjwtJWKSURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/jwk-set+json" || cc != "public, max-age=37" {
			t.Errorf("JWKS Content-Type %q, Cache-Control %q", ct, cc)
		}
		if strings.Contains(string(b), `"d"`) {
			t.Fatal("the JWKS publishes a private key")
		}
		post, _ := http.Post(bjwtJWKSURL, "text/plain", nil)
		post.Body.Close()
		if post.StatusCode != 405 {
			t.Errorf("POST to the JWKS: %d", post.StatusCode)
		}
		adm, err := http.Get("http://localhost:2999/keymanagers/backend-jwks")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			RotateEvery string `json:"rotate_every"`
			Keys        []struct {
				KID, Alg, Status string
			} `json:"keys"`
			CachedJWTs int `json:"cached_jwts"`
		}
		_ = json.NewDecoder(adm.Body).Decode(&st)
		adm.Body.Close()
		kid := jwtHeader(assertion)["kid"]
		if st.RotateEvery != "10m0s" || len(st.Keys) != 1 || st.Keys[0].KID != kid || st.Keys[0].Alg != "ES256" || st.Keys[0].Status != "current" || st.CachedJWTs < 2 {
			t.Errorf("admin status %+v, want the current ES256 key %s and the cached JWTs", st, kid)
		}
	})
}

// TestBackendJWTRotationUnderLoad: concurrent clients while the keys
// rotate three times; the upstream refreshes the JWKS on a timer and
// verifies every JWT with jwx; not one verification may fail. Time is
// moved (a 10m rotation) while no request is in flight.
func TestBackendJWTRotationUnderLoad(t *testing.T) {
	f := startBackendJWTGateway(t)
	f.up.refreshEvery(t, 50*time.Millisecond)
	var tokens []string
	for i := 0; i < 8; i++ {
		tokens = append(tokens, f.mint(fmt.Sprintf("user-%d", i), nil))
	}
	var (
		pause    sync.RWMutex // held to move the clock between requests
		stop     = make(chan struct{})
		stopOnce sync.Once
		wg       sync.WaitGroup
		requests atomic.Int64
		errs     atomic.Int64
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pause.RLock()
				req, _ := http.NewRequest("GET", gatewayBase+"/orders", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				resp, err := f.tester.Client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs.Add(1)
					}
				} else {
					errs.Add(1)
				}
				requests.Add(1)
				pause.RUnlock()
			}
		}(w)
	}
	stopLoad := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad()
	moveTo := func(target time.Time) {
		pause.Lock()
		caddymodule.SetBackendJWTClockShift(time.Until(target))
		pause.Unlock()
	}
	nextKey := func() (kid string, activates time.Time) {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, k := range adminKeys(t) {
				if k.Status == "next" {
					return k.KID, k.Activates
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no next key was published")
		return "", time.Time{}
	}
	var cur []adminKey
	for deadline := time.Now().Add(10 * time.Second); len(cur) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		cur = adminKeys(t)
	}
	for round := 1; round <= 3; round++ {
		// Into the publication window of the next key: it is created on
		// the next sync (1s) and served before it signs.
		cur = adminKeys(t)
		if len(cur) == 0 {
			t.Fatal("no backend JWT key")
		}
		act := cur[len(cur)-1].Activates
		moveTo(act.Add(10*time.Minute - 2*time.Minute))
		kid, activates := nextKey()
		time.Sleep(300 * time.Millisecond) // load on the old key, new one published
		// Just before and after the handover: cached JWTs of the old key
		// are still sent after it.
		moveTo(activates.Add(-time.Second))
		time.Sleep(300 * time.Millisecond)
		moveTo(activates.Add(time.Second))
		time.Sleep(300 * time.Millisecond)
		// The cached JWTs of the old key are past reuse: signed anew.
		moveTo(activates.Add(50 * time.Second))
		time.Sleep(300 * time.Millisecond)
		f.up.mu.Lock()
		signed := f.up.kids[kid]
		f.up.mu.Unlock()
		if signed == 0 {
			t.Fatalf("round %d: the new key %s signed nothing after it activated", round, kid)
		}
	}
	stopLoad()
	if fails := f.up.failed(); len(fails) > 0 || errs.Load() > 0 {
		t.Fatalf("%d of %d requests failed; upstream verification failures (%d): %.5q", errs.Load(), requests.Load(), len(fails), fails)
	}
	f.up.mu.Lock()
	kids := len(f.up.kids)
	f.up.mu.Unlock()
	if kids != 4 || f.up.ok.Load() < 100 {
		t.Fatalf("%d JWTs verified, signed by %d keys; want 4 keys and a real load", f.up.ok.Load(), kids)
	}
	t.Logf("%d requests, every JWT verified, signed by %d keys over three rotations", requests.Load(), kids)
}

type adminKey struct {
	KID       string    `json:"kid"`
	Status    string    `json:"status"`
	Activates time.Time `json:"activates"`
}

func adminKeys(t *testing.T) []adminKey {
	t.Helper()
	resp, err := http.Get("http://localhost:2999/keymanagers/backend-jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Keys []adminKey `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Keys
}
