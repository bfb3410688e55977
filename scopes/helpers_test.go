package scopes

import (
	"strings"
	"testing"
)

// rule builds a Rule from "METHOD PATH SCOPE..."; a trailing "all" word
// after "|" sets Match: "GET /x a b | all".
func rule(spec string) Rule {
	match := ""
	if i := strings.Index(spec, "|"); i >= 0 {
		match = strings.TrimSpace(spec[i+1:])
		spec = spec[:i]
	}
	f := strings.Fields(spec)
	return Rule{Method: f[0], Path: f[1], Scopes: f[2:], Match: match}
}

func rules(specs ...string) []Rule {
	out := make([]Rule, len(specs))
	for i, s := range specs {
		out[i] = rule(s)
	}
	return out
}

func mustCompile(t testing.TB, c Config) *Policy {
	t.Helper()
	p, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// ruleID names the winning rule of a decision: "METHOD PATH" as declared,
// or "-" when unmatched.
func ruleID(d Decision) string {
	if d.Rule == nil {
		return "-"
	}
	return d.Rule.Method + " " + d.Rule.Path
}
