package scopes

import (
	"fmt"
	"strings"
)

// Rule is one `scope METHOD PATH SCOPE...` line of a route.
type Rule struct {
	// Method is an HTTP method token (case-insensitive) or "*" for any.
	Method string
	// Path is an exact path, a template with {name} segments, or a prefix
	// ending in a "/*" segment; see the package documentation.
	Path string
	// Scopes lists the scopes that satisfy the rule; at least one. Each is
	// an RFC 6749 scope-token (printable ASCII without space, '"', '\').
	Scopes []string
	// Match is "any" (the default when empty: one scope suffices) or "all".
	Match string
}

// Config is the scope configuration of one route.
type Config struct {
	// Rules in declaration order; the order does not affect which rule wins.
	Rules []Rule
	// Unmatched is "allow" (the default when empty) or "deny": what to do
	// with a request no rule matches.
	Unmatched string
	// Strategy is "exact" (the default when empty), "hierarchic" or
	// "wildcard": how a granted scope satisfies a required one.
	Strategy string
}

// Decision is the outcome of [Policy.Check].
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Matched reports whether a rule matched; when false, Allowed is the
	// policy's unmatched setting.
	Matched bool
	// Rule is the matching rule as declared (nil when unmatched). It belongs
	// to the Policy: do not modify it.
	Rule *Rule
	// Required is the rule's scopes, duplicates removed: any one of them
	// satisfies a Match "any" rule, all of them a Match "all" rule. Use it
	// for WWW-Authenticate's scope="...". Nil when unmatched; read-only.
	Required []string
}

// RuleError is a compile error in one rule.
type RuleError struct {
	// Index is the rule's position in Config.Rules.
	Index int
	// Rule is "METHOD PATH" as declared.
	Rule string
	// Field is the faulty field: "method", "path", "scopes" or "match".
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("scope[%d] %q: %s: %s", e.Index, e.Rule, e.Field, e.Msg)
}

// Policy is a compiled, immutable Config, safe for concurrent use.
type Policy struct {
	rules    []compiledRule
	exact    map[string]slot // exact rules by canonical path
	root     *node           // templates and wildcards; nil when none
	allow    bool            // unmatched requests
	strategy strategy
}

type strategy uint8

const (
	strategyExact strategy = iota
	strategyHierarchic
	strategyWildcard
)

type compiledRule struct {
	rule   Rule
	method string // upper case, or "*"
	all    bool
	scopes []string
}

// slot holds the rules sharing one path pattern, at most one per method.
type slot []*compiledRule

// node is a segment trie node for template and wildcard rules.
type node struct {
	lit   map[string]*node
	param *node
	term  slot // template rules ending at this node
	wild  slot // wildcard rules whose prefix ends at this node
}

// Method ranks: which rule of a slot applies to a request method.
const (
	rankNone = iota
	rankAny
	rankGetForHead
	rankOwn
)

func methodRank(rule, req string) int {
	switch {
	case rule == "*":
		return rankAny
	case len(rule) == len(req) && strings.EqualFold(rule, req):
		return rankOwn
	case rule == "GET" && len(req) == 4 && strings.EqualFold(req, "HEAD"):
		return rankGetForHead
	}
	return rankNone
}

// pick returns the rule of s that applies best to method, or nil.
func (s slot) pick(method string) *compiledRule {
	var best *compiledRule
	bestRank := rankNone
	for _, c := range s {
		if r := methodRank(c.method, method); r > bestRank {
			best, bestRank = c, r
		}
	}
	return best
}

// Compile validates c and builds its index. Errors name the rule
// (*RuleError) or the faulty Config field; nothing falls back silently.
func Compile(c Config) (*Policy, error) {
	p := &Policy{exact: map[string]slot{}}
	switch c.Unmatched {
	case "", "allow":
		p.allow = true
	case "deny":
	default:
		return nil, fmt.Errorf("unmatched %q: unknown (want allow or deny)", c.Unmatched)
	}
	switch c.Strategy {
	case "", "exact":
		p.strategy = strategyExact
	case "hierarchic":
		p.strategy = strategyHierarchic
	case "wildcard":
		p.strategy = strategyWildcard
	default:
		return nil, fmt.Errorf("strategy %q: unknown (want exact, hierarchic or wildcard)", c.Strategy)
	}

	p.rules = make([]compiledRule, len(c.Rules))
	seen := map[string]int{} // method + " " + pattern key -> rule index
	for i, r := range c.Rules {
		fail := func(field, format string, args ...any) error {
			return &RuleError{Index: i, Rule: r.Method + " " + r.Path, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		method, msg := parseMethod(r.Method)
		if msg != "" {
			return nil, fail("method", "%s", msg)
		}
		pat, msg := parsePattern(r.Path)
		if msg != "" {
			return nil, fail("path", "%s", msg)
		}
		var all bool
		switch r.Match {
		case "", "any":
		case "all":
			all = true
		default:
			return nil, fail("match", "%q is unknown (want any or all)", r.Match)
		}
		scopes, msg := parseScopes(r.Scopes)
		if msg != "" {
			return nil, fail("scopes", "%s", msg)
		}
		key := method + " " + pat.key
		if j, dup := seen[key]; dup {
			prev := c.Rules[j]
			return nil, fail("path", "duplicates scope[%d] %q (same method and path)", j, prev.Method+" "+prev.Path)
		}
		seen[key] = i

		cr := &p.rules[i]
		cr.rule = r
		cr.rule.Scopes = append([]string(nil), r.Scopes...)
		cr.method, cr.all, cr.scopes = method, all, scopes
		p.insert(pat, cr)
	}
	return p, nil
}

func (p *Policy) insert(pat pattern, cr *compiledRule) {
	if !pat.wild && !pat.hasParam {
		p.exact[pat.key] = append(p.exact[pat.key], cr)
		return
	}
	if p.root == nil {
		p.root = &node{}
	}
	n := p.root
	for _, s := range pat.segs {
		if s.param {
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
			continue
		}
		if n.lit == nil {
			n.lit = map[string]*node{}
		}
		child := n.lit[s.lit]
		if child == nil {
			child = &node{}
			n.lit[s.lit] = child
		}
		n = child
	}
	if pat.wild {
		n.wild = append(n.wild, cr)
	} else {
		n.term = append(n.term, cr)
	}
}
