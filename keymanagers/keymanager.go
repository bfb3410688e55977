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
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

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
	stats             validationStats
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
	km.intro.budget.init(def.IntrospectionRate, def.IntrospectionBurst)
	km.intro.flights.max = int64(def.MaxIntrospectionFlights)
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
	for _, w := range def.Warnings() {
		km.logger.Warn(w)
	}
	return km, nil
}

func newHTTPClient(def Definition) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = time.Duration(def.Timeout)
	if def.TLS != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if def.TLS.CAFile != "" || def.TLS.CAPEM != "" {
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if def.TLS.CAFile != "" {
				pemBytes, err := os.ReadFile(def.TLS.CAFile)
				if err != nil {
					return nil, FieldErrors{{Field: "tls.ca_file", Message: fmt.Sprintf("cannot read: %v", err)}}
				}
				if !pool.AppendCertsFromPEM(pemBytes) {
					return nil, FieldErrors{{Field: "tls.ca_file", Message: "holds no PEM certificate"}}
				}
			}
			if def.TLS.CAPEM != "" && !pool.AppendCertsFromPEM([]byte(def.TLS.CAPEM)) {
				return nil, FieldErrors{{Field: "tls.ca_pem", Message: "holds no PEM certificate"}}
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

// UsesIntrospection reports whether tokens may be introspected here.
func (km *KeyManager) UsesIntrospection() bool { return km.def.TokenValidation != ValidationJWT }
