package scopes

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// A brute-force reference of rule selection: it scans every rule and
// compares specificity explicitly, as the package documentation states it.
// The indexed Policy must always pick the same rule.

type refRule struct {
	method string
	segs   []string // lower-case literals, or "{}" for a parameter
	wild   bool
	scope  string
}

type refSpec struct {
	class  int // 2 exact, 1 template, 0 wildcard
	depth  int
	lits   int
	kinds  []bool // true = literal, per segment
	method int
}

func (a refSpec) better(b refSpec) bool {
	if a.class != b.class {
		return a.class > b.class
	}
	if a.class == 0 && a.depth != b.depth {
		return a.depth > b.depth
	}
	if a.lits != b.lits {
		return a.lits > b.lits
	}
	for i := range a.kinds {
		if a.kinds[i] != b.kinds[i] {
			return a.kinds[i]
		}
	}
	return a.method > b.method
}

func refMethodRank(rule, req string) int {
	req = strings.ToUpper(req)
	switch {
	case rule == "*":
		return 1
	case rule == req:
		return 3
	case rule == "GET" && req == "HEAD":
		return 2
	}
	return 0
}

func refSelect(rs []refRule, method, path string) string {
	var segs []string
	if path != "/" {
		segs = strings.Split(path[1:], "/")
	}
	best, bestScope := refSpec{class: -1}, ""
	for _, r := range rs {
		mr := refMethodRank(r.method, method)
		if mr == 0 {
			continue
		}
		if r.wild && len(segs) < len(r.segs) || !r.wild && len(segs) != len(r.segs) {
			continue
		}
		spec := refSpec{class: 2, depth: len(r.segs), method: mr}
		match := true
		for i, s := range r.segs {
			if s == "{}" {
				spec.kinds = append(spec.kinds, false)
				spec.class = 1
				continue
			}
			if s != segs[i] {
				match = false
				break
			}
			spec.kinds = append(spec.kinds, true)
			spec.lits++
		}
		if !match {
			continue
		}
		if r.wild {
			spec.class = 0
		}
		if best.class < 0 || spec.better(best) {
			best, bestScope = spec, r.scope
		}
	}
	return bestScope
}

// randomPolicy builds up to n distinct random rules from a small alphabet,
// so that overlaps are frequent.
func randomPolicy(r *rand.Rand, n int) ([]Rule, []refRule) {
	lits := []string{"a", "b", "c"}
	methods := []string{"GET", "POST", "HEAD", "*"}
	seen := map[string]bool{}
	var rules []Rule
	var refs []refRule
	for i := 0; i < n; i++ {
		depth := r.Intn(4)
		var segs, spelled []string
		for j := 0; j < depth; j++ {
			if r.Intn(3) == 0 {
				segs = append(segs, "{}")
				spelled = append(spelled, fmt.Sprintf("{p%d}", r.Intn(3)))
			} else {
				l := lits[r.Intn(len(lits))]
				segs = append(segs, l)
				if r.Intn(4) == 0 {
					l = strings.ToUpper(l)
				}
				spelled = append(spelled, l)
			}
		}
		wild := r.Intn(3) == 0
		m := methods[r.Intn(len(methods))]
		key := m + " /" + strings.Join(segs, "/") + fmt.Sprint(wild)
		if seen[key] {
			continue
		}
		seen[key] = true
		p := "/" + strings.Join(spelled, "/")
		if wild {
			p = strings.TrimSuffix(p, "/") + "/*"
		}
		scope := fmt.Sprintf("s%d", i)
		rules = append(rules, Rule{Method: m, Path: p, Scopes: []string{scope}})
		refs = append(refs, refRule{method: m, segs: segs, wild: wild, scope: scope})
	}
	return rules, refs
}

func randomPath(r *rand.Rand) string {
	n := r.Intn(6)
	if n == 0 {
		return "/"
	}
	segs := make([]string, n)
	for i := range segs {
		segs[i] = []string{"a", "b", "c", "d"}[r.Intn(4)]
	}
	return "/" + strings.Join(segs, "/")
}

func checkAgainstReference(t *testing.T, seed int64) {
	r := rand.New(rand.NewSource(seed))
	rules, refs := randomPolicy(r, 5+r.Intn(40))
	p, err := Compile(Config{Rules: rules})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for i := 0; i < 100; i++ {
		method := []string{"GET", "POST", "HEAD", "PUT", "get"}[r.Intn(5)]
		path := randomPath(r)
		want := refSelect(refs, method, path)
		d := p.Check(method, path, "")
		got := ""
		if d.Matched {
			got = d.Required[0]
		}
		if got != want {
			t.Fatalf("seed %d: %s %s: policy picked %q (%s), reference %q\nrules: %v", seed, method, path, got, ruleID(d), want, rules)
		}
	}
}

func TestCheckAgreesWithBruteForceReference(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprintf("random policy %d picks the same rules as the reference", seed), func(t *testing.T) {
			checkAgainstReference(t, seed)
		})
	}
}

func FuzzCheckAgreesWithReference(f *testing.F) {
	for _, s := range []int64{0, 1, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) { checkAgainstReference(t, seed) })
}
