package scopes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ClaimRequirement is `require_claim PATH VALUE...`: the claim at Path must
// hold one of Values.
type ClaimRequirement struct {
	// Path is the claim path from [ParseClaimPath]: Path[0] is the
	// top-level claim (the one to project from the token), the rest walks
	// nested JSON objects.
	Path []string
	// Values are the accepted values; an empty list accepts nothing.
	Values []string
}

// ParseClaimPath splits a dot path such as `realm_access.roles` or
// `resource_access.my-client.roles` into its segments. A claim name that
// contains a dot (Auth0 namespaced claims such as
// `https://example.com/roles`) is written with `\.`: `https://example\.com/roles`;
// `\\` is a backslash. Empty segments, a trailing `\` and any other escape
// are errors.
func ParseClaimPath(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("claim path: empty")
	}
	var segs []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '.' && s[i+1] != '\\') {
				return nil, fmt.Errorf("claim path %q: bad escape at byte %d (want \\. or \\\\)", s, i)
			}
			i++
			cur.WriteByte(s[i])
		case '.':
			if cur.Len() == 0 {
				return nil, fmt.Errorf("claim path %q: empty segment", s)
			}
			segs = append(segs, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("claim path %q: empty segment", s)
	}
	return append(segs, cur.String()), nil
}

// SatisfiedBy reports whether the requirement holds, given raw, the JSON
// value of the top-level claim Path[0] (nil or empty when the token lacks
// it). The remaining path segments are looked up in nested JSON objects;
// the value found satisfies when it is a string equal to one of Values, or
// an array one of whose elements does. Numbers and booleans compare by
// their JSON text as written in the token (`42` matches "42", `42.0` does
// not; `true` matches "true"). null, objects, nested arrays, a missing path
// or invalid JSON never satisfy.
func (c ClaimRequirement) SatisfiedBy(raw []byte) bool {
	if len(c.Path) == 0 || len(c.Values) == 0 {
		return false
	}
	cur := raw
	for _, key := range c.Path[1:] {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil || obj == nil {
			return false
		}
		v, ok := obj[key]
		if !ok {
			return false
		}
		cur = v
	}
	cur = bytes.TrimSpace(cur)
	if len(cur) == 0 {
		return false
	}
	if cur[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(cur, &elems); err != nil {
			return false
		}
		for _, e := range elems {
			if c.scalarMatches(e) {
				return true
			}
		}
		return false
	}
	return c.scalarMatches(cur)
}

// scalarMatches compares a JSON string, number or boolean with Values.
func (c ClaimRequirement) scalarMatches(v []byte) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return false
		}
		return slices.Contains(c.Values, s)
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if !json.Valid(v) {
			return false
		}
		return slices.Contains(c.Values, string(v))
	}
	return false
}
