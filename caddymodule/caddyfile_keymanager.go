package caddymodule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// parseKeyManager parses one Key Manager block (the dispenser is on its
// name):
//
//	NAME {
//		type CONNECTOR            # then the connector's own fields
//		display_name TEXT
//		description TEXT
//		enabled true|false
//		issuer URL
//		additional_issuers URL...
//		well_known_url URL
//		insecure_discovery        # accept http:// endpoints / an unbound issuer from discovery
//		jwks_url URL
//		certificate_file PATH     # read into certificate_pem at provision
//		shared_secret SECRET      # enables HS256/384/512
//		introspection_url URL
//		client_id ID
//		client_secret SECRET
//		introspection_auth client_secret_basic|client_secret_post|bearer|none
//		token_url URL             # for introspection_auth bearer
//		token_type_hint HINT|none
//		dpop required|allowed|off
//		certificate_bound required|allowed
//		stale_if_error DURATION
//		breaker_threshold N
//		breaker_cooldown DURATION
//		audience AUD...
//		allowed_algorithms ALG...
//		token_validation jwt|introspection|auto
//		require_at_jwt
//		clock_skew DURATION
//		introspection_cache_ttl DURATION
//		negative_cache_ttl DURATION
//		timeout DURATION
//		jwks_refresh_interval DURATION
//		jwks_min_refresh_interval DURATION
//		claims { subject CLAIM; consumer_key CLAIM; scopes CLAIM }
//		tls { ca_file PATH; insecure_skip_verify }
//		token_handling { reference REGEX; jwt CLAIM REGEX }
//	}
func parseKeyManager(d *caddyfile.Dispenser, name string) (*keymanagers.Definition, error) {
	def := &keymanagers.Definition{Name: name}
	blockLine := d.Line()
	if !keymanagers.ValidName(name) {
		return nil, d.Errf("key manager name %q is not valid: use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", name)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var connType string
	connFields := map[string]any{}
	type pending struct {
		name string
		line int
	}
	var unknown []pending
	fieldLines := map[string]int{}
	str := func(dst *string) error {
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		*dst = v
		return nil
	}
	dur := func(dst *keymanagers.Duration) error {
		field := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		x, err := keymanagers.ParseDuration(v)
		if err != nil {
			return d.Errf("%s: %q is not a duration such as 30s, 5m or 1d", field, v)
		}
		*dst = keymanagers.Duration(x)
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		field := d.Val()
		fieldLines[field] = d.Line()
		var err error
		switch field {
		case "type":
			err = str(&connType)
		case "display_name":
			err = str(&def.DisplayName)
		case "description":
			err = str(&def.Description)
		case "enabled":
			var v string
			if err = str(&v); err == nil {
				b, perr := strconv.ParseBool(v)
				if perr != nil {
					return nil, d.Errf("enabled: %q is not true or false", v)
				}
				def.Enabled = &b
			}
		case "issuer":
			err = str(&def.Issuer)
		case "well_known_url":
			err = str(&def.WellKnownURL)
		case "jwks_url":
			err = str(&def.JWKSURL)
		case "introspection_url":
			err = str(&def.IntrospectionURL)
		case "client_id":
			err = str(&def.ClientID)
		case "client_secret":
			err = str(&def.ClientSecret)
		case "shared_secret":
			err = str(&def.SharedSecret)
		case "token_validation":
			err = str(&def.TokenValidation)
		case "introspection_auth":
			err = str(&def.IntrospectionAuth)
		case "token_url":
			err = str(&def.TokenURL)
		case "token_type_hint":
			err = str(&def.TokenTypeHint)
		case "dpop": // sender-constrained tokens (keymanagers/binding.go)
			err = str(&def.DPoP)
		case "certificate_bound":
			err = str(&def.CertificateBound)
		case "stale_if_error":
			err = dur(&def.StaleIfError)
		case "breaker_cooldown":
			err = dur(&def.BreakerCooldown)
		case "breaker_threshold":
			var v string
			if err = str(&v); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 0 {
					return nil, d.Errf("breaker_threshold: %q is not a non-negative integer", v)
				}
				def.BreakerThreshold = n
			}
		case "introspection_rate":
			var v string
			if err = str(&v); err == nil {
				r, perr := strconv.ParseFloat(v, 64)
				if perr != nil || !(r >= 0) {
					return nil, d.Errf("introspection_rate: %q is not a non-negative number of calls per second", v)
				}
				def.IntrospectionRate = r
			}
		case "introspection_burst", "max_introspection_flights":
			var v string
			if err = str(&v); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 0 {
					return nil, d.Errf("%s: %q is not a non-negative integer", field, v)
				}
				if field == "introspection_burst" {
					def.IntrospectionBurst = n
				} else {
					def.MaxIntrospectionFlights = n
				}
			}
		case "certificate_file":
			// Read at provision time, not here: the JSON keeps the path.
			err = str(&def.CertificateFile)
		case "audience", "audiences":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			def.Audiences = append(def.Audiences, args...)
		case "additional_issuers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			def.AdditionalIssuers = append(def.AdditionalIssuers, args...)
		case "allowed_algorithms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			def.AllowedAlgorithms = append(def.AllowedAlgorithms, args...)
		case "require_at_jwt":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			def.RequireATJWT = true
		case "insecure_discovery":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			def.InsecureDiscovery = true
		case "enable_oauth_app_creation", "enable_token_generation":
			// Developer keys (RFC 7591): docs/connectors.md.
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if field == "enable_oauth_app_creation" {
				def.EnableOAuthAppCreation = true
			} else {
				def.EnableTokenGeneration = true
			}
		case "registration_endpoint":
			err = str(&def.RegistrationEndpoint)
		case "registration_access_token":
			err = str(&def.RegistrationAccessToken)
		case "clock_skew":
			err = dur(&def.ClockSkew)
		case "introspection_cache_ttl":
			err = dur(&def.IntrospectionCacheTTL)
		case "negative_cache_ttl":
			err = dur(&def.NegativeCacheTTL)
		case "timeout":
			err = dur(&def.Timeout)
		case "jwks_refresh_interval":
			err = dur(&def.JWKSRefreshInterval)
		case "jwks_min_refresh_interval":
			err = dur(&def.JWKSMinRefreshInterval)
		case "claims":
			def.Claims = &keymanagers.ClaimMapping{}
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "subject":
					err = str(&def.Claims.Subject)
				case "consumer_key":
					err = str(&def.Claims.ConsumerKey)
				case "scopes":
					err = str(&def.Claims.Scopes)
				default:
					return nil, d.Errf("claims: unknown subdirective %q (expected subject, consumer_key or scopes)", d.Val())
				}
				if err != nil {
					return nil, err
				}
			}
		case "tls":
			def.TLS = &keymanagers.TLSConfig{}
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "ca_file":
					err = str(&def.TLS.CAFile)
				case "insecure_skip_verify":
					if d.NextArg() {
						return nil, d.ArgErr()
					}
					def.TLS.InsecureSkipVerify = true
				default:
					return nil, d.Errf("tls: unknown subdirective %q (expected ca_file or insecure_skip_verify)", d.Val())
				}
				if err != nil {
					return nil, err
				}
			}
		case "token_handling":
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "reference":
					var p string
					if err = str(&p); err == nil {
						def.TokenHandling = append(def.TokenHandling, keymanagers.TokenHandlingRule{Type: "reference", Pattern: p})
					}
				case "jwt":
					args := d.RemainingArgs()
					if len(args) != 2 {
						return nil, d.Err("token_handling jwt: expected CLAIM REGEX")
					}
					def.TokenHandling = append(def.TokenHandling, keymanagers.TokenHandlingRule{Type: "jwt", Claims: map[string]string{args[0]: args[1]}})
				default:
					return nil, d.Errf("token_handling: unknown rule %q (expected reference or jwt)", d.Val())
				}
				if err != nil {
					return nil, err
				}
			}
		default:
			// A connector's own connection field (domain, realm, ...).
			unknown = append(unknown, pending{field, d.Line()})
			args := d.RemainingArgs()
			switch len(args) {
			case 0:
				connFields[field] = true
			case 1:
				connFields[field] = args[0]
			default:
				connFields[field] = args
			}
		}
		if err != nil {
			return nil, err
		}
	}
	at := func(line int) string { return fmt.Sprintf("%s:%d", d.File(), line) }
	if connType == "" && len(unknown) > 0 {
		return nil, fmt.Errorf("%s: key manager %s: unknown subdirective %q (connector fields need a `type` first)", at(unknown[0].line), name, unknown[0].name)
	}
	if connType != "" {
		connFields["type"] = connType
		def.Connector = caddyconfig.JSON(connFields, nil)
		if _, err := connectorFor(def); err != nil {
			line := fieldLines["type"]
			for _, u := range unknown {
				if msg := err.Error(); strings.Contains(msg, `"`+u.name+`"`) || strings.Contains(msg, "."+u.name+" ") {
					line = u.line
				}
			}
			return nil, fmt.Errorf("%s: key manager %s: %v", at(line), name, err)
		}
	}
	conn, _ := connectorFor(def)
	// A secret given as one whole placeholder ({env.X}, {file.X}) is known
	// only at provision time, where it is validated once expanded; check
	// everything else now with a stand-in of the minimum length.
	check := *def
	if isWholePlaceholder(check.SharedSecret) {
		check.SharedSecret = strings.Repeat("x", 32)
	}
	if _, err := keymanagers.Prepare(check, conn); err != nil {
		var fe keymanagers.FieldErrors
		if fes, ok := err.(keymanagers.FieldErrors); ok {
			fe = fes
		}
		line := blockLine
		if len(fe) > 0 {
			f := strings.SplitN(strings.SplitN(fe[0].Field, "[", 2)[0], ".", 2)[0]
			if f == "audiences" {
				f = "audience"
			}
			if l, ok := fieldLines[f]; ok {
				line = l
			}
		}
		return nil, fmt.Errorf("%s: key manager %s: %v", at(line), name, err)
	}
	return def, nil
}

// isWholePlaceholder reports a value that is one Caddy placeholder, such
// as {env.HMAC_SECRET} or {file./run/secrets/hmac}.
func isWholePlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && !strings.ContainsAny(s[1:len(s)-1], "{}")
}
