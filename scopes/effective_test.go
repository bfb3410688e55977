package scopes

import (
	"fmt"
	"strings"
	"testing"
)

func TestEffective(t *testing.T) {
	tests := []struct {
		name      string
		granted   string
		add, deny []string
		want      string
	}{
		{"granted alone is returned", "a b c", nil, nil, "a b c"},
		{"empty everything is empty", "", nil, nil, ""},
		{"SP runs are normalised", "  a   b ", nil, nil, "a b"},
		{"only SP separates: tokens with a tab or newline are dropped", "a \t b\n c\u00a0d e", nil, nil, "a e"},
		{"duplicate granted scopes are removed", "a b a c b", nil, nil, "a b c"},
		{"added scopes follow granted ones", "a b", []string{"c", "d"}, nil, "a b c d"},
		{"added scope already granted is not repeated", "a b", []string{"b", "c"}, nil, "a b c"},
		{"added duplicates are removed", "a", []string{"c", "c", "b", "c"}, nil, "a c b"},
		{"added entries may hold several scopes", "a", []string{"b c", " d "}, nil, "a b c d"},
		{"empty added entries are ignored", "a", []string{"", " "}, nil, "a"},
		{"adding to an empty grant", "", []string{"x", "y"}, nil, "x y"},
		{"denied granted scope is removed", "a b c", nil, []string{"b"}, "a c"},
		{"denied added scope is removed", "a", []string{"b", "c"}, []string{"c"}, "a b"},
		{"deny wins over add", "a", []string{"b"}, []string{"b"}, "a"},
		{"deny removes every copy", "b a b", nil, []string{"b"}, "a"},
		{"deny entries may hold several scopes", "a b c d", nil, []string{"b d"}, "a c"},
		{"deny is exact, not hierarchic", "orders orders:read", nil, []string{"orders"}, "orders:read"},
		{"deny is exact, not wildcard", "orders:* orders:read", nil, []string{"orders:*"}, "orders:read"},
		{"denying an absent scope changes nothing", "a b", nil, []string{"z"}, "a b"},
		{"deny everything gives empty", "a b", []string{"c"}, []string{"a", "b", "c"}, ""},
		{"scopes are case-sensitive for dedup", "a A", []string{"a"}, nil, "a A"},
		{"scopes are case-sensitive for deny", "a A", nil, []string{"A"}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Effective(tt.granted, tt.add, tt.deny); got != tt.want {
				t.Fatalf("Effective(%q, %q, %q) = %q; want %q", tt.granted, tt.add, tt.deny, got, tt.want)
			}
		})
	}
	// Many scopes (the map path of deduplication).
	for _, n := range []int{15, 16, 17, 40, 200} {
		t.Run(fmt.Sprintf("%d scopes with duplicates keep first occurrences in order", n), func(t *testing.T) {
			var granted, want []string
			for i := 0; i < n; i++ {
				granted = append(granted, fmt.Sprintf("s%d", i), fmt.Sprintf("s%d", i/2))
			}
			seen := map[string]bool{}
			for _, s := range granted {
				if !seen[s] && s != "s3" {
					want = append(want, s)
				}
				seen[s] = true
			}
			add := []string{"s1", "new", fmt.Sprintf("s%d", n-1), "new"}
			want = append(want, "new")
			got := Effective(strings.Join(granted, " "), add, []string{"s3"})
			if got != strings.Join(want, " ") {
				t.Fatalf("got  %q\nwant %q", got, strings.Join(want, " "))
			}
		})
	}
}
