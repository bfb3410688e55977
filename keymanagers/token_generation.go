package keymanagers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ClientToken is a token the Key Manager issued to a client (RFC 6749
// section 5.1). AccessToken is a secret: it goes to the caller who asked
// for it and nowhere else (never a log line).
type ClientToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

// ClientToken obtains a token with the client-credentials grant (RFC 6749
// section 4.4) at the token endpoint, authenticating with
// client_secret_basic. scopes may be empty (the Key Manager's default).
// Failures wrap ErrRegistrationUnavailable; a refusal is a
// *RegistrationError with the IdP's error code.
func (km *KeyManager) ClientToken(ctx context.Context, clientID, secret string, scopes []string) (*ClientToken, error) {
	endpoint, err := km.TokenEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: token endpoint: %v", ErrRegistrationUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 2.3.1: the id and secret are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	status, data, err := km.callIdP(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, oauthError(status, data)
	}
	var tok ClientToken
	if json.Unmarshal(data, &tok) != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("%w: the token endpoint's answer has no access_token", ErrRegistrationUnavailable)
	}
	if !strings.EqualFold(tok.TokenType, "bearer") {
		return nil, fmt.Errorf("%w: the token endpoint issued a %q token, not a Bearer token", ErrRegistrationUnavailable, printable(tok.TokenType, 32))
	}
	tok.TokenType = "Bearer"
	return &tok, nil
}
