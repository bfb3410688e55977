package scopes

import (
	"slices"
	"testing"
)

func TestParseClaimPath(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"single claim", "roles", []string{"roles"}, ""},
		{"keycloak realm roles", "realm_access.roles", []string{"realm_access", "roles"}, ""},
		{"keycloak client roles", "resource_access.my-client.roles", []string{"resource_access", "my-client", "roles"}, ""},
		{"escaped dot stays in the name", `https://example\.com/roles`, []string{"https://example.com/roles"}, ""},
		{"escaped dots then a nested key", `https://a\.b\.c/claims.groups`, []string{"https://a.b.c/claims", "groups"}, ""},
		{"escaped backslash", `a\\b.c`, []string{`a\b`, "c"}, ""},
		{"colons and slashes are ordinary", "urn:x/y", []string{"urn:x/y"}, ""},
		{"empty path is an error", "", nil, "claim path: empty"},
		{"leading dot is an empty segment", ".roles", nil, `claim path ".roles": empty segment`},
		{"trailing dot is an empty segment", "roles.", nil, `claim path "roles.": empty segment`},
		{"double dot is an empty segment", "a..b", nil, `claim path "a..b": empty segment`},
		{"lone dot is an empty segment", ".", nil, `claim path ".": empty segment`},
		{"trailing backslash is an error", `a\`, nil, `claim path "a\\": bad escape at byte 1 (want \. or \\)`},
		{"unknown escape is an error", `a\nb`, nil, `claim path "a\\nb": bad escape at byte 1 (want \. or \\)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClaimPath(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseClaimPath(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseClaimPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestClaimRequirement(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		values []string
		raw    string
		want   bool
	}{
		{"string equal to a value", "tier", []string{"gold", "silver"}, `"gold"`, true},
		{"string equal to the second value", "tier", []string{"gold", "silver"}, `"silver"`, true},
		{"string not among values", "tier", []string{"gold"}, `"bronze"`, false},
		{"string comparison is case-sensitive", "tier", []string{"gold"}, `"Gold"`, false},
		{"escaped JSON string is decoded", "tier", []string{"a/b"}, `"a\/b"`, true},
		{"unicode escape is decoded", "tier", []string{"é"}, `"\u00e9"`, true},
		{"array containing a value", "roles", []string{"admin"}, `["user","admin"]`, true},
		{"array without the value", "roles", []string{"admin"}, `["user","guest"]`, false},
		{"empty array", "roles", []string{"admin"}, `[]`, false},
		{"nested array is not flattened", "roles", []string{"admin"}, `[["admin"]]`, false},
		{"array of objects does not match", "roles", []string{"admin"}, `[{"name":"admin"}]`, false},
		{"array number element by JSON text", "ids", []string{"42"}, `[1, 42]`, true},
		{"number by JSON text", "level", []string{"3"}, `3`, true},
		{"number text must be identical", "level", []string{"3"}, `3.0`, false},
		{"negative number", "level", []string{"-1"}, `-1`, true},
		{"boolean true", "email_verified", []string{"true"}, `true`, true},
		{"boolean false does not match true", "email_verified", []string{"true"}, `false`, false},
		{"boolean in an array", "flags", []string{"false"}, `[true, false]`, true},
		{"string true is a string", "flag", []string{"true"}, `"true"`, true},
		{"null never matches", "tier", []string{"null"}, `null`, false},
		{"null element never matches", "roles", []string{"null"}, `[null]`, false},
		{"object value never matches", "tier", []string{"{}"}, `{}`, false},
		{"missing claim never matches", "tier", []string{"gold"}, ``, false},
		{"invalid JSON never matches", "tier", []string{"gold"}, `"gold`, false},
		{"invalid number never matches", "level", []string{"1x"}, `1x`, false},
		{"surrounding white space is ignored", "tier", []string{"gold"}, " \n\"gold\" ", true},
		{"keycloak realm roles", "realm_access.roles", []string{"api-admin"}, `{"roles":["offline_access","api-admin"]}`, true},
		{"keycloak realm roles without the role", "realm_access.roles", []string{"api-admin"}, `{"roles":["offline_access"]}`, false},
		{"keycloak client roles", "resource_access.my-client.roles", []string{"orders"}, `{"account":{"roles":["view"]},"my-client":{"roles":["orders"]}}`, true},
		{"client roles of another client do not count", "resource_access.my-client.roles", []string{"orders"}, `{"other":{"roles":["orders"]}}`, false},
		{"missing nested key", "realm_access.roles", []string{"a"}, `{"groups":["a"]}`, false},
		{"nested path through a string fails", "a.b", []string{"x"}, `"x"`, false},
		{"nested path through an array fails", "a.b", []string{"x"}, `[{"b":"x"}]`, false},
		{"nested path through null fails", "a.b", []string{"x"}, `null`, false},
		{"nested value that is a string", "address.country", []string{"FR"}, `{"country":"FR"}`, true},
		{"deep nesting", "a.b.c.d", []string{"v"}, `{"b":{"c":{"d":["v"]}}}`, true},
		{"dotted top-level claim name", `https://example\.com/roles`, []string{"admin"}, `["admin"]`, true},
		{"dotted nested key", `ext.app\.roles`, []string{"admin"}, `{"app.roles":"admin"}`, true},
		{"no values accepts nothing", "tier", nil, `"gold"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, err := ParseClaimPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			c := ClaimRequirement{Path: path, Values: tt.values}
			var raw []byte
			if tt.raw != "" {
				raw = []byte(tt.raw)
			}
			if got := c.SatisfiedBy(raw); got != tt.want {
				t.Fatalf("%s %q against %s = %v; want %v", tt.path, tt.values, tt.raw, got, tt.want)
			}
		})
	}
	t.Run("empty path accepts nothing", func(t *testing.T) {
		if (ClaimRequirement{Values: []string{"x"}}).SatisfiedBy([]byte(`"x"`)) {
			t.Fatal("satisfied")
		}
	})
}
