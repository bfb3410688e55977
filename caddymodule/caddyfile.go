package caddymodule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/scopes"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("keymanagers", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("keymanager", parseHandlerDirective)
	httpcaddyfile.RegisterDirectiveOrder("keymanager", httpcaddyfile.After, "basic_auth")
}

// parseGlobalOption parses the `keymanagers` global option:
//
//	keymanagers {
//		cache_size    SIZE
//		max_ttl       DURATION
//		sync_interval DURATION
//		ca_dir        PATH        # files admin-API definitions may name as tls.ca_file
//		expose_claims CLAIM...
//		disable_metrics
//		global NAME { KM }
//		tenant NAME {
//			key_manager NAME { KM }
//		}
//	}
//
// The option may appear once; a KM block is described at parseKeyManager.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the keymanagers global option may appear only once")
	}
	app := new(App)
	var placed []placedKM // for cross-definition checks with line numbers
	d.Next()              // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "cache_size":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<40 {
				return nil, d.Errf("cache_size: %q is not a size such as 256MiB", v)
			}
			app.CacheSize = int64(n)
		case "max_ttl", "sync_interval":
			field := d.Val()
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: %q is not a positive duration", field, v)
			}
			if field == "max_ttl" {
				app.MaxTTL = caddy.Duration(dur)
			} else {
				app.SyncInterval = caddy.Duration(dur)
			}
		case "ca_dir":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.CADir = v
		case "disable_metrics":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.DisableMetrics = true
		case "expose_claims":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			app.ExposeClaims = append(app.ExposeClaims, args...)
		case "global":
			if !d.NextArg() {
				return nil, d.Err("global: expected a Key Manager name")
			}
			name := d.Val()
			line := d.Line()
			def, err := parseKeyManager(d, name)
			if err != nil {
				return nil, err
			}
			app.Global = append(app.Global, def)
			placed = append(placed, placedKM{tenant: keymanagers.GlobalTenant, def: def, file: d.File(), line: line})
		case "tenant":
			if !d.NextArg() {
				return nil, d.Err("tenant: expected a tenant name")
			}
			tname := d.Val()
			if tname == keymanagers.GlobalTenant {
				return nil, d.Errf("tenant name %q is reserved for Global Key Managers; use `global NAME { ... }`", tname)
			}
			if !keymanagers.ValidName(tname) {
				return nil, d.Errf("tenant name %q is not valid: use 1-64 characters of a-z, 0-9, '.', '_' or '-'", tname)
			}
			if app.Tenants == nil {
				app.Tenants = map[string]*TenantConfig{}
			}
			if _, dup := app.Tenants[tname]; dup {
				return nil, d.Errf("tenant %q is defined twice", tname)
			}
			t := &TenantConfig{}
			app.Tenants[tname] = t
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if d.Val() == "application" {
					ap, err := parseApplication(d)
					if err != nil {
						return nil, err
					}
					for _, prev := range t.Applications {
						if prev.ID == ap.ID {
							return nil, d.Errf("tenant %s: application %q is defined twice", tname, ap.ID)
						}
					}
					t.Applications = append(t.Applications, ap)
					continue
				}
				if d.Val() != "key_manager" {
					return nil, d.Errf("tenant %s: unknown subdirective %q (expected key_manager or application)", tname, d.Val())
				}
				if !d.NextArg() {
					return nil, d.Err("key_manager: expected a name")
				}
				name := d.Val()
				line := d.Line()
				def, err := parseKeyManager(d, name)
				if err != nil {
					return nil, err
				}
				t.KeyManagers = append(t.KeyManagers, def)
				placed = append(placed, placedKM{tenant: tname, def: def, file: d.File(), line: line})
			}
		default:
			return nil, d.Errf("keymanagers: unknown subdirective %q", d.Val())
		}
	}
	if err := checkPlaced(app, placed); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "keymanagers", Value: caddyconfig.JSON(app, nil)}, nil
}

type placedKM struct {
	tenant string
	def    *keymanagers.Definition
	file   string
	line   int
}

// checkPlaced applies the registry's visibility rules
// (keymanagers.CheckVisibility) with file and line in every message.
func checkPlaced(app *App, placed []placedKM) error {
	var list []keymanagers.Placement
	for _, p := range placed {
		def := *p.def
		if conn, err := connectorFor(p.def); err == nil {
			_ = conn.Derive(&def)
		}
		pl := keymanagers.Placement{Tenant: p.tenant, Name: p.def.Name, Pos: fmt.Sprintf("%s:%d", p.file, p.line)}
		if def.IsEnabled() && def.Issuer != "" {
			pl.Issuers = append([]string{def.Issuer}, def.AdditionalIssuers...)
		}
		list = append(list, pl)
	}
	tenants := make([]string, 0, len(app.Tenants))
	for n := range app.Tenants {
		tenants = append(tenants, n)
	}
	return keymanagers.CheckVisibility(tenants, list)
}

