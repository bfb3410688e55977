package keymanagers

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// maxDocumentSize bounds discovery and JWKS documents.
const maxDocumentSize = 1 << 20

// KeyManager is the runtime of one Key Manager definition: its HTTP client,
// discovered metadata and current key set. It is safe for concurrent use;
// the request path reads it without locks.
type KeyManager struct {
	tenant      string
	def         Definition // normalized, secrets expanded
	fingerprint string
	fpHash      uint64
	client      *http.Client
	postClient  *http.Client
	logger      *zap.Logger
	now         func() time.Time

	staticIssuer  bool
	issuer        atomic.Pointer[string]
	jwksURL       atomic.Pointer[string]
	introspectURL atomic.Pointer[string]
	tokenURL      atomic.Pointer[string]
	intro         *introspector
	connector     Connector
	discovered    atomic.Bool

	keys        atomic.Pointer[keySet]
	hmacSecret  []byte
	allowedAlgs map[string]bool
	audiences   map[string]struct{}

	// lastTokenRefresh is the unix-nano time of the last JWKS fetch that a
	// token triggered (unknown kid, no keys yet): such fetches happen at most
	// once per jwks_min_refresh_interval. Background refreshes do not count.
	lastTokenRefresh  atomic.Int64
	lastDiscoveryFail atomic.Int64
	lastFetchFail     atomic.Int64
	lastError         atomic.Pointer[statusError]
	fetches           atomic.Uint64
	fetchFailures     atomic.Uint64
	sf                singleflight.Group

	startOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
}

type statusError struct {
	at  time.Time
	msg string
}

// Options carry what a KeyManager needs from its host.
type Options struct {
	Logger *zap.Logger
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// Connector is the definition's connector, for its vendor quirks
	// (HeaderChecker, ClaimsChecker, PrincipalMapper, OpaqueRefuser).
	Connector Connector
}

// NewKeyManager builds the runtime of a definition that has already had
// its connector applied and been normalized and validated. It does no I/O
// beyond reading tls.ca_file; call Start to begin fetching keys.
func NewKeyManager(tenant string, def Definition, opts Options) (*KeyManager, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	km := &KeyManager{
		tenant:      tenant,
		def:         def,
		fingerprint: Fingerprint(tenant, def),
		logger:      opts.Logger.With(zap.String("tenant", tenant), zap.String("key_manager", def.Name)),
		now:         opts.Now,
		allowedAlgs: map[string]bool{},
		done:        make(chan struct{}),
		connector:   opts.Connector,
	}
	fh := sha256.Sum256([]byte(km.fingerprint))
	km.fpHash = binary.LittleEndian.Uint64(fh[:])
	km.ctx, km.cancel = context.WithCancel(context.Background())
	rules, err := compileTokenRules(def.TokenHandling)
	if err != nil {
		return nil, FieldErrors{{Field: "token_handling", Message: err.Error()}}
	}
	km.intro = &introspector{rules: rules}
	km.intro.breaker.threshold = int64(def.BreakerThreshold)
	km.intro.breaker.cooldown = int64(time.Duration(def.BreakerCooldown))
	for _, a := range def.AllowedAlgorithms {
		km.allowedAlgs[a] = true
	}
	if len(def.Audiences) > 0 {
		km.audiences = map[string]struct{}{}
		for _, a := range def.Audiences {
			km.audiences[a] = struct{}{}
		}
	}
	if def.SharedSecret != "" {
		km.hmacSecret = []byte(def.SharedSecret)
	}
	if def.Issuer != "" {
		km.staticIssuer = true
		iss := def.Issuer
		km.issuer.Store(&iss)
	}
	if def.JWKSURL != "" {
		u := def.JWKSURL
		km.jwksURL.Store(&u)
	}
	if def.IntrospectionURL != "" {
		u := def.IntrospectionURL
		km.introspectURL.Store(&u)
	}
	if def.CertificatePEM != "" {
		ks, err := parsePinnedKey(def.CertificatePEM)
		if err != nil {
			return nil, FieldErrors{{Field: "certificate_pem", Message: err.Error()}}
		}
		ks.fetched = km.now()
		km.keys.Store(ks)
	}
	client, err := newHTTPClient(def)
	if err != nil {
		return nil, err
	}
	km.client = client
	// Credentials and tokens are POSTed: never follow a redirect with them
	// (a 307/308 would resend both to wherever it points).
	km.postClient = &http.Client{Transport: client.Transport, Timeout: client.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if def.TLS != nil && def.TLS.InsecureSkipVerify {
		km.logger.Warn("tls insecure_skip_verify is on: this Key Manager's certificates are not checked")
	}
	return km, nil
}

func newHTTPClient(def Definition) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = time.Duration(def.Timeout)
	if def.TLS != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if def.TLS.CAFile != "" {
			pemBytes, err := os.ReadFile(def.TLS.CAFile)
			if err != nil {
				return nil, FieldErrors{{Field: "tls.ca_file", Message: fmt.Sprintf("cannot read: %v", err)}}
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pemBytes) {
				return nil, FieldErrors{{Field: "tls.ca_file", Message: "holds no PEM certificate"}}
			}
			tc.RootCAs = pool
		}
		tc.InsecureSkipVerify = def.TLS.InsecureSkipVerify //nolint:gosec // opt-in, warned about
		tr.TLSClientConfig = tc
	}
	return &http.Client{
		Transport: tr,
		Timeout:   time.Duration(def.Timeout),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != via[0].URL.Scheme {
				return errors.New("redirect changes scheme")
			}
			return nil
		},
	}, nil
}

