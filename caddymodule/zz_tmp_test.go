package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestZZPrintAdapt(t *testing.T) {
	src, _ := os.ReadFile(os.Getenv("CF"))
	got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "x"})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, warnings)
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, got, "", "\t")
	fmt.Println(pretty.String())
}
