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
	if len(d.Connector) > 0 {
		var fields map[string]json.RawMessage
		if json.Unmarshal(d.Connector, &fields) == nil {
			changed := false
			for k := range fields {
				if isSecretField(k) {
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

// isSecretField reports connector fields that hold secrets.
func isSecretField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "secret") || strings.Contains(n, "password") || strings.Contains(n, "private")
}

// KeepMaskedSecrets replaces masked secrets in d (as sent back by an admin
// client after a GET) with the values from prev, as WSO2 does.
func (d Definition) KeepMaskedSecrets(prev Definition) Definition {
	if d.ClientSecret == Mask {
		d.ClientSecret = prev.ClientSecret
	}
	if d.SharedSecret == Mask {
		d.SharedSecret = prev.SharedSecret
	}
	if len(d.Connector) > 0 && len(prev.Connector) > 0 {
		var cur, old map[string]json.RawMessage
		if json.Unmarshal(d.Connector, &cur) == nil && json.Unmarshal(prev.Connector, &old) == nil {
			changed := false
			for k, v := range cur {
				if isSecretField(k) && string(v) == `"`+Mask+`"` {
					if ov, ok := old[k]; ok {
						cur[k] = ov
						changed = true
					}
				}
			}
			if changed {
				d.Connector, _ = json.Marshal(cur)
			}
		}
	}
	return d
}

// Mask replaces secrets in anything shown to a user.
const Mask = "********"
