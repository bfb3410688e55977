package keymanagers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Developer keys: the gateway registers OAuth clients at a Key Manager
// with RFC 7591 Dynamic Client Registration, deletes them with RFC 7592,
// and obtains client-credentials tokens for them. This is the admin path:
// it never runs on a request to the gateway.

// maxRegistrationResponse bounds the IdP's registration answers.
const maxRegistrationResponse = 64 << 10

// ErrRegistrationUnavailable marks a registration, deletion or token call
// that did not get a usable answer from the Key Manager (unreachable,
// refused, or an answer that breaks the RFCs).
var ErrRegistrationUnavailable = errors.New("key manager call failed")

// validateRegistration checks the developer-key fields of d.
func (d *Definition) validateRegistration() FieldErrors {
	var errs FieldErrors
	if d.EnableTokenGeneration && !d.EnableOAuthAppCreation {
		errs = append(errs, FieldError{"enable_token_generation", "needs enable_oauth_app_creation: tokens are generated only for applications the gateway registered"})
	}
	if d.EnableTokenGeneration && d.TokenURL == "" && d.WellKnownURL == "" {
		errs = append(errs, FieldError{"enable_token_generation", "needs token_url or well_known_url (to discover token_endpoint)"})
	}
	if d.EnableOAuthAppCreation && d.RegistrationEndpoint == "" && d.WellKnownURL == "" {
		errs = append(errs, FieldError{"enable_oauth_app_creation", "needs registration_endpoint or well_known_url (to discover registration_endpoint)"})
	}
	if d.RegistrationEndpoint != "" && plainHTTP(d.RegistrationEndpoint) {
		errs = append(errs, FieldError{"registration_endpoint", "must be https: the answer carries a client secret (plain http:// is allowed to a loopback host only)"})
	}
	if d.RegistrationAccessToken != "" && !d.EnableOAuthAppCreation {
		errs = append(errs, FieldError{"registration_access_token", "is only used with enable_oauth_app_creation"})
	}
	return errs
}

// ClientRegistration is the client metadata the gateway asks for (RFC
// 7591 section 2). The token endpoint authentication method is always
// client_secret_basic.
type ClientRegistration struct {
	ClientName   string
	GrantTypes   []string // default client_credentials
	RedirectURIs []string
	Scopes       []string // sent as the space-separated scope
}

