package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/scopes"
)

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
//		dpop required|allowed|off
//		dpop_nonce
//		external_origin ORIGIN
//		resource URL
//		backend_jwt { ... }   # see parseBackendJWT
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
		case "backend_jwt":
			if err := h.parseBackendJWT(d); err != nil {
				return err
			}
		default:
			if handled, err := h.unmarshalSenderConstraint(d); handled { // dpop.go
				if err != nil {
					return err
				}
				continue
			}
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
