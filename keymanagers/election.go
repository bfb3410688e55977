package keymanagers

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
)

// electIntrospector picks the one Key Manager that introspects a token: the
// route's Key Managers in the route's order (else the tenant's, own then
// Global, in definition order), the first that can introspect and whose
// token handling rules claim the token. claims is nil for opaque tokens;
// for JWTs of an unknown issuer only an explicit jwt rule elects.
func (g *Gateway) electIntrospector(ctx context.Context, t *Tenant, route *Route, token string, claims map[string]json.RawMessage) (*KeyManager, error) {
	try := func(km *KeyManager) bool {
		if km == nil || !km.canIntrospect() {
			return false
		}
		if claims != nil {
			return km.intro.rules.handlesJWT(claims)
		}
		return km.intro.rules.handlesOpaque(token)
	}
	if route != nil && len(route.KeyManagers) > 0 {
		for _, n := range route.KeyManagers {
			if km := t.byName[n]; km != nil && km.def.IsEnabled() && try(km) {
				return km, nil
			}
		}
	} else {
		for _, km := range t.kms {
			if km.def.IsEnabled() && try(km) {
				return km, nil
			}
		}
	}
	if claims != nil {
		return nil, ErrUnknownIssuer
	}
	// Nobody introspects it: let a vendor explain why, if one can.
	for _, km := range t.kms {
		if route.accepts(km.def.Name) && km.def.IsEnabled() {
			if r, ok := km.connector.(OpaqueRefuser); ok {
				return nil, r.RefuseOpaque()
			}
		}
	}
	return nil, ErrOpaqueToken
}

// tokenRules are a Key Manager's compiled token handling rules.
type tokenRules struct {
	reference []*regexp.Regexp
	jwt       []map[string]*regexp.Regexp
}

func compileTokenRules(rules []TokenHandlingRule) (*tokenRules, error) {
	tr := &tokenRules{}
	for i, r := range rules {
		switch r.Type {
		case "reference":
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("token_handling[%d]: %v", i, err)
			}
			tr.reference = append(tr.reference, re)
		case "jwt":
			m := map[string]*regexp.Regexp{}
			for c, p := range r.Claims {
				re, err := regexp.Compile(p)
				if err != nil {
					return nil, fmt.Errorf("token_handling[%d].claims.%s: %v", i, c, err)
				}
				m[c] = re
			}
			tr.jwt = append(tr.jwt, m)
		}
	}
	return tr, nil
}

// handlesOpaque reports whether the rules elect this Key Manager for an
// opaque token: no rules at all, or a matching reference rule.
func (tr *tokenRules) handlesOpaque(token string) bool {
	if len(tr.reference) == 0 && len(tr.jwt) == 0 {
		return true
	}
	for _, re := range tr.reference {
		if re.MatchString(token) {
			return true
		}
	}
	return false
}

// handlesJWT reports whether a jwt rule matches the unverified claims (every
// claim regex of one rule must match the claim's string value).
func (tr *tokenRules) handlesJWT(claims map[string]json.RawMessage) bool {
	for _, rule := range tr.jwt {
		ok := true
		for c, re := range rule {
			v, isStr := claimString(claims[c])
			if !isStr || !re.MatchString(v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