// RegisteredClient is what the Key Manager answered (RFC 7591 section
// 3.2.1, RFC 7592 section 3). ClientSecret and RegistrationAccessToken are
// secrets: never log or return them except to the registering caller.
type RegisteredClient struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret"`
	ClientSecretExpiresAt   int64  `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
}

// Manageable reports whether the client can be deleted with RFC 7592.
func (c *RegisteredClient) Manageable() bool {
	return c.RegistrationAccessToken != "" && c.RegistrationClientURI != ""
}

// RegistrationError is the Key Manager's refusal of a registration or a
// token request: its HTTP status and OAuth error code and description
// (the IdP's words; they never hold the gateway's secrets).
type RegistrationError struct {
	Status      int
	Code        string
	Description string
}

func (e *RegistrationError) Error() string {
	s := fmt.Sprintf("the key manager answered HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

func (e *RegistrationError) Unwrap() error { return ErrRegistrationUnavailable }

// ClientMetadataError reports a refusal of the metadata asked for (RFC
// 7591 section 3.2.2): the caller's input, not the gateway's setup.
func (e *RegistrationError) ClientMetadataError() bool {
	return e.Status == http.StatusBadRequest && (e.Code == "invalid_client_metadata" || e.Code == "invalid_redirect_uri")
}

// RegistrationEndpoint is the configured registration endpoint, or the
// discovery document's registration_endpoint (read now, with the same
// checks as discovery).
func (km *KeyManager) RegistrationEndpoint(ctx context.Context) (string, error) {
	if km.def.RegistrationEndpoint != "" {
		return km.def.RegistrationEndpoint, nil
	}
	if km.def.WellKnownURL == "" {
		return "", fmt.Errorf("%w: no registration_endpoint configured and no well_known_url to discover it", ErrRegistrationUnavailable)
	}
	md, err := km.fetchMetadata(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: discovery: %v", ErrRegistrationUnavailable, scrubURLError(err))
	}
	if md.RegistrationEndpoint == "" {
		return "", fmt.Errorf("%w: the discovery document has no registration_endpoint: the Key Manager does not offer dynamic client registration there; set registration_endpoint", ErrRegistrationUnavailable)
	}
	return md.RegistrationEndpoint, nil
}

// TokenEndpoint is token_url, or the discovered token_endpoint.
func (km *KeyManager) TokenEndpoint(ctx context.Context) (string, error) {
	if km.def.TokenURL != "" {
		return km.def.TokenURL, nil
	}
	if p := km.tokenURL.Load(); p != nil {
		return *p, nil
	}
	if err := km.ensureDiscovered(ctx, true); err != nil {
		return "", fmt.Errorf("%w: discovery: %v", ErrRegistrationUnavailable, err)
	}
	if p := km.tokenURL.Load(); p != nil {
		return *p, nil
	}
	return "", fmt.Errorf("%w: no token_url configured and discovery names no token_endpoint", ErrRegistrationUnavailable)
}

// registrationAuth is the Authorization header for the registration
// endpoint: the initial access token, else a client-credentials token of
// the gateway's own client, else none (open registration).
func (km *KeyManager) registrationAuth(ctx context.Context) (string, error) {
	if km.def.RegistrationAccessToken != "" {
		return "Bearer " + km.def.RegistrationAccessToken, nil
	}
	if km.def.ClientID == "" || km.def.ClientSecret == "" {
		return "", nil
	}
	tok, err := km.ClientToken(ctx, km.def.ClientID, km.def.ClientSecret, nil)
	if err != nil {
		return "", fmt.Errorf("getting a token for the registration with the key manager's client_id: %w", err)
	}
	return "Bearer " + tok.AccessToken, nil
}

// RegisterClient registers a client (RFC 7591) and checks the answer: a
// client_id and client_secret, the client_secret_basic method asked for,
// and RFC 7592 management fields that belong together and to the
// registration endpoint's scheme.
func (km *KeyManager) RegisterClient(ctx context.Context, reg ClientRegistration) (*RegisteredClient, error) {
	endpoint, err := km.RegistrationEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	auth, err := km.registrationAuth(ctx)
	if err != nil {
		return nil, err
	}
	grants := reg.GrantTypes
	if len(grants) == 0 {
		grants = []string{"client_credentials"}
	}
	// RFC 7591 2.1: response_types defaults to "code", which needs the
	// authorization_code grant; a client without it has none.
	responseTypes := []string{}
	if slices.Contains(grants, "authorization_code") {
		responseTypes = []string{"code"}
	}
	body := map[string]any{
		"grant_types":                grants,
		"response_types":             responseTypes,
		"token_endpoint_auth_method": AuthClientSecretBasic,
	}
	if reg.ClientName != "" {
		body["client_name"] = reg.ClientName
	}
	if len(reg.RedirectURIs) > 0 {
		body["redirect_uris"] = reg.RedirectURIs
	}
	if len(reg.Scopes) > 0 {
		body["scope"] = strings.Join(reg.Scopes, " ")
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: registration_endpoint: %v", ErrRegistrationUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	status, data, err := km.callIdP(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return nil, oauthError(status, data)
	}
	var rc RegisteredClient
	var extra struct {
		AuthMethod string `json:"token_endpoint_auth_method"`
	}
	if json.Unmarshal(data, &rc) != nil || json.Unmarshal(data, &extra) != nil {
		return nil, fmt.Errorf("%w: the registration answer is not a JSON client information response", ErrRegistrationUnavailable)
	}
	problem := ""
	switch {
	case rc.ClientID == "":
		problem = "has no client_id"
	case rc.ClientSecret == "":
		problem = "has no client_secret although client_secret_basic was asked for"
	case extra.AuthMethod != "" && extra.AuthMethod != AuthClientSecretBasic:
		problem = fmt.Sprintf("registered token_endpoint_auth_method %q instead of client_secret_basic", extra.AuthMethod)
	case (rc.RegistrationAccessToken == "") != (rc.RegistrationClientURI == ""):
		problem = "gives only one of registration_access_token and registration_client_uri (RFC 7592 needs both)"
	case rc.RegistrationClientURI != "" && !sameSchemeURL(endpoint, rc.RegistrationClientURI):
		problem = "names a registration_client_uri that is not an absolute URL of the registration endpoint's scheme"
	}
	if problem != "" {
		// The client may exist now: remove it again where possible.
		if rc.Manageable() && sameSchemeURL(endpoint, rc.RegistrationClientURI) {
			_ = km.DeleteClient(context.WithoutCancel(ctx), rc)
		}
		return nil, fmt.Errorf("%w: the registration answer %s", ErrRegistrationUnavailable, problem)
	}
	return &rc, nil
}

// DeleteClient deletes a registered client (RFC 7592 section 2.3): only
// 204 (or 200) is success. A client the Key Manager no longer knows is
// answered 401 (RFC 7592 2.3), which cannot be told from a wrong token,
// and a 404 may be a wrong URL: both are failures.
func (km *KeyManager) DeleteClient(ctx context.Context, rc RegisteredClient) error {
	if !rc.Manageable() {
		return fmt.Errorf("%w: the key manager gave no registration_client_uri and registration_access_token for client %q: delete it at the key manager", ErrRegistrationUnavailable, rc.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, rc.RegistrationClientURI, nil)
	if err != nil {
		return fmt.Errorf("%w: registration_client_uri: %v", ErrRegistrationUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+rc.RegistrationAccessToken)
	req.Header.Set("Accept", "application/json")
	status, data, err := km.callIdP(req)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	}
	return oauthError(status, data)
}

// callIdP sends req without following redirects (it carries a
// token) and reads a bounded answer.
func (km *KeyManager) callIdP(req *http.Request) (int, []byte, error) {
	resp, err := km.postClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrRegistrationUnavailable, scrubURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRegistrationResponse+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: reading the answer: %v", ErrRegistrationUnavailable, err)
	}
	if len(data) > maxRegistrationResponse {
		return 0, nil, fmt.Errorf("%w: the answer is larger than %d bytes", ErrRegistrationUnavailable, maxRegistrationResponse)
	}
	if len(data) > 0 && resp.StatusCode < 300 {
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
			return 0, nil, fmt.Errorf("%w: the answer (HTTP %d) is %q, not application/json", ErrRegistrationUnavailable, resp.StatusCode, mt)
		}
	}
	return resp.StatusCode, data, nil
}

// oauthError reads an RFC 6749 / 7591 error body (error, error_description).
func oauthError(status int, data []byte) error {
	var e struct {
		Code string `json:"error"`
		Desc string `json:"error_description"`
	}
	_ = json.Unmarshal(data, &e)
	return &RegistrationError{Status: status, Code: printable(e.Code, 64), Description: printable(e.Desc, 300)}
}

// printable keeps at most n bytes of s's printable ASCII.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sameSchemeURL reports an absolute URL without credentials whose scheme
// is base's.
func sameSchemeURL(base, raw string) bool {
	b, err1 := url.Parse(base)
	u, err2 := url.Parse(raw)
	return err1 == nil && err2 == nil && u.Scheme == b.Scheme && u.Host != "" && u.User == nil
}

// validateRegistration checks an application's registration metadata.
func (a *Application) validateRegistration() FieldErrors {
	var errs FieldErrors
	dcr := a.Register || a.Registered
	if !dcr && (a.ClientName != "" || len(a.GrantTypes) > 0 || len(a.RedirectURIs) > 0 || len(a.RegistrationScopes) > 0) {
		errs = append(errs, FieldError{"register", "client_name, grant_types, redirect_uris and registration_scopes are sent to the Key Manager: they need register: true"})
	}
	if len(a.ClientName) > 200 {
		errs = append(errs, FieldError{"client_name", "must be at most 200 bytes"})
	}
	for i, g := range a.GrantTypes {
		switch g {
		case "client_credentials", "authorization_code", "refresh_token":
		default:
			errs = append(errs, FieldError{fmt.Sprintf("grant_types[%d]", i), fmt.Sprintf("%q is not one of client_credentials, authorization_code, refresh_token", g)})
		}
	}
	if slices.Contains(a.GrantTypes, "authorization_code") && len(a.RedirectURIs) == 0 {
		errs = append(errs, FieldError{"redirect_uris", "the authorization_code grant needs at least one redirect URI"})
	}
	for i, r := range a.RedirectURIs {
		if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Fragment != "" || (u.Host == "" && u.Opaque == "") {
			errs = append(errs, FieldError{fmt.Sprintf("redirect_uris[%d]", i), fmt.Sprintf("%q is not an absolute URI without a fragment", r)})
		}
	}
	for i, s := range a.RegistrationScopes {
		if s == "" || !validScopeToken(s) {
			errs = append(errs, FieldError{fmt.Sprintf("registration_scopes[%d]", i), fmt.Sprintf("%q is not a scope token", s)})
		}
	}
	return errs
}
