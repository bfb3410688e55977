package scopes

import "strings"

// isSpace reports the separator of a granted scope string: SP only, as in
// RFC 6749 section 3.3 and [Split].
func isSpace(c byte) bool { return c == ' ' }

// nextToken returns the first scope of s and what follows it; tok is empty
// when s holds no more scopes.
func nextToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

// grants reports whether one of the granted scopes satisfies required.
func grants(st strategy, granted, required string) bool {
	for rest := granted; ; {
		var tok string
		tok, rest = nextToken(rest)
		if tok == "" {
			return false
		}
		if tok == required {
			return true
		}
		switch st {
		case strategyHierarchic:
			if hierarchicGrants(tok, required) {
				return true
			}
		case strategyWildcard:
			if wildcardGrants(tok, required) {
				return true
			}
		}
	}
}

// isScopeSep reports the segment separators of hierarchic and wildcard
// scopes.
func isScopeSep(c byte) bool { return c == '.' || c == ':' || c == '/' }

// hierarchicGrants: required is g, a separator, then anything.
func hierarchicGrants(g, required string) bool {
	return len(required) > len(g) && isScopeSep(required[len(g)]) && strings.HasPrefix(required, g)
}

// wildcardGrants: g has `*` segments and at least one literal segment; a
// middle `*` matches one non-empty segment of required, a final `*` one or
// more segments; everything else, separators included, must be equal.
func wildcardGrants(g, required string) bool {
	if strings.IndexByte(g, '*') < 0 || !hasWildAndLiteral(g) {
		return false
	}
	r := required
	for {
		end := 0
		for end < len(g) && !isScopeSep(g[end]) {
			end++
		}
		seg := g[:end]
		if seg == "*" {
			if end == len(g) {
				// final star: one or more segments, the first non-empty
				return r != "" && !isScopeSep(r[0])
			}
			k := 0
			for k < len(r) && !isScopeSep(r[k]) {
				k++
			}
			if k == 0 {
				return false
			}
			r = r[k:]
		} else {
			if !strings.HasPrefix(r, seg) {
				return false
			}
			r = r[len(seg):]
			if end == len(g) {
				return r == ""
			}
		}
		// g[end] is a separator; required must have the same one here.
		if r == "" || r[0] != g[end] {
			return false
		}
		g, r = g[end+1:], r[1:]
	}
}

// hasWildAndLiteral reports whether g has a whole `*` segment and a
// non-empty segment other than `*`.
func hasWildAndLiteral(g string) bool {
	wild, lit := false, false
	for len(g) > 0 {
		end := 0
		for end < len(g) && !isScopeSep(g[end]) {
			end++
		}
		switch g[:end] {
		case "*":
			wild = true
		case "":
		default:
			lit = true
		}
		if end == len(g) {
			break
		}
		g = g[end+1:]
	}
	return wild && lit
}
