package keymanagers

import "testing"

// Tokens signed with the same keys as access tokens that are recognisably
// something else (ID, logout, refresh tokens) are refused even when the Key
// Manager names no audience and does not require at+jwt: Keycloak, Auth0
// and WSO2 sign their ID tokens with the access-token keys.
func TestJWT_RecognisableNonAccessTokensAreRefused(t *testing.T) {
	k := rsaKey(t, "rsa-a", "k1", "RS256")
	f := newFixture(t, k)
	f.add(testTenant, f.def("idp"))
	f.build()
	cases := []struct {
		name    string
		changes map[string]any
		want    *Error
	}{
		{"Keycloak access token (typ Bearer) passes", map[string]any{"typ": "Bearer"}, nil},
		{"Keycloak ID token (typ ID) is refused", map[string]any{"typ": "ID"}, ErrNotAccessToken},
		{"typ is compared without case", map[string]any{"typ": "id"}, ErrNotAccessToken},
		{"Keycloak refresh token (typ Refresh) is refused", map[string]any{"typ": "Refresh"}, ErrNotAccessToken},
		{"Keycloak offline token (typ Offline) is refused", map[string]any{"typ": "Offline"}, ErrNotAccessToken},
		{"Keycloak logout token (typ Logout) is refused", map[string]any{"typ": "Logout"}, ErrNotAccessToken},
		{"OIDC ID token (nonce and at_hash) is refused", map[string]any{"nonce": "n-1", "at_hash": "abc"}, ErrNotAccessToken},
		{"nonce alone (some IdPs copy it to access tokens) passes", map[string]any{"nonce": "n-1"}, nil},
		{"at_hash alone passes", map[string]any{"at_hash": "abc"}, nil},
		{"back-channel logout token (events) is refused", map[string]any{"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}, ErrNotAccessToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := mint(t, k, with(f.claims(), tc.changes), nil)
			p, err := f.auth(tok)
			checkErr(t, err, tc.want)
			if tc.want == nil && p == nil {
				t.Fatal("no principal for an accepted token")
			}
		})
	}
}