// Fingerprint identifies a definition's behaviour: two definitions with
// the same fingerprint validate tokens the same way. Cached results carry
// it, so changing or deleting a Key Manager invalidates them at once.
func Fingerprint(tenant string, def Definition) string {
	b, _ := json.Marshal(def)
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(b)
	return tenant + "/" + def.Name + "#" + hex.EncodeToString(h.Sum(nil)[:8])
}

// Name returns the Key Manager's name.
func (km *KeyManager) Name() string { return km.def.Name }

// Tenant returns the tenant that owns the Key Manager ("global" for Global
// Key Managers).
func (km *KeyManager) Tenant() string { return km.tenant }

// Definition returns the normalized definition (with secrets).
func (km *KeyManager) Definition() Definition { return km.def }

// FingerprintValue returns the Key Manager's fingerprint.
func (km *KeyManager) FingerprintValue() string { return km.fingerprint }

// Issuer returns the configured or discovered issuer ("" until known).
func (km *KeyManager) Issuer() string {
	if p := km.issuer.Load(); p != nil {
		return *p
	}
	return ""
}

// Start begins background discovery and JWKS refresh. It returns at once.
func (km *KeyManager) Start() {
	km.startOnce.Do(func() {
		if !km.needsNetwork() {
			close(km.done)
			return
		}
		go km.run()
	})
}

// Close stops the background work and idle connections.
func (km *KeyManager) Close() {
	km.startOnce.Do(func() { close(km.done) }) // never started: nothing to wait for
	km.cancel()
	<-km.done
	km.client.CloseIdleConnections()
}

func (km *KeyManager) needsNetwork() bool {
	return km.def.WellKnownURL != "" || km.def.JWKSURL != ""
}

// UsesIntrospection reports whether tokens may be introspected here.
func (km *KeyManager) UsesIntrospection() bool { return km.def.TokenValidation != ValidationJWT }

