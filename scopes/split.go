package scopes

import (
	"strings"
	"unicode"
)

// Split is the one scope splitter, for JWT claims, introspection answers
// and connectors alike: RFC 6749 section 3.3 separates scope tokens by SP
// (0x20) only, so "read\u00a0admin" or "read\tadmin" is one (invalid)
// token, never "read" and "admin". Empty elements (double spaces) are
// dropped; elements that hold any other white space or control character
// are dropped too, so they can grant nothing.
func Split(s string) []string {
	out := make([]string, 0, strings.Count(s, " ")+1)
	for s != "" {
		var tok string
		if i := strings.IndexByte(s, ' '); i >= 0 {
			tok, s = s[:i], s[i+1:]
		} else {
			tok, s = s, ""
		}
		if ValidToken(tok) {
			out = append(out, tok)
		}
	}
	return out
}

// ValidToken reports whether s can be one scope token: not empty, and no
// white space or control character of any kind (RFC 6749: %x21 / %x23-5B
// / %x5D-7E, plus non-ASCII letters some IdPs use).
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
