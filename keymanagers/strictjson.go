package keymanagers

import (
	"encoding/json"
	"errors"
	"unsafe"
)

// decodeObject decodes a JSON object into its top-level members, matching
// names exactly (encoding/json's struct decoding folds case, which would let
// "ISS" stand in for "iss"; map keys are exact) and refusing duplicate
// member names (RFC 7515 5.2 allows either refusing or taking the last;
// refusing leaves no room for two parsers to disagree).
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		return nil, errors.New("not a JSON object")
	}
	if m, ok, dup := scanObject(b); dup {
		return nil, errors.New("duplicate member name")
	} else if ok {
		return m, nil
	}
	// Names with escapes or non-ASCII bytes: let encoding/json decode them
	// (it unescapes and replaces invalid UTF-8) and count the names.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	// The map keeps one value per (decoded) name: fewer entries than names
	// in the text means a duplicate.
	if n, ok := countMembers(b); !ok || n != len(m) {
		return nil, errors.New("duplicate member name")
	}
	return m, nil
}

// scanObject splits a valid JSON object (json.Valid already passed) into
// its members without copying: names alias b (which the caller never
// changes afterwards) and values are sub-slices of b. It gives up (ok
// false) on anything but an object, and on names with escapes or bytes
// outside ASCII, which need encoding/json's decoding; dup reports a
// repeated name.
func scanObject(b []byte) (m map[string]json.RawMessage, ok, dup bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, false
	}
	m = make(map[string]json.RawMessage, 16)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skipWS(b, i+1) == len(b), false
	}
	for i < len(b) {
		if b[i] != '"' {
			return nil, false, false
		}
		start := i + 1
		j := start
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' || b[j] >= 0x80 {
				return nil, false, false
			}
			j++
		}
		if j >= len(b) {
			return nil, false, false
		}
		name := unsafe.String(unsafe.SliceData(b[start:j]), j-start)
		if j == start {
			name = ""
		}
		i = skipWS(b, j+1)
		if i >= len(b) || b[i] != ':' {
			return nil, false, false
		}
		vs := skipWS(b, i+1)
		ve := valueEnd(b, vs)
		if ve < 0 {
			return nil, false, false
		}
		if _, seen := m[name]; seen {
			return nil, false, true
		}
		m[name] = json.RawMessage(b[vs:ve:ve])
		i = skipWS(b, ve)
		if i >= len(b) {
			return nil, false, false
		}
		if b[i] == '}' {
			return m, skipWS(b, i+1) == len(b), false
		}
		if b[i] != ',' {
			return nil, false, false
		}
		i = skipWS(b, i+1)
	}
	return nil, false, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the valid JSON value starting at i, or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				for j++; j < len(b) && b[j] != '"'; j++ {
					if b[j] == '\\' {
						j++
					}
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// countMembers counts the top-level member names of a JSON object that
// encoding/json has already accepted.
func countMembers(b []byte) (int, bool) {
	depth, n := 0, 0
	expectName := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			if depth == 1 && expectName {
				n++
				expectName = false
			}
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth == 1 && c == '{' {
				expectName = true
			}
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				expectName = true
			}
		}
	}
	return n, depth == 0
}
