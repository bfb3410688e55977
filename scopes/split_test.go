package scopes

import (
	"reflect"
	"testing"
)

// TestSplit_SeparatesOnSpaceOnly proves scope strings split on SP only:
// another white space never separates two grants (it makes one invalid
// token, dropped).
func TestSplit_SeparatesOnSpaceOnly(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"read write", []string{"read", "write"}},
		{"read  write ", []string{"read", "write"}},
		{"read\u00a0admin", []string{}},
		{"read\tadmin write", []string{"write"}},
		{"read\nadmin", []string{}},
		{"read\u2003admin", []string{}},
		{"orders:read api://x/.default", []string{"orders:read", "api://x/.default"}},
		{"", []string{}},
	} {
		if got := Split(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
