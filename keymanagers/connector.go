package keymanagers

// Connector turns a vendor's connection fields into a Key Manager's
// endpoints and claim defaults. Connectors are registered as Caddy guest
// modules in the keymanagers.connectors namespace (see docs/custom-connector.md);
// the generic "custom" connector derives nothing.
type Connector interface {
	// Derive fills the values the vendor's connection fields imply into
	// def, leaving every field the user set untouched. It must not do I/O.
	Derive(def *Definition) error
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
