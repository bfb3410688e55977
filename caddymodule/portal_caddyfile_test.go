package caddymodule_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
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

func TestPortalWithoutTheKeymanagersAppIsRefusedAtLoad(t *testing.T) {
	caddytest.AssertLoadError(t, `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	handle_path /portal/* {
		keymanager_portal
	}
}
`, "caddyfile", "the keymanager_portal handler needs the keymanagers app")
}
