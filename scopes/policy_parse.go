package scopes

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// parseMethod returns the canonical method or a message.
func parseMethod(m string) (string, string) {
	if m == "" {
		return "", "empty (want an HTTP method or *)"
	}
	if m == "*" {
		return m, ""
	}
	for i := 0; i < len(m); i++ {
		if !isMethodChar(m[i]) {
			return "", fmt.Sprintf("%q is not an HTTP method (want a token such as GET, or *)", m)
		}
	}
	return strings.ToUpper(m), ""
}

// isMethodChar reports RFC 9110 tchar, without '*' (reserved for "any").
func isMethodChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0
}

type patSeg struct {
	lit   string
	param bool
}

type pattern struct {
	segs     []patSeg // without the final wildcard
	wild     bool
	hasParam bool
	key      string // canonical: lower-cased, params as {}, e.g. /o/{}/*
}

// parsePattern parses a rule path or returns a message.
func parsePattern(p string) (pattern, string) {
	var pat pattern
	if p == "" {
		return pat, "empty (want a path starting with /)"
	}
	if p[0] != '/' {
		return pat, fmt.Sprintf("%q does not start with /", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; refused(c) {
			return pat, fmt.Sprintf("%s not allowed (write paths decoded; ; and \\ are refused in requests, so never match)", charDesc(c))
		}
	}
	if !utf8.ValidString(p) {
		return pat, "invalid UTF-8"
	}
	raw := strings.Split(p[1:], "/")
	var segs []string
	for _, s := range raw {
		if s != "" {
			segs = append(segs, s)
		}
	}
	var key strings.Builder
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "." || s == "..":
			return pat, fmt.Sprintf("dot segment %q not allowed", s)
		case s == "*":
			if !last {
				return pat, "* must be the last segment"
			}
			pat.wild = true
			key.WriteString("/*")
			continue
		case strings.Contains(s, "*"):
			return pat, fmt.Sprintf("* must be a whole last segment, not part of %q", s)
		case s[0] == '{':
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return pat, fmt.Sprintf("unterminated { in segment %q", s)
			}
			if end != len(s)-1 || strings.IndexByte(s[1:], '{') >= 0 {
				return pat, fmt.Sprintf("a {parameter} must be a whole segment, not %q", s)
			}
			if end == 1 {
				return pat, "empty {} parameter name"
			}
			pat.segs = append(pat.segs, patSeg{param: true})
			pat.hasParam = true
			key.WriteString("/{}")
			continue
		case strings.ContainsAny(s, "{}"):
			if strings.IndexByte(s, '{') >= 0 && strings.IndexByte(s, '}') < 0 {
				return pat, fmt.Sprintf("unterminated { in segment %q", s)
			}
			return pat, fmt.Sprintf("a {parameter} must be a whole segment, not %q", s)
		}
		lit := lowerASCII(s)
		pat.segs = append(pat.segs, patSeg{lit: lit})
		key.WriteString("/")
		key.WriteString(lit)
	}
	pat.key = key.String()
	if pat.key == "" {
		pat.key = "/"
	}
	return pat, ""
}

// charDesc names a byte in an error message.
func charDesc(c byte) string {
	if c < 0x80 {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// parseScopes validates and deduplicates a rule's scopes.
func parseScopes(in []string) ([]string, string) {
	if len(in) == 0 {
		return nil, "no scopes (a rule needs at least one)"
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s == "" {
			return nil, "empty scope"
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return nil, fmt.Sprintf("scope %q: %s not allowed (RFC 6749 scope-token)", s, charDesc(c))
			}
		}
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, ""
}
