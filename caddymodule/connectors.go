package caddymodule

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/keymanagers/connectors"
)

// Connector modules: one thin guest module per built-in connector type in
// the keymanagers.connectors namespace. Each embeds its domain type from
// package keymanagers/connectors (Derive and the vendor quirks live there);
// a definition's "connector" object ({"type": "okta", "domain": ...}) is
// decoded into it strictly, so an unknown field is refused by name.

func init() {
	caddy.RegisterModule(WSO2ISConnector{})
	caddy.RegisterModule(WSO2IS7Connector{})
	caddy.RegisterModule(KeycloakConnector{})
	caddy.RegisterModule(OktaConnector{})
	caddy.RegisterModule(Auth0Connector{})
	caddy.RegisterModule(AzureADConnector{})
	caddy.RegisterModule(PingFederateConnector{})
	caddy.RegisterModule(ForgeRockConnector{})
	caddy.RegisterModule(CustomConnector{})
}

// connectorModule builds the module info of a connector type.
func connectorModule(name string, newFn func() caddy.Module) caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: caddy.ModuleID("keymanagers.connectors." + name), New: newFn}
}

// WSO2ISConnector is WSO2 Identity Server 5.x / 6.x
// (keymanagers.connectors.wso2is): base_url, tenant, tenant_qualified_urls.
type WSO2ISConnector struct {
	connectors.WSO2IS
}

// CaddyModule returns the Caddy module information.
func (WSO2ISConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("wso2is", func() caddy.Module { return new(WSO2ISConnector) })
}

// WSO2IS7Connector is WSO2 Identity Server 7
// (keymanagers.connectors.wso2is7): base_url, tenant, tenant_qualified_urls.
type WSO2IS7Connector struct {
	connectors.WSO2IS7
}

// CaddyModule returns the Caddy module information.
func (WSO2IS7Connector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("wso2is7", func() caddy.Module { return new(WSO2IS7Connector) })
}

// KeycloakConnector is Keycloak (keymanagers.connectors.keycloak):
// base_url, realm, legacy_auth_path.
type KeycloakConnector struct {
	connectors.Keycloak
}

// CaddyModule returns the Caddy module information.
func (KeycloakConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("keycloak", func() caddy.Module { return new(KeycloakConnector) })
}

// OktaConnector is Okta (keymanagers.connectors.okta): domain,
// authorization_server ("" for the org authorization server).
type OktaConnector struct {
	connectors.Okta
}

// CaddyModule returns the Caddy module information.
func (OktaConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("okta", func() caddy.Module { return new(OktaConnector) })
}

// Auth0Connector is Auth0 (keymanagers.connectors.auth0): domain,
// permissions_as_scopes.
type Auth0Connector struct {
	connectors.Auth0
}

// CaddyModule returns the Caddy module information.
func (Auth0Connector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("auth0", func() caddy.Module { return new(Auth0Connector) })
}

// AzureADConnector is Microsoft Entra ID / Azure AD
// (keymanagers.connectors.azuread): tenant_id, token_version, base_url,
// roles_as_scopes.
type AzureADConnector struct {
	connectors.AzureAD
}

// CaddyModule returns the Caddy module information.
func (AzureADConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("azuread", func() caddy.Module { return new(AzureADConnector) })
}

// PingFederateConnector is PingFederate
// (keymanagers.connectors.pingfederate): base_url, jwks_path.
type PingFederateConnector struct {
	connectors.PingFederate
}

// CaddyModule returns the Caddy module information.
func (PingFederateConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("pingfederate", func() caddy.Module { return new(PingFederateConnector) })
}

// ForgeRockConnector is ForgeRock AM / PingAM
// (keymanagers.connectors.forgerock): base_url, realm.
type ForgeRockConnector struct {
	connectors.ForgeRock
}

// CaddyModule returns the Caddy module information.
func (ForgeRockConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("forgerock", func() caddy.Module { return new(ForgeRockConnector) })
}

// CustomConnector is the generic OAuth2 / OIDC connector
// (keymanagers.connectors.custom): every endpoint and claim is set in the
// definition or discovered.
type CustomConnector struct {
	keymanagers.Custom
}

// CaddyModule returns the Caddy module information.
func (CustomConnector) CaddyModule() caddy.ModuleInfo {
	return connectorModule("custom", func() caddy.Module { return new(CustomConnector) })
}

// Interface guards
var (
	_ keymanagers.Connector     = (*WSO2ISConnector)(nil)
	_ keymanagers.ClaimsChecker = (*WSO2ISConnector)(nil)

	_ keymanagers.Connector     = (*WSO2IS7Connector)(nil)
	_ keymanagers.ClaimsChecker = (*WSO2IS7Connector)(nil)

	_ keymanagers.Connector = (*KeycloakConnector)(nil)

	_ keymanagers.Connector     = (*OktaConnector)(nil)
	_ keymanagers.HeaderChecker = (*OktaConnector)(nil)

	_ keymanagers.Connector       = (*Auth0Connector)(nil)
	_ keymanagers.HeaderChecker   = (*Auth0Connector)(nil)
	_ keymanagers.PrincipalMapper = (*Auth0Connector)(nil)
	_ keymanagers.OpaqueRefuser   = (*Auth0Connector)(nil)

	_ keymanagers.Connector       = (*AzureADConnector)(nil)
	_ keymanagers.HeaderChecker   = (*AzureADConnector)(nil)
	_ keymanagers.PrincipalMapper = (*AzureADConnector)(nil)
	_ keymanagers.OpaqueRefuser   = (*AzureADConnector)(nil)

	_ keymanagers.Connector = (*PingFederateConnector)(nil)

	_ keymanagers.Connector       = (*ForgeRockConnector)(nil)
	_ keymanagers.ClaimsChecker   = (*ForgeRockConnector)(nil)
	_ keymanagers.PrincipalMapper = (*ForgeRockConnector)(nil)

	_ keymanagers.Connector = (*CustomConnector)(nil)
)

// connectorFor is the one connector decoder, for the Caddyfile adapter,
// provisioning and the admin API alike: it instantiates the
// keymanagers.connectors module named by the definition's "type" and
// decodes its fields strictly (an unknown field is refused by name). A
// definition without a connector gets the generic one. Connectors are
// plain values: no Caddy context is needed (a connector that implements
// caddy.Validator is validated).
func connectorFor(def *keymanagers.Definition) (keymanagers.Connector, error) {
	if len(def.Connector) == 0 {
		return keymanagers.Custom{}, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(def.Connector, &head); err != nil {
		return nil, err
	}
	info, err := caddy.GetModule("keymanagers.connectors." + head.Type)
	if err != nil {
		return nil, fmt.Errorf("unknown connector type %q: no module keymanagers.connectors.%s is built in (known: %s)", head.Type, head.Type, strings.Join(connectorTypes(), ", "))
	}
	mod := info.New()
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(def.Connector, &fields)
	delete(fields, "type")
	b, _ := json.Marshal(fields)
	if err := caddy.StrictUnmarshalJSON(b, mod); err != nil {
		return nil, fmt.Errorf("connector %s: %v", head.Type, err)
	}
	conn, ok := mod.(keymanagers.Connector)
	if !ok {
		return nil, fmt.Errorf("module keymanagers.connectors.%s is not a connector", head.Type)
	}
	if v, ok := mod.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("connector %s: %v", head.Type, err)
		}
	}
	return conn, nil
}

func connectorTypes() []string {
	var out []string
	for _, m := range caddy.GetModules("keymanagers.connectors") {
		out = append(out, m.ID.Name())
	}
	sort.Strings(out)
	return out
}
