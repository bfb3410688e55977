package keymanagers

import "encoding/json"

// Connector turns a vendor's connection fields into a Key Manager's
// endpoints and claim defaults. Connectors are registered as Caddy guest
// modules in the keymanagers.connectors namespace (see docs/custom-connector.md);
// the generic "custom" connector derives nothing.
type Connector interface {
	// Derive fills the values the vendor's connection fields imply into
	// def, leaving every field the user set untouched. It must not do I/O.
	Derive(def *Definition) error
}

// Vendor quirks: a connector may also implement any of the interfaces
// below; the gateway calls them at the points they name.

// HeaderChecker refuses tokens by their JOSE header before the signature is
// checked, with a description that says why (for example Azure AD tokens
// for Microsoft Graph carry a nonce header and cannot be verified by
// anyone but Graph). It runs only for tokens whose issuer picked this Key
// Manager.
type HeaderChecker interface {
	CheckHeader(h TokenHeader, claims Claims) error
}

// ClaimsChecker refuses tokens by vendor rules after the signature and the
// standard claims were verified (for example a refresh token presented as
// an access token).
type ClaimsChecker interface {
	CheckClaims(claims Claims) error
}

// PrincipalMapper adjusts the principal read from a verified JWT's claims
// (for example the client id claim that depends on the token version).
type PrincipalMapper interface {
	MapPrincipal(claims Claims, p *PrincipalFields)
}

// OpaqueRefuser explains why an opaque token cannot be accepted for a Key
// Manager that has no introspection (for example Auth0 issues opaque tokens
// when no audience was requested). The first such Key Manager among the
// route's candidates answers for a refused opaque token.
type OpaqueRefuser interface {
	RefuseOpaque() error
}

// TokenHeader is the part of a JOSE header connectors may inspect.
type TokenHeader struct {
	Alg, Kid, Typ string
	// HasNonce reports a "nonce" header parameter.
	HasNonce bool
}

// PrincipalFields are the principal values a PrincipalMapper may change.
type PrincipalFields struct {
	Subject  string
	ClientID string
	Scopes   []string
}

// Claims are a token's top-level claims as raw JSON.
type Claims map[string]json.RawMessage

// String returns a claim as a string (numbers and booleans in JSON form).
func (c Claims) String(name string) (string, bool) { return claimString(c[name]) }

// Strings returns a claim that is a string (split on spaces when split is
// set) or an array of strings.
func (c Claims) Strings(name string, split bool) ([]string, bool) {
	raw, ok := c[name]
	if !ok {
		return nil, false
	}
	return stringOrList(raw, split)
}

// NewError makes a classified refusal for connectors: kind decides the
// status (use KindInvalid for a 401), description is shown to the client
// and must not contain the token or a secret.
func NewError(kind Kind, description string) error {
	return &Error{Kind: kind, Reason: ReasonConnectorRefused, Description: description}
}

// Custom is the generic OAuth2 / OIDC connector: every endpoint and claim
// is set by hand or discovered.
type Custom struct{}

// Derive implements Connector.
func (Custom) Derive(*Definition) error { return nil }

// Prepare applies the connector, then the package defaults, and validates
// the result. It is the one validation path for definitions, whether they
// come from the Caddy config or (later) the admin API.
func Prepare(def Definition, c Connector) (Definition, error) {
	if c == nil {
		c = Custom{}
	}
	if err := c.Derive(&def); err != nil {
		return def, FieldErrors{{Field: "connector", Message: err.Error()}}
	}
	def = def.Normalize()
	if err := def.Validate(); err != nil {
		return def, err
	}
	return def, nil
}