// parseApplication parses
//
//	application ID {
//		key_manager NAME
//		client_id   ID
//		scopes      SCOPE...
//		deny_scopes SCOPE...
//		subscriptions API...
//	}
func parseApplication(d *caddyfile.Dispenser) (*keymanagers.Application, error) {
	if !d.NextArg() {
		return nil, d.Err("application: expected an id")
	}
	ap := &keymanagers.Application{ID: d.Val()}
	line := d.Line()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for n := d.Nesting(); d.NextBlock(n); {
		field := d.Val()
		switch field {
		case "key_manager", "client_id":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if field == "key_manager" {
				ap.KeyManager = v
			} else {
				ap.ClientID = v
			}
		case "scopes", "deny_scopes", "subscriptions":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			switch field {
			case "scopes":
				ap.Scopes = append(ap.Scopes, args...)
			case "deny_scopes":
				ap.DenyScopes = append(ap.DenyScopes, args...)
			default:
				ap.Subscriptions = append(ap.Subscriptions, args...)
			}
		default:
			return nil, d.Errf("application %s: unknown subdirective %q (expected key_manager, client_id, scopes, deny_scopes or subscriptions)", ap.ID, field)
		}
	}
	if err := ap.Validate(); err != nil {
		return nil, fmt.Errorf("%s:%d: application %s: %v", d.File(), line, ap.ID, err)
	}
	return ap, nil
}

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
//		jwks_url URL
//		certificate_file PATH     # read into certificate_pem at provision
//		shared_secret SECRET      # enables HS256/384/512
//		introspection_url URL
//		client_id ID
//		client_secret SECRET
//		introspection_auth client_secret_basic|client_secret_post|bearer|none
//		token_url URL             # for introspection_auth bearer
//		token_type_hint HINT|none
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
	if _, err := keymanagers.Prepare(*def, conn); err != nil {
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

func oneArg(d *caddyfile.Dispenser) (string, error) {
	field := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: expected a value", field)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: expected one value, got more", field)
	}
	return v, nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile parses the `keymanager` directive:
//
//	keymanager {
//		tenant NAME|PLACEHOLDER
//		key_managers NAME...
//		forward_claim CLAIM HEADER
//		keep_token
//		max_token_size SIZE
//		realm REALM
//		scope METHOD PATH SCOPE... [{ match any|all }]
//		scope_strategy exact|hierarchic|wildcard
//		unmatched allow|deny
//		api NAME
//		require_subscription
//		require_claim CLAIM_PATH VALUE...
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Tenant = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tenant":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			h.Tenant = v
		case "key_managers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.KeyManagers = append(h.KeyManagers, args...)
		case "forward_claim":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("forward_claim: expected CLAIM HEADER")
			}
			if !validHeaderName(args[1]) || strings.EqualFold(args[1], "Authorization") {
				return d.Errf("forward_claim: %q is not a header name that can be set", args[1])
			}
			h.ForwardClaim = append(h.ForwardClaim, ForwardClaim{Claim: args[0], Header: args[1]})
		case "keep_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.KeepToken = true
		case "max_token_size":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<20 {
				return d.Errf("max_token_size: %q is not a size between 1B and 1MiB", v)
			}
			h.MaxTokenSize = int(n)
		case "realm":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			h.Realm = v
		case "scope":
			args := d.RemainingArgs()
			if len(args) < 3 {
				return d.Err("scope: expected METHOD PATH SCOPE...")
			}
			rule := ScopeRule{Method: args[0], Path: args[1], Scopes: args[2:]}
			for n := d.Nesting(); d.NextBlock(n); {
				if d.Val() != "match" {
					return d.Errf("scope: unknown option %q (expected match any|all)", d.Val())
				}
				v, err := oneArg(d)
				if err != nil {
					return err
				}
				rule.Match = v
			}
			h.Scope = append(h.Scope, rule)
		case "scope_strategy", "unmatched", "api":
			field := d.Val()
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			switch field {
			case "scope_strategy":
				h.ScopeStrategy = v
			case "unmatched":
				h.Unmatched = v
			default:
				h.API = v
			}
		case "require_subscription":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireSubscription = true
		case "require_claim":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Err("require_claim: expected CLAIM_PATH VALUE...")
			}
			if _, err := scopes.ParseClaimPath(args[0]); err != nil {
				return d.Errf("require_claim: %v", err)
			}
			h.RequireClaim = append(h.RequireClaim, ClaimRequirement{Claim: args[0], Values: args[1:]})
		default:
			return d.Errf("keymanager: unknown subdirective %q", d.Val())
		}
	}
	if h.Tenant == "" {
		return d.Err("keymanager: tenant is required")
	}
	if _, err := keymanagers.CompileRoute(h.routeConfig()); err != nil {
		return d.Errf("keymanager: %v", err)
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
