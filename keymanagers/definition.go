// Package keymanagers is the domain of caddy-keymanager: Key Manager
// definitions and their validation, discovery, JWKS handling, JWT
// verification, the result cache and the per-tenant registry.
//
// It has no Caddy HTTP types: the caddymodule package translates Caddy
// configuration into calls on this package.
package keymanagers

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Normalize.
const (
	DefaultClockSkew              = 30 * time.Second
	DefaultTimeout                = 5 * time.Second
	DefaultJWKSRefreshInterval    = 10 * time.Minute
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	DefaultIntrospectionCacheTTL  = 5 * time.Minute
	DefaultNegativeCacheTTL       = 30 * time.Second
	DefaultBreakerThreshold       = 5
	DefaultBreakerCooldown        = 30 * time.Second
)

// Introspection client authentication methods.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthBearer            = "bearer"
	AuthNone              = "none"
)

// Token validation modes.
const (
	ValidationJWT           = "jwt"
	ValidationIntrospection = "introspection"
	ValidationAuto          = "auto"
)

// Definition is one Key Manager as users write it (JSON, Caddyfile, admin
// API). Zero values mean "use the default" (from the connector, from
// discovery, or from the package defaults).
type Definition struct {
	// Name is unique per tenant: [a-z0-9][a-z0-9._-]{0,63}.
	Name string `json:"name"`
	// DisplayName and Description are for humans only.
	DisplayName string `json:"display_name,omitempty"`
	Description string `json:"description,omitempty"`
	// Enabled defaults to true. A disabled Key Manager accepts no tokens.
	Enabled *bool `json:"enabled,omitempty"`

	// Connector names the vendor connector ("type") and its connection
	// fields. It is a guest module in the keymanagers.connectors namespace;
	// the default is the generic "custom" connector.
	Connector json.RawMessage `json:"connector,omitempty" caddy:"namespace=keymanagers.connectors inline_key=type"`

	// Issuer is the exact "iss" of this Key Manager's tokens. Default: from
	// the connector, else from discovery.
	Issuer string `json:"issuer,omitempty"`
	// AdditionalIssuers are further exact issuers this Key Manager vouches
	// for (for example Azure AD's v1 and v2 issuers of one tenant). Each
	// picks this Key Manager just as Issuer does.
	AdditionalIssuers []string `json:"additional_issuers,omitempty"`
	// WellKnownURL is the OIDC or RFC 8414 discovery document.
	WellKnownURL string `json:"well_known_url,omitempty"`
	// JWKSURL is the key set that verifies this Key Manager's JWTs.
	// Default: from discovery.
	JWKSURL string `json:"jwks_url,omitempty"`
	// CertificatePEM is an alternative to JWKSURL: a PEM certificate or
	// public key pinned in the config. Tokens are verified with it whatever
	// their kid.
	CertificatePEM string `json:"certificate_pem,omitempty"`
	// SharedSecret enables HS256/384/512 for this Key Manager. Without it,
	// HMAC algorithms are always refused.
	SharedSecret string `json:"shared_secret,omitempty"`
	// IntrospectionURL is the RFC 7662 endpoint. Default: from discovery.
	IntrospectionURL string `json:"introspection_url,omitempty"`
	// ClientID and ClientSecret authenticate this gateway to the Key
	// Manager (introspection). Caddy placeholders such as {env.X} are
	// expanded when the configuration is loaded.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// IntrospectionAuth is how the gateway authenticates to the
	// introspection endpoint: client_secret_basic (default),
	// client_secret_post, bearer (a token from the client-credentials grant
	// at TokenURL) or none.
	IntrospectionAuth string `json:"introspection_auth,omitempty"`
	// TokenURL is the token endpoint for introspection_auth bearer.
	// Default: from discovery.
	TokenURL string `json:"token_url,omitempty"`
	// TokenTypeHint is sent with each introspection (default
	// "access_token"; "none" sends no hint).
	TokenTypeHint string `json:"token_type_hint,omitempty"`
	// StaleIfError serves a cached positive introspection result up to this
	// long past its cache TTL while the Key Manager is failing, never past
	// the token's exp. Off by default.
	StaleIfError Duration `json:"stale_if_error,omitempty"`
	// BreakerThreshold consecutive introspection failures open the circuit
	// breaker (default 5); while open, introspection fails fast for
	// BreakerCooldown (default 30s), then one probe is let through.
	BreakerThreshold int      `json:"breaker_threshold,omitempty"`
	BreakerCooldown  Duration `json:"breaker_cooldown,omitempty"`

	// Audiences: when set, a token must carry at least one of them in aud.
	Audiences []string `json:"audiences,omitempty"`
	// TokenValidation is jwt, introspection or auto (default auto).
	TokenValidation string `json:"token_validation,omitempty"`
	// Claims maps the principal's fields to claim names.
	Claims *ClaimMapping `json:"claims,omitempty"`
	// AllowedAlgorithms limits the JWS algorithms accepted. Default: the
	// asymmetric ones (RS*, PS*, ES*, EdDSA), plus HS* when SharedSecret is
	// set. "none" is never accepted.
	AllowedAlgorithms []string `json:"allowed_algorithms,omitempty"`
	// RequireATJWT refuses JWTs whose typ header is not at+jwt (RFC 9068).
	RequireATJWT bool `json:"require_at_jwt,omitempty"`

	ClockSkew             Duration `json:"clock_skew,omitempty"`
	IntrospectionCacheTTL Duration `json:"introspection_cache_ttl,omitempty"`
	NegativeCacheTTL      Duration `json:"negative_cache_ttl,omitempty"`
	// Timeout bounds every call to this Key Manager (discovery, JWKS,
	// introspection).
	Timeout Duration `json:"timeout,omitempty"`
	// JWKSRefreshInterval is how often the key set is refetched in the
	// background (default 10m).
	JWKSRefreshInterval Duration `json:"jwks_refresh_interval,omitempty"`
	// JWKSMinRefreshInterval is the floor between two fetches triggered by
	// tokens (unknown kid): random kids cause at most one fetch per
	// interval (default 30s).
	JWKSMinRefreshInterval Duration `json:"jwks_min_refresh_interval,omitempty"`

	TLS *TLSConfig `json:"tls,omitempty"`

	// TokenHandling elects which tokens this Key Manager handles on the
	// opaque path (introspection). No rules: any token.
	TokenHandling []TokenHandlingRule `json:"token_handling,omitempty"`
}

