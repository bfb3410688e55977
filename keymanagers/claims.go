package keymanagers

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/kmgate/caddy-keymanager/scopes"
)

// checkClaims validates exp, nbf, iat and aud, and returns exp.
func (km *KeyManager) checkClaims(claims map[string]json.RawMessage, now time.Time) (int64, error) {
	skew := int64(time.Duration(km.def.ClockSkew) / time.Second)
	n := now.Unix()
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return 0, ErrNoExpiry
	}
	if n > exp+skew {
		return 0, ErrExpired
	}
	if raw, present := claims["nbf"]; present {
		nbf, ok := numericDate(raw)
		if !ok {
			return 0, detailed(ErrMalformedToken, "nbf is not a NumericDate")
		}
		if nbf > n+skew {
			return 0, ErrNotYetValid
		}
	}
	if raw, present := claims["iat"]; present {
		iat, ok := numericDate(raw)
		if !ok {
			return 0, detailed(ErrMalformedToken, "iat is not a NumericDate")
		}
		if iat > n+skew {
			return 0, ErrIssuedInFuture
		}
	}
	if km.audiences != nil {
		auds, ok := stringOrList(claims["aud"], false)
		if !ok {
			return 0, detailed(ErrMalformedToken, "aud is neither a string nor a list of strings")
		}
		if !km.audienceMatches(auds) {
			return 0, ErrWrongAudience
		}
	}
	return exp + skew, nil
}

func (km *KeyManager) claimNames() ClaimMapping {
	var m ClaimMapping
	if km.def.Claims != nil {
		m = *km.def.Claims
	}
	return m
}

func (km *KeyManager) subject(claims map[string]json.RawMessage) string {
	name := km.claimNames().Subject
	if name == "" {
		name = "sub"
	}
	s, _ := claimString(claims[name])
	return s
}

// clientID reads the consumer key: the configured claim, then azp, then
// client_id.
func (km *KeyManager) clientID(claims map[string]json.RawMessage) string {
	for _, name := range []string{km.claimNames().ConsumerKey, "azp", "client_id"} {
		if name == "" {
			continue
		}
		if s, ok := claimString(claims[name]); ok && s != "" {
			return s
		}
	}
	return ""
}

// scopes reads the configured scope claim, else scope, else scp; each may
// be a space-separated string or an array.
func (km *KeyManager) scopes(claims map[string]json.RawMessage) []string {
	names := []string{"scope", "scp"}
	if c := km.claimNames().Scopes; c != "" {
		names = []string{c}
	}
	for _, n := range names {
		if raw, ok := claims[n]; ok {
			l, ok := stringOrList(raw, true)
			if !ok {
				return nil
			}
			return cleanScopes(l)
		}
	}
	return nil
}

// cleanScopes drops empty elements and elements with white space (an
// array element "a b" must not grant b).
func cleanScopes(l []string) []string {
	out := l[:0]
	for _, s := range l {
		if scopes.ValidToken(s) {
			out = append(out, s)
		}
	}
	return out
}

// issuerOf reads iss from decoded claims.
func issuerOf(claims map[string]json.RawMessage) (string, error) {
	raw, ok := claims["iss"]
	if !ok {
		return "", detailed(ErrUnknownIssuer, "no iss claim")
	}
	var iss string
	if err := json.Unmarshal(raw, &iss); err != nil {
		return "", detailed(ErrMalformedToken, "iss is not a string")
	}
	return iss, nil
}

// numericDate reads a JWT NumericDate. Strings, negative, fractional
// beyond int64 range and non-numbers are refused.
func numericDate(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false // strings, null, booleans, arrays, objects
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e15 {
		return 0, false
	}
	return int64(f), true
}

// stringOrList reads a claim that may be a string or an array of strings.
// A space-separated string is split when split is true.
func stringOrList(raw json.RawMessage, split bool) ([]string, bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, true
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false
		}
		if split {
			return scopes.Split(s), true
		}
		return []string{s}, true
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, false
	}
	return l, true
}

// claimString reads a claim as a string: strings as they are, numbers and
// booleans in their JSON form, anything else not at all.
func claimString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true
}

// audienceMatches reports whether one of auds is among the Key Manager's
// audiences (always true when it names none). JWTs and introspection
// answers are checked with it alike.
func (km *KeyManager) audienceMatches(auds []string) bool {
	if km.audiences == nil {
		return true
	}
	for _, a := range auds {
		if _, ok := km.audiences[a]; ok {
			return true
		}
	}
	return false
}

// IsRefreshTokenType reports a token type (token_type, token_use,
// tokenName) that names a refresh token. The introspection path and the
// connectors use it alike.
func IsRefreshTokenType(t string) bool {
	switch strings.ToLower(t) {
	case "refresh_token", "refresh", "refreshtoken":
		return true
	}
	return false
}

// notAccessToken recognises tokens signed with the same keys as access
// tokens that are not access tokens: Keycloak's payload typ (ID, Refresh,
// Logout, Offline; access tokens say Bearer), an OIDC ID token (nonce and
// at_hash) and a logout token (events, OIDC Back-Channel Logout / RFC
// 8417). Without an audience or require_at_jwt they would otherwise pass.
func notAccessToken(claims map[string]json.RawMessage) bool {
	if t, ok := claimString(claims["typ"]); ok && notAccessTokenType(t) {
		return true
	}
	_, nonce := claims["nonce"]
	_, atHash := claims["at_hash"]
	if nonce && atHash {
		return true
	}
	_, events := claims["events"]
	return events
}

// notAccessTokenType reports a payload (or introspection answer) typ that
// names a token other than an access token. Keycloak answers typ "ID" or
// "Refresh" when its own ID or refresh tokens are introspected.
func notAccessTokenType(t string) bool {
	switch strings.ToLower(t) {
	case "id", "refresh", "logout", "offline", "id_token", "refresh_token", "logout+jwt":
		return true
	}
	return false
}
