package scopes

import "unicode/utf8"

// NormalizePath turns an escaped request path (http.Request.URL.EscapedPath)
// into the canonical form rules are matched against, and reports whether
// the path is acceptable. Callers must deny the request when ok is false.
//
// It decodes percent-escapes exactly once (%2F becomes a separator and %2E
// a dot, so encoded separators and dots cannot dodge a rule), resolves `.`
// and `..` segments (never above the root), merges repeated slashes,
// removes a trailing slash (except for `/`), and lower-cases ASCII letters.
// The empty path is `/`.
//
// ok is false for: a path not starting with `/`; an invalid escape (`%`
// not followed by two hex digits); a `%` left after decoding (double
// encoding such as %252e); NUL and other control characters (0x00-0x1F,
// 0x7F); invalid UTF-8 (overlong forms of `/` and `.` included); `\`; and
// `;` (path parameters, which servlet containers strip and others keep).
//
// The output is idempotent: NormalizePath(out) == out, true. An already
// canonical path is returned as is, without allocating.
func NormalizePath(escaped string) (string, bool) {
	if escaped == "" {
		return "/", true
	}
	if escaped[0] != '/' {
		return "", false
	}
	if isCanonical(escaped) {
		return escaped, true
	}
	return normalizeSlow(escaped)
}

// refused reports bytes that make a (decoded) path unacceptable.
func refused(c byte) bool {
	return c < 0x20 || c == 0x7f || c == ';' || c == '\\' || c == '%'
}

// isCanonical reports whether s (starting with '/') is already the output
// of NormalizePath.
func isCanonical(s string) bool {
	n := len(s)
	if n == 1 {
		return true
	}
	if s[n-1] == '/' {
		return false
	}
	ascii := true
	seg := 1
	for i := 1; i <= n; i++ {
		if i == n || s[i] == '/' {
			switch s[seg:i] {
			case "", ".", "..":
				return false
			}
			seg = i + 1
			continue
		}
		c := s[i]
		switch {
		case refused(c), 'A' <= c && c <= 'Z':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func normalizeSlow(s string) (string, bool) {
	var decBuf, outBuf [256]byte
	dec := decBuf[:0]
	if len(s) > len(decBuf) {
		dec = make([]byte, 0, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			i += 2
		}
		if refused(c) {
			return "", false
		}
		dec = append(dec, c)
	}
	if !utf8.Valid(dec) {
		return "", false
	}

	out := outBuf[:0]
	if len(dec) > len(outBuf) {
		out = make([]byte, 0, len(dec))
	}
	for i := 0; i < len(dec); {
		j := i
		for j < len(dec) && dec[j] != '/' {
			j++
		}
		seg := dec[i:j]
		i = j + 1
		switch {
		case len(seg) == 0 || len(seg) == 1 && seg[0] == '.':
			// empty (repeated slash) or "." segment: nothing
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			k := len(out) - 1
			for k >= 0 && out[k] != '/' {
				k--
			}
			if k < 0 {
				k = 0 // already at the root
			}
			out = out[:k]
		default:
			out = append(out, '/')
			for _, c := range seg {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return "/", true
	}
	return string(out), true
}