// ClaimMapping names the claims the principal is read from.
type ClaimMapping struct {
	Subject     string `json:"subject,omitempty"`
	ConsumerKey string `json:"consumer_key,omitempty"`
	Scopes      string `json:"scopes,omitempty"`
}

// TLSConfig configures the client that calls the Key Manager.
type TLSConfig struct {
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify disables certificate checks; a warning is logged.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// TokenHandlingRule is one WSO2-style token handling rule.
type TokenHandlingRule struct {
	// Type is "reference" (Pattern over the raw token) or "jwt" (Claims
	// regexes over the unverified JWT body).
	Type    string            `json:"type"`
	Pattern string            `json:"pattern,omitempty"`
	Claims  map[string]string `json:"claims,omitempty"`
}

// IsEnabled reports whether the definition is enabled (default true).
func (d *Definition) IsEnabled() bool { return d.Enabled == nil || *d.Enabled }

// Duration is a time.Duration that reads "30s" or integer nanoseconds from
// JSON and writes the string form.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\" or integer nanoseconds")
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// ParseDuration is time.ParseDuration that also accepts a "d" (day) unit.
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || math.Abs(n) > float64(math.MaxInt64)/float64(24*time.Hour) {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}

// FieldError is one problem with one field of a definition.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors is a list of field problems; it is an error.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s is a valid Key Manager or tenant name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// asymmetricAlgs are the default allowed algorithms.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
var hmacAlgs = []string{"HS256", "HS384", "HS512"}

// Normalize fills package defaults into a copy of d. Connector-derived
// values must be applied before (see Connector.Derive).
func (d Definition) Normalize() Definition {
	if d.TokenValidation == "" {
		d.TokenValidation = ValidationAuto
	}
	if d.ClockSkew == 0 {
		d.ClockSkew = Duration(DefaultClockSkew)
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(DefaultTimeout)
	}
	if d.JWKSRefreshInterval == 0 {
		d.JWKSRefreshInterval = Duration(DefaultJWKSRefreshInterval)
	}
	if d.JWKSMinRefreshInterval == 0 {
		d.JWKSMinRefreshInterval = Duration(DefaultJWKSMinRefreshInterval)
	}
	if d.IntrospectionCacheTTL == 0 {
		d.IntrospectionCacheTTL = Duration(DefaultIntrospectionCacheTTL)
	}
	if d.NegativeCacheTTL == 0 {
		d.NegativeCacheTTL = Duration(DefaultNegativeCacheTTL)
	}
	if d.IntrospectionAuth == "" {
		d.IntrospectionAuth = AuthClientSecretBasic
	}
	if d.TokenTypeHint == "" {
		d.TokenTypeHint = "access_token"
	}
	if d.BreakerThreshold == 0 {
		d.BreakerThreshold = DefaultBreakerThreshold
	}
	if d.BreakerCooldown == 0 {
		d.BreakerCooldown = Duration(DefaultBreakerCooldown)
	}
	if len(d.AllowedAlgorithms) == 0 {
		if d.JWKSURL != "" || d.CertificatePEM != "" || d.WellKnownURL != "" || d.SharedSecret == "" {
			d.AllowedAlgorithms = slices.Clone(asymmetricAlgs)
		}
		if d.SharedSecret != "" {
			d.AllowedAlgorithms = append(d.AllowedAlgorithms, hmacAlgs...)
		}
	}
	return d
}

// Validate checks a normalized definition and returns every problem found
// as FieldErrors (nil when valid). It does no I/O beyond parsing the pinned
// certificate.
func (d *Definition) Validate() error {
	var errs FieldErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !ValidName(d.Name) {
		add("name", "%q is not a valid name: use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", d.Name)
	}
	checkURL := func(field, v string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add(field, "%q is not an absolute http(s) URL", v)
			return
		}
		if u.User != nil {
			add(field, "must not carry credentials in the URL")
		}
	}
	checkURL("well_known_url", d.WellKnownURL)
	checkURL("jwks_url", d.JWKSURL)
	checkURL("introspection_url", d.IntrospectionURL)
	checkURL("token_url", d.TokenURL)
	switch d.IntrospectionAuth {
	case AuthClientSecretBasic, AuthClientSecretPost, AuthBearer:
		if d.ClientID == "" && (d.IntrospectionURL != "" || d.TokenValidation == ValidationIntrospection) {
			add("client_id", "introspection_auth %s needs client_id (and client_secret)", d.IntrospectionAuth)
		}
		if d.IntrospectionAuth == AuthBearer && d.TokenURL == "" && d.WellKnownURL == "" {
			add("token_url", "introspection_auth bearer needs token_url or well_known_url")
		}
	case AuthNone:
	default:
		add("introspection_auth", "%q is not one of client_secret_basic, client_secret_post, bearer, none", d.IntrospectionAuth)
	}
	if d.BreakerThreshold < 0 {
		add("breaker_threshold", "must not be negative")
	}
	if d.TokenTypeHint != "" && !nameRE.MatchString(strings.ToLower(d.TokenTypeHint)) {
		add("token_type_hint", "%q is not a token type hint", d.TokenTypeHint)
	}
	if d.Issuer != "" && strings.TrimSpace(d.Issuer) != d.Issuer {
		add("issuer", "must not start or end with white space")
	}
	for i, iss := range d.AdditionalIssuers {
		if iss == "" || strings.TrimSpace(iss) != iss {
			add(fmt.Sprintf("additional_issuers[%d]", i), "must be a non-empty issuer without surrounding white space")
		}
		if iss == d.Issuer {
			add(fmt.Sprintf("additional_issuers[%d]", i), "repeats issuer")
		}
	}
	if len(d.AdditionalIssuers) > 0 && d.Issuer == "" {
		add("issuer", "additional_issuers need issuer to be set")
	}
	switch d.TokenValidation {
	case ValidationJWT, ValidationIntrospection, ValidationAuto:
	default:
		add("token_validation", "%q is not one of jwt, introspection, auto", d.TokenValidation)
	}
	for _, alg := range d.AllowedAlgorithms {
		switch {
		case strings.EqualFold(alg, "none"):
			add("allowed_algorithms", "\"none\" is never allowed")
		case slices.Contains(hmacAlgs, alg):
			if d.SharedSecret == "" {
				add("allowed_algorithms", "%s needs shared_secret: HMAC algorithms are refused without a configured shared secret", alg)
			}
		case slices.Contains(asymmetricAlgs, alg):
		default:
			add("allowed_algorithms", "unknown algorithm %q (known: %s)", alg, strings.Join(append(slices.Clone(asymmetricAlgs), hmacAlgs...), ", "))
		}
	}
	if d.SharedSecret != "" && len(d.SharedSecret) < 32 && !strings.Contains(d.SharedSecret, "{") {
		// (a {env.X} placeholder is checked once expanded, at provision time)
		add("shared_secret", "must be at least 32 bytes long")
	}
	if d.CertificatePEM != "" {
		if _, err := parsePinnedKey(d.CertificatePEM); err != nil {
			add("certificate_pem", "%v", err)
		}
		if d.JWKSURL != "" {
			add("certificate_pem", "set either certificate_pem or jwks_url, not both")
		}
	}
	for i, a := range d.Audiences {
		if a == "" {
			add(fmt.Sprintf("audiences[%d]", i), "must not be empty")
		}
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{{"clock_skew", d.ClockSkew}, {"timeout", d.Timeout}, {"jwks_refresh_interval", d.JWKSRefreshInterval},
		{"jwks_min_refresh_interval", d.JWKSMinRefreshInterval}, {"introspection_cache_ttl", d.IntrospectionCacheTTL},
		{"negative_cache_ttl", d.NegativeCacheTTL}, {"stale_if_error", d.StaleIfError}, {"breaker_cooldown", d.BreakerCooldown}} {
		if f.v < 0 {
			add(f.name, "must not be negative")
		}
	}
	if time.Duration(d.ClockSkew) > 10*time.Minute {
		add("clock_skew", "%s is more than the 10m allowed", time.Duration(d.ClockSkew))
	}
	if time.Duration(d.Timeout) > 2*time.Minute {
		add("timeout", "%s is more than the 2m allowed", time.Duration(d.Timeout))
	}
	if d.JWKSMinRefreshInterval > d.JWKSRefreshInterval {
		add("jwks_min_refresh_interval", "must not exceed jwks_refresh_interval")
	}
	for i, r := range d.TokenHandling {
		f := fmt.Sprintf("token_handling[%d]", i)
		switch r.Type {
		case "reference":
			if _, err := regexp.Compile(r.Pattern); err != nil || r.Pattern == "" {
				add(f+".pattern", "needs a valid regular expression")
			}
		case "jwt":
			if len(r.Claims) == 0 {
				add(f+".claims", "needs at least one claim regex")
			}
			for c, p := range r.Claims {
				if _, err := regexp.Compile(p); err != nil {
					add(f+".claims."+c, "invalid regular expression: %v", err)
				}
			}
		default:
			add(f+".type", "%q is not one of reference, jwt", r.Type)
		}
	}
	// A JWT path needs keys, an issuer and a way to find them.
	if d.IsEnabled() && d.TokenValidation != ValidationIntrospection {
		if d.Issuer == "" && d.WellKnownURL == "" {
			add("issuer", "set issuer, or well_known_url to discover it")
		}
		// In auto mode an introspection endpoint alone is enough: JWTs are
		// then introspected too.
		noKeys := d.JWKSURL == "" && d.CertificatePEM == "" && d.WellKnownURL == "" && d.SharedSecret == ""
		if noKeys && (d.TokenValidation == ValidationJWT || d.IntrospectionURL == "") {
			add("jwks_url", "set jwks_url, certificate_pem or well_known_url so tokens can be verified")
		}
	}
	if d.TokenValidation == ValidationIntrospection && d.IntrospectionURL == "" && d.WellKnownURL == "" {
		add("introspection_url", "token_validation introspection needs introspection_url or well_known_url")
	}
	if d.TLS != nil && d.TLS.CAFile != "" && strings.TrimSpace(d.TLS.CAFile) == "" {
		add("tls.ca_file", "must not be blank")
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Redacted returns a copy whose secrets are replaced by Mask, safe to
// return or log.
func (d Definition) Redacted() Definition {
	if d.ClientSecret != "" {
		d.ClientSecret = Mask
	}
	if d.SharedSecret != "" {
		d.SharedSecret = Mask
	}
	if len(d.Connector) > 0 {
		var fields map[string]json.RawMessage
		if json.Unmarshal(d.Connector, &fields) == nil {
			changed := false
			for k := range fields {
				if isSecretField(k) {
					fields[k] = json.RawMessage(`"` + Mask + `"`)
					changed = true
				}
			}
			if changed {
				d.Connector, _ = json.Marshal(fields)
			}
		}
	}
	return d
}

// isSecretField reports connector fields that hold secrets.
func isSecretField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "secret") || strings.Contains(n, "password") || strings.Contains(n, "private")
}

// KeepMaskedSecrets replaces masked secrets in d (as sent back by an admin
// client after a GET) with the values from prev, as WSO2 does.
func (d Definition) KeepMaskedSecrets(prev Definition) Definition {
	if d.ClientSecret == Mask {
		d.ClientSecret = prev.ClientSecret
	}
	if d.SharedSecret == Mask {
		d.SharedSecret = prev.SharedSecret
	}
	if len(d.Connector) > 0 && len(prev.Connector) > 0 {
		var cur, old map[string]json.RawMessage
		if json.Unmarshal(d.Connector, &cur) == nil && json.Unmarshal(prev.Connector, &old) == nil {
			changed := false
			for k, v := range cur {
				if isSecretField(k) && string(v) == `"`+Mask+`"` {
					if ov, ok := old[k]; ok {
						cur[k] = ov
						changed = true
					}
				}
			}
			if changed {
				d.Connector, _ = json.Marshal(cur)
			}
		}
	}
	return d
}

// Mask replaces secrets in anything shown to a user.
const Mask = "********"
