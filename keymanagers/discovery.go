package keymanagers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxDocumentSize bounds discovery and JWKS documents.
const maxDocumentSize = 1 << 20

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
	RegistrationEndpoint  string `json:"registration_endpoint,omitempty"`
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

// CheckMetadata checks a discovery document read from wellKnown before
// anything in it is used. configuredIssuer is the Key Manager's own issuer
// ("" when it is learnt from discovery).
//
//   - With a configured issuer, the document must name exactly that issuer
//     (the configuration is the trust anchor: WSO2 IS 5.x and Azure AD v1
//     publish an issuer that is not their well-known URL's prefix).
//   - Without one, the issuer must be the one the well-known URL derives
//     from (OIDC Discovery 4.3: issuer + "/.well-known/openid-configuration";
//     RFC 8414 3.3: the "/.well-known/oauth-authorization-server" or
//     "/.well-known/openid-configuration" segment inserted after the host),
//     a trailing "/" aside. Otherwise any document could claim any issuer.
//   - A document served over https must name https endpoints: an http://
//     jwks_uri would let a network attacker supply the keys.
//
// insecure skips the last two checks (never the first).
func CheckMetadata(wellKnown string, md *Metadata, configuredIssuer string, insecure bool) error {
	if configuredIssuer != "" {
		if md.Issuer != configuredIssuer {
			return fmt.Errorf("discovery document's issuer %q differs from the configured issuer %q", md.Issuer, configuredIssuer)
		}
	} else if !insecure && !issuerBoundTo(wellKnown, md.Issuer) {
		return fmt.Errorf("discovery document's issuer %q is not the issuer its URL %s belongs to (OIDC Discovery 4.3): "+
			"set issuer to the expected value, or insecure_discovery to accept it", md.Issuer, wellKnown)
	}
	wk, err := url.Parse(wellKnown)
	if err != nil {
		return fmt.Errorf("well_known_url: %v", err)
	}
	for _, e := range [...]struct{ name, value string }{
		{"jwks_uri", md.JWKSURI},
		{"introspection_endpoint", md.IntrospectionEndpoint},
		{"token_endpoint", md.TokenEndpoint},
		{"registration_endpoint", md.RegistrationEndpoint},
	} {
		if e.value == "" {
			continue
		}
		u, err := url.Parse(e.value)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("discovery document's %s %q is not an absolute http(s) URL without credentials", e.name, e.value)
		}
		if wk.Scheme == "https" && u.Scheme != "https" && !insecure {
			return fmt.Errorf("discovery document served over https names an http:// %s (%s): refused; set insecure_discovery to accept it", e.name, e.value)
		}
	}
	return nil
}

// issuerBoundTo reports whether issuer is the issuer the well-known URL
// derives from, in the OIDC suffix form or the RFC 8414 insertion form.
func issuerBoundTo(wellKnown, issuer string) bool {
	wk, err := url.Parse(wellKnown)
	if err != nil || wk.RawQuery != "" || wk.Fragment != "" {
		return false
	}
	origin := wk.Scheme + "://" + wk.Host
	p := wk.EscapedPath()
	var candidates []string
	for _, suffix := range [...]string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		if prefix, ok := strings.CutSuffix(p, suffix); ok {
			candidates = append(candidates, origin+prefix) // OIDC form
		}
		if rest, ok := strings.CutPrefix(p, suffix); ok && (rest == "" || rest[0] == '/') {
			candidates = append(candidates, origin+rest) // RFC 8414 insertion form
		}
	}
	want := strings.TrimSuffix(issuer, "/")
	for _, c := range candidates {
		if strings.TrimSuffix(c, "/") == want {
			return true
		}
	}
	return false
}

// fetchMetadata reads and checks the Key Manager's discovery document.
func (km *KeyManager) fetchMetadata(ctx context.Context) (*Metadata, error) {
	md, err := FetchMetadata(ctx, km.client, km.def.WellKnownURL)
	if err != nil {
		return nil, err
	}
	configured := ""
	if km.staticIssuer {
		configured = km.def.Issuer
	}
	if err := CheckMetadata(km.def.WellKnownURL, md, configured, km.def.InsecureDiscovery); err != nil {
		return nil, err
	}
	return md, nil
}

func (km *KeyManager) discover(ctx context.Context) error {
	md, err := km.fetchMetadata(ctx)
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
	if err := CheckMetadata(def.WellKnownURL, md, def.Issuer, def.InsecureDiscovery); err != nil {
		return nil, err
	}
	if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
		return nil, errors.New("not a valid OIDC/OAuth metadata document: it has neither jwks_uri nor introspection_endpoint")
	}
	return md, nil
}
