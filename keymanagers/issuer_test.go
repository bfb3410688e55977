package keymanagers

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Two Key Managers of one tenant that discover the same issuer refuse its
// tokens on every request, but say so in the log once per snapshot, not
// once per request (a flood must not flood the log).
func TestResolve_AmbiguousIssuerRefusesEveryRequestAndLogsOncePerSnapshot(t *testing.T) {
	k1 := ecKey(t, "p256-a", "e1")
	ds := newDiscoServer(t, k1)
	f := newFixture(t)
	f.add(testTenant, Definition{Name: "one", WellKnownURL: ds.WellKnown()})
	f.add(testTenant, Definition{Name: "two", WellKnownURL: ds.WellKnown()})
	g := f.build()
	core, logs := observer.New(zapcore.DebugLevel)
	g.logger = zap.New(core)
	tok := mint(t, k1, claimsAt(ds.URL, f.clock.Now()), nil)

	for range 3 {
		_, err := f.auth(tok)
		checkErr(t, err, ErrAmbiguousIssuer)
	}
	if n := logs.FilterMessageSnippet("same discovered issuer").Len(); n != 1 {
		t.Fatalf("%d log entries for 3 refused requests, want 1", n)
	}
	if e := logs.All()[0]; e.Level != zapcore.ErrorLevel || e.ContextMap()["tenant"] != testTenant || e.ContextMap()["issuer"] != ds.URL {
		t.Fatalf("entry = %v %v", e.Level, e.ContextMap())
	}

	f.build() // a new snapshot (a configuration change) logs again, once
	for range 2 {
		_, err := f.auth(tok)
		checkErr(t, err, ErrAmbiguousIssuer)
	}
	if n := logs.FilterMessageSnippet("same discovered issuer").Len(); n != 2 {
		t.Fatalf("%d log entries after a new snapshot, want 2", n)
	}
}
