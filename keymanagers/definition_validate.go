package keymanagers

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

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
	checkURL("registration_endpoint", d.RegistrationEndpoint)
	errs = append(errs, d.validateRegistration()...)
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
	// Unknown-token introspection budget and flight cap (0: the default).
	if !(d.IntrospectionRate >= 0 && d.IntrospectionRate <= maxIntrospectionRate) {
		add("introspection_rate", "must be between 0 and %g calls per second", float64(maxIntrospectionRate))
	} else if d.IntrospectionRate > 0 && d.IntrospectionRate < minIntrospectionRate {
		add("introspection_rate", "must be at least %g calls per second", minIntrospectionRate)
	}
	if d.IntrospectionBurst < 0 || d.IntrospectionBurst > maxIntrospectionBurst {
		add("introspection_burst", "must be between 0 and %d", maxIntrospectionBurst)
	}
	if d.MaxIntrospectionFlights < 0 || d.MaxIntrospectionFlights > maxIntrospectionFlights {
		add("max_introspection_flights", "must be between 0 and %d", maxIntrospectionFlights)
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
	errs = append(errs, d.bindingErrors()...)
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
	if d.SharedSecret != "" && len(d.SharedSecret) < 32 {
		// No exception for placeholders: definitions from the Caddy config
		// are validated once expanded (at provision time), and admin API
		// definitions are never expanded.
		add("shared_secret", "must be at least 32 bytes long")
	}
	if d.CertificateFile != "" && d.JWKSURL != "" {
		add("certificate_file", "set either certificate_file or jwks_url, not both")
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
		noKeys := d.JWKSURL == "" && d.CertificatePEM == "" && d.CertificateFile == "" && d.WellKnownURL == "" && d.SharedSecret == ""
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
