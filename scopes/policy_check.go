package scopes

import "strings"

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
