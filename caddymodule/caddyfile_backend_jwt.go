package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kmgate/caddy-keymanager/keymanagers/backendjwt"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("keymanager_backend_jwks", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		j := new(BackendJWKS)
		return j, j.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("keymanager_backend_jwks", httpcaddyfile.Before, "respond")
}

// parseBackendJWT parses the handler's option:
//
//	backend_jwt {
//		header        HEADER            # default X-JWT-Assertion
//		issuer        ISSUER            # required
//		audience      AUD...
//		ttl           DURATION          # default 5m, at least 30s
//		algorithm     RS256|ES256|EdDSA # default RS256
//		claims        CLAIM...
//		claim_mapping CLAIM NAME        # WSO2 claimMapping: CLAIM goes out as NAME
//	}
//
// Checks that need the rest of the config (a forward_claim with the same
// header, ttl against rotate_every, reserved claim names) run at
// provisioning.
func (h *Handler) parseBackendJWT(d *caddyfile.Dispenser) error {
	if h.BackendJWT != nil {
		return d.Err("backend_jwt: may appear only once")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	b := &BackendJWT{}
	for n := d.Nesting(); d.NextBlock(n); {
		field := d.Val()
		switch field {
		case "header", "issuer", "ttl", "algorithm":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			switch field {
			case "header":
				if !validHeaderName(v) || strings.EqualFold(v, "Authorization") {
					return d.Errf("backend_jwt: header: %q is not a header name that can be set", v)
				}
				b.Header = v
			case "issuer":
				b.Issuer = v
			case "ttl":
				dur, err := caddy.ParseDuration(v)
				if err != nil {
					return d.Errf("backend_jwt: ttl: %q is not a duration", v)
				}
				if dur < backendjwt.MinTTL {
					return d.Errf("backend_jwt: ttl: %v is too short (at least %v)", dur, backendjwt.MinTTL)
				}
				b.TTL = caddy.Duration(dur)
			default:
				if _, err := backendjwt.ParseAlgorithm(v); err != nil {
					return d.Errf("backend_jwt: algorithm: %v", err)
				}
				b.Algorithm = v
			}
		case "audience", "claims":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if field == "audience" {
				b.Audience = append(b.Audience, args...)
			} else {
				b.Claims = append(b.Claims, args...)
			}
		case "claim_mapping":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("backend_jwt: claim_mapping: expected CLAIM NAME")
			}
			if b.ClaimMapping == nil {
				b.ClaimMapping = map[string]string{}
			}
			if _, dup := b.ClaimMapping[args[0]]; dup {
				return d.Errf("backend_jwt: claim_mapping: %q is mapped twice", args[0])
			}
			b.ClaimMapping[args[0]] = args[1]
		default:
			return d.Errf("backend_jwt: unknown option %q (expected header, issuer, audience, ttl, algorithm, claims or claim_mapping)", field)
		}
	}
	if b.Issuer == "" {
		return d.Err("backend_jwt: issuer is required")
	}
	h.BackendJWT = b
	return nil
}

// parseBackendJWTKeys parses the global option's block:
//
//	backend_jwt {
//		rotate_every DURATION   # default 24h, at least 10m
//	}
func parseBackendJWTKeys(d *caddyfile.Dispenser) (*BackendJWTKeys, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	k := &BackendJWTKeys{}
	for n := d.Nesting(); d.NextBlock(n); {
		if d.Val() != "rotate_every" {
			return nil, d.Errf("backend_jwt: unknown option %q (expected rotate_every)", d.Val())
		}
		v, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < backendjwt.MinRotateEvery {
			return nil, d.Errf("backend_jwt: rotate_every: %q is not a duration of at least %v", v, backendjwt.MinRotateEvery)
		}
		k.RotateEvery = caddy.Duration(dur)
	}
	return k, nil
}
