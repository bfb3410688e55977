package caddymodule_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// goldenCoverageExempt are subdirectives that need not appear in a golden
// file, each with the reason.
var goldenCoverageExempt = map[string]string{}

// caddyfileParsers are the functions of caddyfile*.go whose subdirective
// names must each appear in a golden file.
var caddyfileParsers = []string{"parseGlobalOption", "parseApplication", "parseKeyManager", "UnmarshalCaddyfile", "unmarshalSenderConstraint", "parseBackendJWT", "parseBackendJWTKeys"}

// TestAdaptCoverageEveryDirectiveHasGoldenFile fails when a subdirective
// the Caddyfile parsers know (a `case "name"` label, or a `d.Val() ==
// "name"` test, in the functions above), a connector type or a connector
// field never appears in directive position in any
// testdata/caddyfile_adapt/*.caddyfiletest: a new directive needs a golden
// file that shows what it adapts to.
func TestAdaptCoverageEveryDirectiveHasGoldenFile(t *testing.T) {
	names := parserDirectiveNames(t, "caddyfile*.go")
	if len(names) < 40 {
		t.Fatalf("found only %d subdirective names in caddyfile*.go; is the parser lookup still right? %v", len(names), sortedKeys(names))
	}
	golden := goldenDirectives(t)

	var missing []string
	for n, fn := range names {
		if _, ok := goldenCoverageExempt[n]; ok {
			continue
		}
		if !golden.words[n] {
			missing = append(missing, n+" (in "+fn+")")
		}
	}

	mods := caddy.GetModules("keymanagers.connectors")
	if len(mods) == 0 {
		t.Fatal("no keymanagers.connectors modules registered")
	}
	for _, m := range mods {
		typ := m.ID.Name()
		if !golden.types[typ] {
			missing = append(missing, "type "+typ+" (connector)")
		}
		for _, f := range jsonFieldNames(reflect.TypeOf(m.New())) {
			if !golden.words[f] {
				missing = append(missing, f+" (field of connector "+typ+")")
			}
		}
	}

	for n := range goldenCoverageExempt {
		if _, ok := names[n]; !ok {
			t.Errorf("goldenCoverageExempt lists %q, which caddyfile*.go no longer parse: remove it", n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("these Caddyfile subdirectives appear in no testdata/caddyfile_adapt/*.caddyfiletest; add them to a golden file:\n\t%s",
			strings.Join(missing, "\n\t"))
	}
}

// parserDirectiveNames returns the string case labels and d.Val()
// comparisons of the parser functions of file, each with its function.
func parserDirectiveNames(t *testing.T, pattern string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no parser files match %s: %v", pattern, err)
	}
	fset := token.NewFileSet()
	var decls []ast.Decl
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		decls = append(decls, f.Decls...)
	}
	names := map[string]string{}
	found := map[string]bool{}
	add := func(fn string, e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(lit.Value)
		if err == nil && s != "" {
			names[s] = fn
		}
	}
	isVal := func(e ast.Expr) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok || len(call.Args) != 0 {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		return ok && sel.Sel.Name == "Val"
	}
	for _, decl := range decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		fn := fd.Name.Name
		wanted := false
		for _, w := range caddyfileParsers {
			wanted = wanted || w == fn
		}
		if !wanted {
			continue
		}
		found[fn] = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CaseClause:
				for _, e := range n.List {
					add(fn, e)
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					if isVal(n.X) {
						add(fn, n.Y)
					} else if isVal(n.Y) {
						add(fn, n.X)
					}
				}
			}
			return true
		})
	}
	for _, w := range caddyfileParsers {
		if !found[w] {
			t.Errorf("%s has no function %s: update caddyfileParsers", pattern, w)
		}
	}
	return names
}

// goldenWords are the words in directive position (first on a line, or
// right after an opening brace) of every golden Caddyfile, and the
// connector types named by `type NAME`.
type goldenWords struct {
	words map[string]bool
	types map[string]bool
}

func goldenDirectives(t *testing.T) goldenWords {
	t.Helper()
	files, err := filepath.Glob("../testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files found: %v", err)
	}
	g := goldenWords{words: map[string]bool{}, types: map[string]bool{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src, _, ok := strings.Cut(string(data), "----------")
		if !ok {
			t.Fatalf("%s: no ---------- separator", f)
		}
		toks, err := caddyfile.Tokenize([]byte(src), f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, tok := range toks {
			if i > 0 && tok.Line == toks[i-1].Line && toks[i-1].Text != "{" {
				continue
			}
			g.words[tok.Text] = true
			if tok.Text == "type" && i+1 < len(toks) && toks[i+1].Line == tok.Line {
				g.types[toks[i+1].Text] = true
			}
		}
	}
	return g
}

// jsonFieldNames lists the JSON names of a struct's fields, embedded
// structs included.
func jsonFieldNames(typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		sf := typ.Field(i)
		tag := sf.Tag.Get("json")
		if sf.Anonymous && tag == "" {
			out = append(out, jsonFieldNames(sf.Type)...)
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		out = append(out, name)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
