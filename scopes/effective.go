package scopes

import "strings"

// Effective returns the effective scopes of a token, space-separated: the
// granted scopes, then the scopes in add that are not already there
// (duplicates removed, order stable: granted first, then add in order),
// minus every scope in deny. Entries of add and deny may themselves hold
// several space-separated scopes; empty entries are ignored.
//
// Deny removes scopes exactly, whatever the route's matching strategy:
// denying "orders" removes "orders", not "orders:read". The route check
// then applies the denial under its strategy ([Policy.CheckDenying]), so a
// granted "orders" cannot satisfy a denied "orders:delete". Scopes are
// separated by SP only; a token holding other white space is dropped.
//
// Adding is meant only for tokens that belong to the application itself
// (the caller decides, e.g. after matching the token's client id to an
// `application` block); denying applies to any token of the application.
// The result has single spaces and no leading or trailing space.
func Effective(granted string, add, deny []string) string {
	var out []string
	var seen map[string]struct{}
	denied := func(s string) bool {
		for _, d := range deny {
			for rest := d; ; {
				var tok string
				if tok, rest = nextToken(rest); tok == "" {
					break
				}
				if tok == s {
					return true
				}
			}
		}
		return false
	}
	push := func(s string) {
		if !ValidToken(s) || denied(s) {
			return
		}
		if len(out) < 16 {
			for _, o := range out {
				if o == s {
					return
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(out))
				for _, o := range out {
					seen[o] = struct{}{}
				}
			}
			if _, dup := seen[s]; dup {
				return
			}
			seen[s] = struct{}{}
		}
		out = append(out, s)
	}
	each := func(s string) {
		for rest := s; ; {
			var tok string
			if tok, rest = nextToken(rest); tok == "" {
				return
			}
			push(tok)
		}
	}
	each(granted)
	for _, a := range add {
		each(a)
	}
	return strings.Join(out, " ")
}
