// Package keymanagers is the domain of caddy-keymanager: Key Manager
// definitions and their validation, discovery, JWKS handling, JWT
// verification, the result cache and the per-tenant registry.
//
// It has no Caddy HTTP types: the caddymodule package translates Caddy
// configuration into calls on this package.
package keymanagers

import (
	"encoding/json"
	"regexp"
	"slices"
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
	// Unknown-token introspection budget and concurrency cap, per Key
	// Manager.
	DefaultIntrospectionRate       = 50.0
	DefaultIntrospectionBurst      = 100
	DefaultMaxIntrospectionFlights = 64
)

// Bounds of the introspection budget and flight cap (see Validate).
const (
	minIntrospectionRate    = 0.001
	maxIntrospectionRate    = 1e6
	maxIntrospectionBurst   = 1_000_000
	maxIntrospectionFlights = 10_000
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
	// InsecureDiscovery accepts a discovery document that names http://
	// endpoints although it was served over https, and, when no issuer is
	// configured, an issuer the well-known URL does not derive from (OIDC
	// Discovery 4.3, RFC 8414 section 3.3). Both are refused by default.
	InsecureDiscovery bool `json:"insecure_discovery,omitempty"`
	// JWKSURL is the key set that verifies this Key Manager's JWTs.
	// Default: from discovery.
	JWKSURL string `json:"jwks_url,omitempty"`
	// CertificatePEM is an alternative to JWKSURL: a PEM certificate or
	// public key pinned in the config. Tokens are verified with it whatever
	// their kid.
	CertificatePEM string `json:"certificate_pem,omitempty"`
	// CertificateFile names a PEM file read into CertificatePEM when the
	// configuration is provisioned (so a reload picks up a renewed file).
	// Configuration only: admin-API definitions give certificate_pem.
	CertificateFile string `json:"certificate_file,omitempty"`
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
	// IntrospectionRate (calls per second, default 50) and
	// IntrospectionBurst (default 100) are a token bucket that budgets the
	// introspection calls made for tokens the cache knows nothing about;
	// beyond it such tokens are refused (401, introspection_budget) without
	// a call. Tokens with a cached positive result are not budgeted.
	IntrospectionRate  float64 `json:"introspection_rate,omitempty"`
	IntrospectionBurst int     `json:"introspection_burst,omitempty"`
	// MaxIntrospectionFlights caps the introspection calls in progress at
	// once (default 64); beyond it a request that needs a call is answered
	// at once with 503 (introspection_busy).
	MaxIntrospectionFlights int `json:"max_introspection_flights,omitempty"`

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

	// DPoP is required, allowed (default) or off: required refuses
	// tokens that are not DPoP-bound (cnf.jkt) and presented with a DPoP
	// proof; allowed checks the proof of bound tokens and lets unbound
	// ones through as bearer tokens; off refuses the DPoP scheme and
	// bound tokens. A route's dpop overrides it.
	DPoP string `json:"dpop,omitempty"`
	// CertificateBound is required or allowed (default): required refuses
	// tokens without cnf.x5t#S256 (RFC 8705); either way a token that has
	// one must come with that client certificate.
	CertificateBound string `json:"certificate_bound,omitempty"`

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

	// Developer keys (RFC 7591/7592, see registration.go): applications
	// may be registered at this Key Manager, and the gateway may obtain
	// tokens for the applications it registered (at TokenURL, default
	// from discovery).
	EnableOAuthAppCreation bool `json:"enable_oauth_app_creation,omitempty"`
	EnableTokenGeneration  bool `json:"enable_token_generation,omitempty"`
	// RegistrationEndpoint is the RFC 7591 endpoint. Default: discovery's
	// registration_endpoint.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// RegistrationAccessToken is the initial access token sent (as a Bearer
	// token) to the registration endpoint; a secret, masked like
	// client_secret. Without it, ClientID/ClientSecret get one from the
	// token endpoint (client credentials), else the registration is sent
	// unauthenticated (open registration).
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
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
	// CAPEM is a PEM bundle given inline, trusted in addition to the
	// system roots (admin-API definitions name a CA this way, or by a file
	// under the app's ca_dir).
	CAPEM string `json:"ca_pem,omitempty"`
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
	if d.IntrospectionRate == 0 {
		d.IntrospectionRate = DefaultIntrospectionRate
	}
	if d.IntrospectionBurst == 0 {
		d.IntrospectionBurst = DefaultIntrospectionBurst
	}
	if d.MaxIntrospectionFlights == 0 {
		d.MaxIntrospectionFlights = DefaultMaxIntrospectionFlights
	}
	if len(d.AllowedAlgorithms) == 0 {
		if d.JWKSURL != "" || d.CertificatePEM != "" || d.CertificateFile != "" || d.WellKnownURL != "" || d.SharedSecret == "" {
			d.AllowedAlgorithms = slices.Clone(asymmetricAlgs)
		}
		if d.SharedSecret != "" {
			d.AllowedAlgorithms = append(d.AllowedAlgorithms, hmacAlgs...)
		}
	}
	return d
}
