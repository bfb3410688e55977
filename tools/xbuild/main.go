// Command xbuild builds Caddy with the plugins named in xcaddy.json, using
// xcaddy: `go run ./tools/xbuild` (what `make build` does).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

type manifest struct {
	CaddyVersion  string `json:"caddy_version"`
	XcaddyVersion string `json:"xcaddy_version"`
	Output        string `json:"output"`
	Plugins       []struct {
		Module  string `json:"module"`
		Version string `json:"version"`
		Replace string `json:"replace"`
	} `json:"plugins"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "xbuild:", err)
		os.Exit(1)
	}
}

func run() error {
	b, err := os.ReadFile("xcaddy.json")
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("xcaddy.json: %v", err)
	}
	if m.CaddyVersion == "" || m.XcaddyVersion == "" || m.Output == "" {
		return fmt.Errorf("xcaddy.json: caddy_version, xcaddy_version and output are required")
	}
	out, err := filepath.Abs(m.Output)
	if err != nil {
		return err
	}
	args := []string{"run", "github.com/caddyserver/xcaddy/cmd/xcaddy@" + m.XcaddyVersion,
		"build", m.CaddyVersion, "--output", out}
	for _, p := range m.Plugins {
		w := p.Module
		if p.Version != "" {
			w += "@" + p.Version
		}
		if p.Replace != "" {
			abs, err := filepath.Abs(p.Replace)
			if err != nil {
				return err
			}
			w += "=" + abs
		}
		args = append(args, "--with", w)
	}
	fmt.Fprintln(os.Stderr, "xbuild: go", args)
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "XCADDY_SKIP_CLEANUP=0")
	return cmd.Run()
}
