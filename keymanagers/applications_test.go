package keymanagers

import "testing"

// OwnedByClient decides whether application scopes may be added: only to
// the application's own (client-credentials) tokens, never to a user's.
func TestOwnedByClient_VendorMarkersDecideThenSubject(t *testing.T) {
	claims := func(kv ...string) []byte {
		var c [][2]string
		for i := 0; i+1 < len(kv); i += 2 {
			c = append(c, [2]string{kv[i], `"` + kv[i+1] + `"`})
		}
		return encodeEntry(&Principal{}, c)
	}
	cases := []struct {
		name         string
		sub, client  string
		introspected bool
		claims       []byte
		want         bool
	}{
		{"subject equals client id", "app-1", "app-1", false, nil, true},
		{"Auth0 machine-to-machine subject", "app-1@clients", "app-1", false, nil, true},
		{"user subject", "alice", "app-1", false, nil, false},
		{"no client id", "app-1", "", false, nil, false},
		{"no subject from a JWT is not enough", "", "app-1", false, nil, false},
		{"no subject from introspection (client-credentials opaque token)", "", "app-1", true, nil, true},
		{"WSO2 aut APPLICATION", "svc", "app-1", false, claims("aut", "APPLICATION"), true},
		{"WSO2 aut APPLICATION_USER wins over subject equals client id", "app-1", "app-1", false, claims("aut", "APPLICATION_USER"), false},
		{"Azure AD idtyp app", "oid-123", "app-1", false, claims("idtyp", "app"), true},
		{"Azure AD idtyp user wins over subject equals client id", "app-1", "app-1", false, claims("idtyp", "user"), false},
		{"Auth0 gty client-credentials", "whatever", "app-1", false, claims("gty", "client-credentials"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Principal
			if tc.claims != nil {
				if err := decodeEntry(tc.claims, &p); err != nil {
					t.Fatal(err)
				}
			}
			p.Subject, p.ClientID, p.introspected = tc.sub, tc.client, tc.introspected
			if got := p.OwnedByClient(); got != tc.want {
				t.Fatalf("OwnedByClient = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEntryFlags_NegativeReasonAndIntrospectedRoundTrip(t *testing.T) {
	for reason := byte(0); int(reason) < len(negativeReasons); reason++ {
		for _, intro := range []bool{false, true} {
			var q Principal
			if err := decodeEntry(encodeEntry(&Principal{negative: true, reason: reason, introspected: intro}, nil), &q); err != nil {
				t.Fatal(err)
			}
			if !q.negative || q.reason != reason || q.introspected != intro {
				t.Fatalf("reason %d introspected %v: got %+v", reason, intro, q)
			}
		}
	}
}
