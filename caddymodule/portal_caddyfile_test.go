package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestPortalDirectiveRefusesArgumentsAndBlocks(t *testing.T) {
	cases := []struct{ name, directive, want string }{
		{"an argument", "keymanager_portal admin", "wrong argument count or unexpected line ending after 'admin', at Caddyfile:2"},
		{"a block", "keymanager_portal {\n\t\ttitle x\n\t}", `keymanager_portal takes no block (unknown subdirective "title"), at Caddyfile:3`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := ":8080 {\n\t" + c.directive + "\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("adapting\n%s\ngot error %v, want %q", src, err, c.want)
			}
		})
	}
}