func (km *KeyManager) run() {
	defer close(km.done)
	defer func() {
		if r := recover(); r != nil {
			km.logger.Error("key manager refresh loop panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	backoff := time.Second
	for {
		err := km.sync(km.ctx)
		wait := time.Duration(km.def.JWKSRefreshInterval)
		if err != nil {
			if backoff < wait {
				wait = backoff
			}
			backoff *= 2
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-km.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sync runs discovery when still needed, then refetches the key set.
func (km *KeyManager) sync(ctx context.Context) error {
	derr := km.ensureDiscovered(ctx, true)
	if km.jwksURL.Load() == nil {
		return derr // (a configured jwks_url is fetched even while discovery fails)
	}
	_, err, _ := km.sf.Do("jwks", func() (any, error) { return nil, km.fetchKeys(ctx) })
	if err == nil {
		err = derr
	}
	return err
}

// ensureDiscovered makes sure the discovery document has been read. A
// caller joins a discovery already in flight; after a failure, a new
// attempt starts at most once per jwks_min_refresh_interval unless force
// is set (the background loop).
func (km *KeyManager) ensureDiscovered(ctx context.Context, force bool) error {
	if km.def.WellKnownURL == "" || km.discovered.Load() {
		return nil
	}
	floor := int64(time.Duration(km.def.JWKSMinRefreshInterval))
	ch := km.sf.DoChan("discovery", func() (any, error) {
		if km.discovered.Load() {
			return nil, nil
		}
		if f := km.lastDiscoveryFail.Load(); !force && f != 0 && km.now().UnixNano()-f < floor {
			return nil, detailed(ErrUnavailable, "discovery failed recently")
		}
		dctx, cancel := context.WithTimeout(km.ctx, time.Duration(km.def.Timeout))
		defer cancel()
		return nil, km.discover(dctx)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return detailed(ErrUnavailable, "discovery did not finish in time")
	}
}

// Metadata is the part of an OIDC / RFC 8414 discovery document we use.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`
}

// FetchMetadata reads and checks a discovery document.
func FetchMetadata(ctx context.Context, client *http.Client, wellKnown string) (*Metadata, error) {
	body, err := fetchDocument(ctx, client, wellKnown)
	if err != nil {
		return nil, err
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("discovery document is not JSON metadata: %v", err)
	}
	if md.Issuer == "" {
		return nil, errors.New("discovery document has no issuer")
	}
	return &md, nil
}

func (km *KeyManager) discover(ctx context.Context) error {
	md, err := FetchMetadata(ctx, km.client, km.def.WellKnownURL)
	if err == nil && km.staticIssuer && md.Issuer != km.def.Issuer {
		err = fmt.Errorf("discovery document's issuer %q differs from the configured issuer %q", md.Issuer, km.def.Issuer)
	}
	if err != nil {
		km.lastDiscoveryFail.Store(km.now().UnixNano())
		return km.fail("discovery", err)
	}
	km.lastDiscoveryFail.Store(0)
	if !km.staticIssuer {
		iss := md.Issuer
		km.issuer.Store(&iss)
	}
	if km.def.JWKSURL == "" && km.def.CertificatePEM == "" && md.JWKSURI != "" {
		u := md.JWKSURI
		km.jwksURL.Store(&u)
	}
	if km.def.IntrospectionURL == "" && md.IntrospectionEndpoint != "" {
		u := md.IntrospectionEndpoint
		km.introspectURL.Store(&u)
	}
	if md.TokenEndpoint != "" {
		u := md.TokenEndpoint
		km.tokenURL.Store(&u)
	}
	km.discovered.Store(true)
	km.logger.Info("key manager discovered", zap.String("issuer", md.Issuer))
	return nil
}

func (km *KeyManager) fail(what string, err error) error {
	km.lastError.Store(&statusError{at: km.now(), msg: what + ": " + err.Error()})
	km.logger.Warn("key manager "+what+" failed", zap.Error(err))
	return detailed(ErrUnavailable, what+" failed")
}

func fetchDocument(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return nil, fmt.Errorf("%s answered HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", u, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("%s returned more than %d bytes", u, maxDocumentSize)
	}
	return body, nil
}

// fetchKeys fetches the JWKS now. Callers go through singleflight.
func (km *KeyManager) fetchKeys(ctx context.Context) error {
	up := km.jwksURL.Load()
	if up == nil {
		return detailed(ErrNoKeys, "no jwks_url known yet")
	}
	km.fetches.Add(1)
	body, err := fetchDocument(ctx, km.client, *up)
	if err == nil {
		var ks *keySet
		if ks, err = parseJWKS(body); err == nil {
			ks.fetched = km.now()
			old := km.keys.Swap(ks)
			km.lastError.Store(nil)
			km.lastFetchFail.Store(0)
			if c := km.logger.Check(zap.DebugLevel, "jwks fetched"); c != nil {
				c.Write(zap.Strings("kids", ks.kids()), zap.Int("previous_keys", len(old.kids())))
			}
			return nil
		}
	}
	km.fetchFailures.Add(1)
	km.lastFetchFail.Store(km.now().UnixNano())
	return km.fail("jwks fetch", err)
}

// refreshKeysForToken refetches the key set because a token named a key we
// do not have (or no key set is loaded yet). It joins a fetch already in
// flight; a new fetch starts at most once per jwks_min_refresh_interval, so
// random kids from an attacker cause at most one fetch per interval. It
// reports whether keys may have changed.
func (km *KeyManager) refreshKeysForToken(ctx context.Context) bool {
	cur := km.keys.Load()
	if cur != nil && cur.pinned {
		return false
	}
	floor := int64(time.Duration(km.def.JWKSMinRefreshInterval))
	if cur != nil && km.now().UnixNano()-km.lastTokenRefresh.Load() < floor {
		return false // cheap pre-check, without the singleflight lock
	}
	if err := km.ensureDiscovered(ctx, false); err != nil && km.jwksURL.Load() == nil {
		return false
	}
	if km.jwksURL.Load() == nil {
		return false
	}
	ch := km.sf.DoChan("jwks", func() (any, error) {
		now := km.now().UnixNano()
		if km.keys.Load() == nil {
			// No key set yet: retry a failed first fetch at most once per
			// floor, and do not spend the unknown-kid budget on it.
			if f := km.lastFetchFail.Load(); f != 0 && now-f < floor {
				return nil, detailed(ErrNoKeys, "jwks fetch failed recently")
			}
		} else {
			if now-km.lastTokenRefresh.Load() < floor {
				return nil, nil
			}
			km.lastTokenRefresh.Store(now)
		}
		fctx, cancel := context.WithTimeout(km.ctx, time.Duration(km.def.Timeout))
		defer cancel()
		return nil, km.fetchKeys(fctx)
	})
	select {
	case res := <-ch:
		return res.Err == nil && km.keys.Load() != cur
	case <-ctx.Done():
		return false
	}
}

// Status is a point-in-time view for operators.
type Status struct {
	Tenant        string    `json:"tenant"`
	Name          string    `json:"name"`
	Issuer        string    `json:"issuer,omitempty"`
	JWKSURL       string    `json:"jwks_url,omitempty"`
	KeyIDs        []string  `json:"key_ids"`
	KeysFetched   time.Time `json:"keys_fetched,omitzero"`
	Fetches       uint64    `json:"jwks_fetches"`
	FetchFailures uint64    `json:"jwks_fetch_failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`

	Introspection *IntrospectionStatus `json:"introspection,omitempty"`
}

// Status returns the Key Manager's current state.
func (km *KeyManager) Status() Status {
	s := Status{Tenant: km.tenant, Name: km.def.Name, Issuer: km.Issuer(), Fetches: km.fetches.Load(), FetchFailures: km.fetchFailures.Load(), KeyIDs: []string{}}
	if u := km.jwksURL.Load(); u != nil {
		s.JWKSURL = *u
	}
	if ks := km.keys.Load(); ks != nil {
		s.KeyIDs = ks.kids()
		s.KeysFetched = ks.fetched
	}
	if e := km.lastError.Load(); e != nil {
		s.LastError, s.LastErrorAt = e.msg, e.at
	}
	s.Introspection = km.introspectionStatus()
	return s
}

// RefreshNow refetches discovery (when used) and the key set, ignoring the
// refresh floor. For operators (admin API, tests).
func (km *KeyManager) RefreshNow(ctx context.Context) error {
	if km.def.WellKnownURL != "" {
		if _, err, _ := km.sf.Do("discovery", func() (any, error) { return nil, km.discover(ctx) }); err != nil {
			return err
		}
	}
	if km.jwksURL.Load() == nil {
		return nil
	}
	_, err, _ := km.sf.Do("jwks", func() (any, error) { return nil, km.fetchKeys(ctx) })
	return err
}

// DiscoverMetadata reads def's well-known URL with def's TLS settings and
// checks it is usable OIDC / RFC 8414 metadata (an issuer, and a jwks_uri
// or an introspection_endpoint). For operators: it does not touch any
// running Key Manager.
func DiscoverMetadata(ctx context.Context, def Definition) (*Metadata, error) {
	if def.Timeout == 0 {
		def.Timeout = Duration(DefaultTimeout)
	}
	client, err := newHTTPClient(def)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	md, err := FetchMetadata(ctx, client, def.WellKnownURL)
	if err != nil {
		return nil, err
	}
	if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
		return nil, errors.New("not a valid OIDC/OAuth metadata document: it has neither jwks_uri nor introspection_endpoint")
	}
	return md, nil
}
