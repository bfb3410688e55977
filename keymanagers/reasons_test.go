package keymanagers

import (
	"os"
	"strings"
	"testing"
)

// TestReasons_AreUniqueStableAndDocumented proves every denial has its own
// reason id, safe as a metric label, and a row in docs/troubleshooting.md.
func TestReasons_AreUniqueStableAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range Reasons() {
		if e.Reason == "" || seen[e.Reason] {
			t.Errorf("reason %q of %q is empty or repeated", e.Reason, e.Description)
		}
		seen[e.Reason] = true
		for _, c := range e.Reason {
			if !(c >= 'a' && c <= 'z' || c == '_') {
				t.Errorf("reason %q is not a lower-case identifier", e.Reason)
				break
			}
		}
		if !strings.Contains(string(doc), "| `"+e.Reason+"` |") {
			t.Errorf("docs/troubleshooting.md has no row for %q", e.Reason)
		}
	}
	if Classify(NewError(KindInvalid, "vendor")).Reason != ReasonConnectorRefused {
		t.Error("connector refusals have no reason")
	}
	if Classify(os.ErrClosed).Reason != ReasonInternal {
		t.Error("unclassified errors have no reason")
	}
}
