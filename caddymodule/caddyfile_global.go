package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"
	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// parseGlobalOption parses the `keymanagers` global option:
//
//	keymanagers {
//		cache_size    SIZE
//		max_ttl       DURATION
//		sync_interval DURATION
//		ca_dir        PATH        # files admin-API definitions may name as tls.ca_file
//		expose_claims CLAIM...
//		disable_metrics
//		backend_jwt { rotate_every DURATION }
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
		case "backend_jwt":
			keys, err := parseBackendJWTKeys(d)
			if err != nil {
				return nil, err
			}
			app.BackendJWT = keys
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
