package connectors

import (
	"regexp"
	"strings"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// AzureLoginHost is the Microsoft Entra ID login origin of the public
// cloud.
const AzureLoginHost = "https://login.microsoftonline.com"

// Token versions of the azuread connector.
const (
	AzureTokenV1   = "v1"
	AzureTokenV2   = "v2"
	AzureTokenBoth = "both"
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// AzureAD is Microsoft Entra ID, formerly Azure AD (type azuread).
//
// Derived, for tenant {tid} and login origin {base} (default
// https://login.microsoftonline.com): v2 issuer {base}/{tid}/v2.0 and v1
// issuer https://sts.windows.net/{tid}/ (both accepted by default: the
// token version follows the API's app registration, not the client), JWKS
// {base}/{tid}/discovery/v2.0/keys ({base}/{tid}/discovery/keys for v1
// only; both lists hold the same signing keys), discovery
// {base}/{tid}/v2.0/.well-known/openid-configuration (v1:
// {base}/{tid}/.well-known/openid-configuration), token_validation jwt
// (Entra ID has no introspection endpoint), consumer key claim azp (v2)
// with appid as the fallback (v1), scopes from the scp string plus the
// roles array (app permissions; client-credentials tokens carry only
// roles).
//
// An audience is required: every app of a tenant, Microsoft's own APIs
// included, gets tokens with the same issuer and keys. Tokens for Microsoft
// Graph (a nonce in the header: only Graph can verify them) are refused with
// a description that says their audience is Graph.
type AzureAD struct {
	// TenantID is the directory (tenant) ID, a GUID. Microsoft accounts
	// (MSA) use 9188040d-6c67-4c5b-b112-36a304b66dad.
	TenantID string `json:"tenant_id,omitempty"`
	// TokenVersion is v1, v2 or both (default both).
	TokenVersion string `json:"token_version,omitempty"`
	// BaseURL replaces the login origin https://login.microsoftonline.com
	// (a national cloud such as https://login.microsoftonline.us, or a test
	// server). The v1 issuer is not derived from it.
	BaseURL string `json:"base_url,omitempty"`
	// RolesAsScopes adds the roles claim to the scopes (default true).
	RolesAsScopes *Bool `json:"roles_as_scopes,omitempty"`
}

// Derive implements keymanagers.Connector.
func (c *AzureAD) Derive(def *keymanagers.Definition) error {
	switch {
	case c.TenantID == "":
		return errorf("tenant_id: required (the directory (tenant) ID, a GUID)")
	case !guidRE.MatchString(c.TenantID):
		return errorf("tenant_id: %q is not a directory (tenant) ID GUID: tokens carry the GUID in their issuer, so a domain name, \"common\" or \"organizations\" cannot match them", c.TenantID)
	}
	tid := strings.ToLower(c.TenantID)
	base := AzureLoginHost
	if c.BaseURL != "" {
		b, err := baseURL("base_url", c.BaseURL)
		if err != nil {
			return err
		}
		base = b
	}
	if len(def.Audiences) == 0 {
		return errorf("audiences: set audience to this API's application ID URI and/or application (client) ID: Entra ID signs tokens for every app of the tenant with the same issuer and keys")
	}
	v2 := base + "/" + tid + "/v2.0"
	v1 := "https://sts.windows.net/" + tid + "/"
	d := derived{
		consumerKey: "azp",
		scopes:      "scp",
		validation:  keymanagers.ValidationJWT,
	}
	switch c.TokenVersion {
	case "", AzureTokenBoth:
		d.issuer, d.additionalIssuers = v2, []string{v1}
	case AzureTokenV2:
		d.issuer = v2
	case AzureTokenV1:
		d.issuer = v1
	default:
		return errorf("token_version: %q is not one of v1, v2, both", c.TokenVersion)
	}
	if c.TokenVersion == AzureTokenV1 {
		d.wellKnown = base + "/" + tid + "/.well-known/openid-configuration"
		d.jwks = base + "/" + tid + "/discovery/keys"
	} else {
		d.wellKnown = v2 + "/.well-known/openid-configuration"
		d.jwks = base + "/" + tid + "/discovery/v2.0/keys"
	}
	d.apply(def)
	return nil
}

// CheckHeader implements keymanagers.HeaderChecker: Microsoft Graph tokens
// carry a nonce header and are signed over a transformed nonce.
func (c *AzureAD) CheckHeader(h keymanagers.TokenHeader, _ keymanagers.Claims) error {
	if h.HasNonce {
		return refused("The access token's audience is Microsoft Graph, not this API (its header carries a nonce that only Graph can verify). " +
			"Request a token for this API's scope, for example api://<application id>/.default.")
	}
	return nil
}

// MapPrincipal implements keymanagers.PrincipalMapper: v1 tokens name the
// client in appid, v2 tokens in azp; app permissions come as roles.
func (c *AzureAD) MapPrincipal(claims keymanagers.Claims, p *keymanagers.PrincipalFields) {
	if p.ClientID == "" {
		if id, ok := claims.String("appid"); ok {
			p.ClientID = id
		}
	}
	if c.RolesAsScopes == nil || bool(*c.RolesAsScopes) {
		p.Scopes = appendScopes(p.Scopes, claims, "roles")
	}
}

// RefuseOpaque implements keymanagers.OpaqueRefuser.
func (c *AzureAD) RefuseOpaque() error {
	return refused("The access token is not a JWT, and Microsoft Entra ID has no introspection endpoint to validate it. " +
		"Opaque tokens (such as Microsoft account tokens for Microsoft Graph) are meant for Microsoft's own APIs: request a token for this API's scope.")
}

// Interface guards
var (
	_ keymanagers.Connector       = (*AzureAD)(nil)
	_ keymanagers.HeaderChecker   = (*AzureAD)(nil)
	_ keymanagers.PrincipalMapper = (*AzureAD)(nil)
	_ keymanagers.OpaqueRefuser   = (*AzureAD)(nil)
)
