package caddymodule_test

import (
	"strings"
	"testing"
)

// TestDeveloperKeysCaddyfile: the developer-key subdirectives land in the
// JSON fields of the same names, and a bad combination or argument is
// refused at adapt time naming the field and the line.
func TestDeveloperKeysCaddyfile(t *testing.T) {
	const base = "well_known_url https://as.example.com/.well-known/openid-configuration\n"
	km, err := adaptKM(base + "enable_oauth_app_creation\nenable_token_generation\nregistration_endpoint https://as.example.com/register\nregistration_access_token {env.IAT}")
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for field, want := range map[string]any{"enable_oauth_app_creation": true, "enable_token_generation": true,
		"registration_endpoint": "https://as.example.com/register", "registration_access_token": "{env.IAT}"} {
		if km[field] != want {
			t.Errorf("%s = %v, want %v", field, km[field], want)
		}
	}
	bad := []struct {
		name, body string
		has        []string
	}{
		{"flag with a value", "enable_oauth_app_creation true", []string{"Caddyfile:"}},
		{"tokens without app creation", "enable_token_generation", []string{"enable_token_generation", "enable_oauth_app_creation"}},
		{"plain http registration", "enable_oauth_app_creation\nregistration_endpoint http://as.example.com/register", []string{"registration_endpoint", "https"}},
		{"endpoint without a value", "registration_endpoint", []string{"Caddyfile:"}},
		{"token without app creation", "registration_access_token iat", []string{"registration_access_token"}},
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
