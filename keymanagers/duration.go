package keymanagers

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads "30s" or integer nanoseconds from
// JSON and writes the string form.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\" or integer nanoseconds")
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// ParseDuration is the one duration parser of Key Manager definitions,
// whether they come from JSON, the admin API or the Caddyfile: Go's
// time.ParseDuration plus a "d" (24h) unit anywhere a unit may stand
// ("1d", "1.5d", "1d12h"), the spellings caddy.ParseDuration accepts.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, fmt.Errorf("invalid duration: longer than 1024 characters")
	}
	if strings.IndexByte(s, 'd') >= 0 {
		var b strings.Builder
		num := -1 // start of the number before the current position
		for i := 0; i < len(s); i++ {
			c := s[i]
			isNum := c >= '0' && c <= '9' || c == '.'
			switch {
			case c == 'd' && num >= 0:
				days, err := strconv.ParseFloat(s[num:i], 64)
				if err != nil || math.IsNaN(days) || math.IsInf(days, 0) || days > float64(math.MaxInt64)/float64(24*time.Hour) {
					return 0, fmt.Errorf("invalid duration %q", s)
				}
				b.WriteString(strconv.FormatFloat(days*24, 'f', -1, 64))
				b.WriteByte('h')
				num = -1
				continue
			case isNum && num < 0:
				num = i
			case !isNum && num >= 0:
				b.WriteString(s[num:i])
				num = -1
			}
			if !isNum {
				b.WriteByte(c)
			}
		}
		if num >= 0 {
			b.WriteString(s[num:])
		}
		s = b.String()
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}
