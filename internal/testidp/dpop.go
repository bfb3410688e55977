package testidp

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TokenDPoP gets a DPoP-bound access token (RFC 9449) for OIDCClientID
// with the client_credentials grant: proof is the client's DPoP proof for
// POST TokenURL (see fakeidp.DPoPProof). It returns the token and the
// token_type the provider answered (DPoP for a bound token).
func (o *OIDC) TokenDPoP(t testing.TB, scope, resource, proof string) (token, tokenType string) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	req, err := http.NewRequest(http.MethodPost, o.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("testidp: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	basicAuth(req, OIDCClientID, OIDCClientSecret)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("testidp: oidc-provider DPoP token request: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("testidp: oidc-provider DPoP token response: %v", err)
	}
	doc := decodeObject(t, "oidc-provider DPoP token", resp.StatusCode, body)
	tokenType, _ = doc["token_type"].(string)
	return accessToken(t, o.tokenURL, resp.StatusCode, body), tokenType
}
