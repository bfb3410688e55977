package keymanagers

import (
	"encoding/json"
	"strings"
)

// Redacted returns a copy whose secrets are replaced by Mask, safe to
// return or log.
func (d Definition) Redacted() Definition {
	if d.ClientSecret != "" {
		d.ClientSecret = Mask
	}
	if d.SharedSecret != "" {
		d.SharedSecret = Mask
	}
	if d.RegistrationAccessToken != "" {
		d.RegistrationAccessToken = Mask
	}
	if len(d.Connector) > 0 {
		var fields map[string]json.RawMessage
		if json.Unmarshal(d.Connector, &fields) == nil {
			changed := false
			for k := range fields {
				if IsSecretField(k) {
					fields[k] = json.RawMessage(`"` + Mask + `"`)
					changed = true
				}
			}
			if changed {
				d.Connector, _ = json.Marshal(fields)
			}
		}
	}
	return d
}

// IsSecretField reports connector fields that hold secrets (masked in every
// response, write-only in forms).
func IsSecretField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "secret") || strings.Contains(n, "password") || strings.Contains(n, "private")
}

// RestoreMaskedSecrets replaces masked secrets in d (as sent back by an
// admin client after a GET) with the values of prev, as WSO2 does. When d
// points the Key Manager at another endpoint (well_known_url, jwks_url,
// introspection_url, token_url, a connector field), loosens discovery
// (insecure_discovery turned on) or changes its tls trust, masked secrets are
// refused: a caller who cannot read the secret must not be able to send it
// to a host of their choice.
func (d Definition) RestoreMaskedSecrets(prev Definition) (Definition, error) {
	masked := d.ClientSecret == Mask || d.SharedSecret == Mask || d.RegistrationAccessToken == Mask
	var cur, old map[string]json.RawMessage
	if len(d.Connector) > 0 && json.Unmarshal(d.Connector, &cur) == nil {
		for k, v := range cur {
			if IsSecretField(k) && string(v) == `"`+Mask+`"` {
				masked = true
			}
		}
	}
	if !masked {
		return d, nil
	}
	if len(prev.Connector) > 0 {
		_ = json.Unmarshal(prev.Connector, &old)
	}
	if field := endpointChange(d, prev, cur, old); field != "" {
		return d, FieldErrors{{Field: field, Message: "changes where the Key Manager's secrets are sent: send client_secret (and every other secret) again instead of the mask"}}
	}
	if d.ClientSecret == Mask {
		d.ClientSecret = prev.ClientSecret
	}
	if d.SharedSecret == Mask {
		d.SharedSecret = prev.SharedSecret
	}
	if d.RegistrationAccessToken == Mask {
		d.RegistrationAccessToken = prev.RegistrationAccessToken
	}
	changed := false
	for k, v := range cur {
		if IsSecretField(k) && string(v) == `"`+Mask+`"` {
			if ov, ok := old[k]; ok {
				cur[k] = ov
				changed = true
			}
		}
	}
	if changed {
		d.Connector, _ = json.Marshal(cur)
	}
	return d, nil
}

// endpointChange names the first endpoint d changes against prev, or "".
func endpointChange(d, prev Definition, cur, old map[string]json.RawMessage) string {
	switch {
	case d.WellKnownURL != prev.WellKnownURL:
		return "well_known_url"
	case d.JWKSURL != prev.JWKSURL:
		return "jwks_url"
	case d.IntrospectionURL != prev.IntrospectionURL:
		return "introspection_url"
	case d.TokenURL != prev.TokenURL:
		return "token_url"
	case d.RegistrationEndpoint != prev.RegistrationEndpoint:
		return "registration_endpoint"
	case d.InsecureDiscovery && !prev.InsecureDiscovery:
		return "insecure_discovery" // discovery may now name http:// endpoints
	case (d.TLS == nil) != (prev.TLS == nil) || d.TLS != nil && *d.TLS != *prev.TLS:
		return "tls" // another trust store, or none, for the secret's way out
	}
	for k, v := range cur {
		if !IsSecretField(k) && string(old[k]) != string(v) {
			return "connector." + k
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok && !IsSecretField(k) {
			return "connector." + k
		}
	}
	return ""
}

// Mask replaces secrets in anything shown to a user.
const Mask = "********"
