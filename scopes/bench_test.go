package scopes

import (
	"fmt"
	"testing"
)

// benchRules returns n mixed rules: per resource rN an exact GET and POST,
// a GET template, a PUT template with two parameters and a wildcard.
func benchRules(n int) []Rule {
	out := make([]Rule, 0, n)
	for i := 0; len(out) < n; i++ {
		res := fmt.Sprintf("r%d", i)
		for _, r := range []Rule{
			{Method: "GET", Path: "/api/" + res, Scopes: []string{res + ":list"}},
			{Method: "POST", Path: "/api/" + res, Scopes: []string{res + ":write", "admin"}},
			{Method: "GET", Path: "/api/" + res + "/{id}", Scopes: []string{res + ":read", res + ":admin"}},
			{Method: "PUT", Path: "/api/" + res + "/{id}/sub/{sid}", Scopes: []string{res + ":write", "sub"}, Match: "all"},
			{Method: "*", Path: "/api/" + res + "/*", Scopes: []string{res + ":admin"}},
		} {
			if len(out) < n {
				out = append(out, r)
			}
		}
	}
	return out
}

func BenchmarkCheck500Rules(b *testing.B) {
	p, err := Compile(Config{Rules: benchRules(500)})
	if err != nil {
		b.Fatal(err)
	}
	const granted = "openid profile inventory:write orders:read r57:read"
	if d := p.Check("GET", "/api/r57/12345", granted); !d.Allowed || d.Rule.Path != "/api/r57/{id}" {
		b.Fatalf("unexpected decision %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Check("GET", "/api/r57/12345", granted)
	}
}

func BenchmarkCheck500RulesStrategies(b *testing.B) {
	for _, st := range []string{"exact", "hierarchic", "wildcard"} {
		p, err := Compile(Config{Rules: benchRules(500), Strategy: st})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ name, method, path string }{
			{"exact", "GET", "/api/r57"},
			{"template", "GET", "/api/r57/12345"},
			{"template2", "PUT", "/api/r57/1/sub/2"},
			{"wildcard", "DELETE", "/api/r57/1/2/3/4"},
			{"unmatched", "GET", "/other/path/x"},
		} {
			b.Run(st+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Check(c.method, c.path, "openid profile inventory:write orders:read r57:admin")
				}
			})
		}
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"canonical", "/api/r57/orders/12345/items"},
		{"dirty", "/API//r57/./Orders/%2e%2e/orders/12345/items/"},
		{"encoded", "/api/r57/orders%2F12345%2Fitems"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NormalizePath(c.in)
			}
		})
	}
}
