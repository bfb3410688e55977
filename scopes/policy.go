package scopes

import (
	"fmt"
	"strings"
	"unicode/utf8"
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

// parseMethod returns the canonical method or a message.
func parseMethod(m string) (string, string) {
	if m == "" {
		return "", "empty (want an HTTP method or *)"
	}
	if m == "*" {
		return m, ""
	}
	for i := 0; i < len(m); i++ {
		if !isMethodChar(m[i]) {
			return "", fmt.Sprintf("%q is not an HTTP method (want a token such as GET, or *)", m)
		}
	}
	return strings.ToUpper(m), ""
}

// isMethodChar reports RFC 9110 tchar, without '*' (reserved for "any").
func isMethodChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0
}

type patSeg struct {
	lit   string
	param bool
}

type pattern struct {
	segs     []patSeg // without the final wildcard
	wild     bool
	hasParam bool
	key      string // canonical: lower-cased, params as {}, e.g. /o/{}/*
}

// parsePattern parses a rule path or returns a message.
func parsePattern(p string) (pattern, string) {
	var pat pattern
	if p == "" {
		return pat, "empty (want a path starting with /)"
	}
	if p[0] != '/' {
		return pat, fmt.Sprintf("%q does not start with /", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; refused(c) {
			return pat, fmt.Sprintf("%s not allowed (write paths decoded; ; and \\ are refused in requests, so never match)", charDesc(c))
		}
	}
	if !utf8.ValidString(p) {
		return pat, "invalid UTF-8"
	}
	raw := strings.Split(p[1:], "/")
	var segs []string
	for _, s := range raw {
		if s != "" {
			segs = append(segs, s)
		}
	}
	var key strings.Builder
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "." || s == "..":
			return pat, fmt.Sprintf("dot segment %q not allowed", s)
		case s == "*":
			if !last {
				return pat, "* must be the last segment"
			}
			pat.wild = true
			key.WriteString("/*")
			continue
		case strings.Contains(s, "*"):
			return pat, fmt.Sprintf("* must be a whole last segment, not part of %q", s)
		case s[0] == '{':
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return pat, fmt.Sprintf("unterminated { in segment %q", s)
			}
			if end != len(s)-1 || strings.IndexByte(s[1:], '{') >= 0 {
				return pat, fmt.Sprintf("a {parameter} must be a whole segment, not %q", s)
			}
			if end == 1 {
				return pat, "empty {} parameter name"
			}
			pat.segs = append(pat.segs, patSeg{param: true})
			pat.hasParam = true
			key.WriteString("/{}")
			continue
		case strings.ContainsAny(s, "{}"):
			if strings.IndexByte(s, '{') >= 0 && strings.IndexByte(s, '}') < 0 {
				return pat, fmt.Sprintf("unterminated { in segment %q", s)
			}
			return pat, fmt.Sprintf("a {parameter} must be a whole segment, not %q", s)
		}
		lit := lowerASCII(s)
		pat.segs = append(pat.segs, patSeg{lit: lit})
		key.WriteString("/")
		key.WriteString(lit)
	}
	pat.key = key.String()
	if pat.key == "" {
		pat.key = "/"
	}
	return pat, ""
}

// charDesc names a byte in an error message.
func charDesc(c byte) string {
	if c < 0x80 {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// parseScopes validates and deduplicates a rule's scopes.
func parseScopes(in []string) ([]string, string) {
	if len(in) == 0 {
		return nil, "no scopes (a rule needs at least one)"
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s == "" {
			return nil, "empty scope"
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return nil, fmt.Sprintf("scope %q: %s not allowed (RFC 6749 scope-token)", s, charDesc(c))
			}
		}
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, ""
}

// Check decides a request. method is the request method (compared
// case-insensitively; HEAD also uses GET rules, see the package
// documentation); normalizedPath must be the output of [NormalizePath]
// (deny the request when that reports false: Check does not normalise);
// granted is the token's space-separated scopes. A nil Policy has no rules
// and allows everything. Check does not allocate and does not scan the
// rules: it looks the path up in an exact-path map and a segment trie.
func (p *Policy) Check(method, normalizedPath, granted string) Decision {
	return p.CheckDenying(method, normalizedPath, granted, nil)
}

// CheckDenying is [Policy.Check] for a caller whose application denies
// some scopes: a required scope that a denied scope would grant under the
// policy's strategy does not count as granted, whatever the token holds.
// So a denial wins under every strategy: denying "orders:delete" is not
// undone by a granted "orders" (hierarchic) or "orders:*" (wildcard), and
// under those strategies denying "orders" denies "orders:read" too.
// Entries of denied are single scope tokens.
func (p *Policy) CheckDenying(method, normalizedPath, granted string, denied []string) Decision {
	if p == nil {
		return Decision{Allowed: true}
	}
	c := p.lookup(method, normalizedPath)
	if c == nil {
		return Decision{Allowed: p.allow}
	}
	return Decision{
		Allowed:  p.satisfied(c, granted, denied),
		Matched:  true,
		Rule:     &c.rule,
		Required: c.scopes,
	}
}

// candidate is the best trie match found so far.
type candidate struct {
	rule  *compiledRule
	wild  bool
	depth int // segments before the wildcard
	lits  int // literal segments
}

func (p *Policy) lookup(method, path string) *compiledRule {
	if s, ok := p.exact[path]; ok {
		if c := s.pick(method); c != nil {
			return c
		}
	}
	if p.root == nil {
		return nil
	}
	rest := path
	if len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	var best candidate
	walk(p.root, rest, 0, 0, method, &best)
	return best.rule
}

// walk searches the trie depth first, literal child before parameter
// child, so that among equally specific matches the first found is the one
// whose first differing segment is literal; later ones replace it only
// when strictly more specific.
func walk(n *node, rest string, depth, lits int, method string, best *candidate) {
	if len(n.wild) > 0 && (best.rule == nil || best.wild &&
		(depth > best.depth || depth == best.depth && lits > best.lits)) {
		if c := n.wild.pick(method); c != nil {
			*best = candidate{rule: c, wild: true, depth: depth, lits: lits}
		}
	}
	if rest == "" {
		if len(n.term) > 0 && (best.rule == nil || best.wild || lits > best.lits) {
			if c := n.term.pick(method); c != nil {
				*best = candidate{rule: c, depth: depth, lits: lits}
			}
		}
		return
	}
	seg, next := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		seg, next = rest[:i], rest[i+1:]
	}
	if n.lit != nil {
		if child := n.lit[seg]; child != nil {
			walk(child, next, depth+1, lits+1, method, best)
		}
	}
	if n.param != nil && seg != "" {
		walk(n.param, next, depth+1, lits, method, best)
	}
}

func (p *Policy) satisfied(c *compiledRule, granted string, denied []string) bool {
	has := func(r string) bool {
		if !grants(p.strategy, granted, r) {
			return false
		}
		for _, d := range denied {
			if grants(p.strategy, d, r) {
				return false
			}
		}
		return true
	}
	if c.all {
		for _, r := range c.scopes {
			if !has(r) {
				return false
			}
		}
		return true
	}
	for _, r := range c.scopes {
		if has(r) {
			return true
		}
	}
	return false
}
