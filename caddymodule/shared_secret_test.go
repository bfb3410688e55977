package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestSharedSecret_PlaceholderIsCheckedOnceExpanded proves a whole
// {env.X} shared_secret adapts (its value is known only at provision
// time), is held to the 32-byte minimum when provisioned, and that a
// short literal with a '{' inside gets no exemption at adapt time.
func TestSharedSecret_PlaceholderIsCheckedOnceExpanded(t *testing.T) {
	src := func(secret string) string {
		return "{\n\tkeymanagers {\n\t\ttenant acme {\n\t\t\tkey_manager hmac {\n\t\t\t\tissuer https://hmac.acme.test\n\t\t\t\tshared_secret " +
			secret + "\n\t\t\t\tallowed_algorithms HS256\n\t\t\t}\n\t\t}\n\t}\n}\n"
	}
	adapt := func(s string) ([]byte, error) {
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(s), map[string]any{"filename": "Caddyfile"})
		return out, err
	}
	if _, err := adapt(src("short{x}")); err == nil || !strings.Contains(err.Error(), "shared_secret") || !strings.Contains(err.Error(), "Caddyfile:") {
		t.Fatalf("a 8-byte literal secret with a brace: %v; want an adapt error naming the file and shared_secret", err)
	}
	out, err := adapt(src("{env.KMGATE_TEST_HMAC_SECRET}"))
	if err != nil {
		t.Fatalf("adapting a whole-placeholder secret: %v", err)
	}
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"expanded to 31 bytes is refused", strings.Repeat("s", 31), false},
		{"unset (expands to nothing) is refused", "", false},
		{"expanded to 32 bytes is accepted", strings.Repeat("s", 32), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KMGATE_TEST_HMAC_SECRET", tt.value)
			err := validateJSON(out)
			if tt.ok && err != nil {
				t.Fatalf("provisioning: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "shared_secret")) {
				t.Fatalf("provisioning: %v; want an error naming shared_secret", err)
			}
			if err != nil && tt.value != "" && strings.Contains(err.Error(), tt.value) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}
