package caddymodule_test

import (
	"strings"
	"testing"
)

// TestIntrospectionBudgetCaddyfile: introspection_rate, introspection_burst
// and max_introspection_flights are Key Manager subdirectives that land in
// the JSON fields of the same names, and bad values are refused at adapt
// time with the field named.
func TestIntrospectionBudgetCaddyfile(t *testing.T) {
	const base = "issuer https://as.example.com\nintrospection_url https://as.example.com/introspect\nclient_id gw\nclient_secret s\ntoken_validation introspection\n"
	ok := []struct {
		name  string
		body  string
		field string
		want  float64
	}{
		{"integer rate", "introspection_rate 20", "introspection_rate", 20},
		{"fractional rate", "introspection_rate 0.5", "introspection_rate", 0.5},
		{"burst", "introspection_burst 250", "introspection_burst", 250},
		{"flight cap", "max_introspection_flights 8", "max_introspection_flights", 8},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			km, err := adaptKM(base + tc.body)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if got, _ := km[tc.field].(float64); got != tc.want {
				t.Fatalf("%s = %v, want %v", tc.field, km[tc.field], tc.want)
			}
		})
	}

	bad := []struct {
		name, body string
		has        []string
	}{
		{"rate not a number", "introspection_rate fast", []string{"introspection_rate", `"fast"`}},
		{"negative rate", "introspection_rate -1", []string{"introspection_rate"}},
		{"NaN rate", "introspection_rate NaN", []string{"introspection_rate"}},
		{"rate above the bound", "introspection_rate 1e7", []string{"introspection_rate"}},
		{"rate without a value", "introspection_rate", []string{"introspection_rate"}},
		{"burst not an integer", "introspection_burst 1.5", []string{"introspection_burst", `"1.5"`}},
		{"negative burst", "introspection_burst -3", []string{"introspection_burst"}},
		{"burst above the bound", "introspection_burst 2000000", []string{"introspection_burst"}},
		{"negative flight cap", "max_introspection_flights -1", []string{"max_introspection_flights"}},
		{"flight cap above the bound", "max_introspection_flights 20000", []string{"max_introspection_flights"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptKM(base + tc.body)
			if err == nil {
				t.Fatal("adapted without error")
			}
			for _, h := range tc.has {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q does not mention %q", err, h)
				}
			}
		})
	}
}
