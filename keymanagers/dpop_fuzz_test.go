package keymanagers

import (
	"strings"
	"testing"
	"time"

	"github.com/kmgate/caddy-keymanager/internal/fakeidp"
)

// FuzzDPoPProof feeds arbitrary proofs to the parser and the request
// checks: never a panic, every refusal is ErrDPoPProof, and anything
// accepted has its jti, htm and htu.
func FuzzDPoPProof(f *testing.F) {
	k := ecKey(f, "p256-client", "")
	now := baseTime
	valid := fakeidp.DPoPProof(f, k, "GET", dpopURI, "tok", now, nil)
	f.Add(valid)
	f.Add(fakeidp.DPoPProof(f, edKey(f, "ed-client", ""), "POST", "https://api.example.com/x?y#z", "tok", now, map[string]any{"nonce": "n"}))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.")
	f.Add("..")
	f.Add("a.b.c.d.e")
	f.Add(strings.Repeat("e", 100) + "." + strings.Repeat("f", 100) + ".g")
	g := &Gateway{replay: newReplayCache(1024), nonces: newNonceSource(), now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := parseDPoPProof(proof)
		if err != nil {
			if Classify(err) != ErrDPoPProof {
				t.Fatalf("parse error %v is not ErrDPoPProof", err)
			}
			return
		}
		if p.jti == "" || p.htm == "" || p.htu == "" {
			t.Fatalf("accepted a proof without jti/htm/htu: %+v", p)
		}
		req := &Request{Token: "tok", Method: "GET", URI: dpopURI, Scheme: SchemeDPoP, DPoPProofs: []string{proof}}
		_, _ = g.checkDPoPProof(req, now)
	})
}
