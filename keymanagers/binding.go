package keymanagers

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"time"
)

// Sender-constrained tokens: DPoP-bound (RFC 9449, cnf.jkt) and
// certificate-bound (RFC 8705, cnf.x5t#S256). The binding is read from the
// token (JWT claim or introspection answer) once, kept in the cached result,
// and checked against the request's proof or client certificate on every
// request, cache hits included.

// Binding modes of a Key Manager (dpop, certificate_bound) and of a route
// (dpop). The empty string is BindingAllowed.
const (
	// BindingRequired: every token must be bound (and presented so).
	BindingRequired = "required"
	// BindingAllowed (default): bound tokens must be presented with their
	// proof or certificate; unbound tokens are plain bearer tokens.
	BindingAllowed = "allowed"
	// BindingOff (dpop only): the DPoP scheme is refused, and so are
	// DPoP-bound tokens (they cannot be used as bearer tokens).
	BindingOff = "off"
)

// Authorization schemes a host passes in Request.Scheme.
const (
	SchemeBearer = "Bearer"
	SchemeDPoP   = "DPoP"
)

// Which binding a request used ({keymanager.binding}, metrics).
const (
	BoundNone     = "none"
	BoundDPoP     = "dpop"
	BoundMTLS     = "mtls"
	BoundDPoPMTLS = "dpop+mtls"
)

// Binding kinds in a cache entry's binding field: each is one kind byte
// and a 32-byte SHA-256 value.
const (
	cnfJKT = 'j'
	cnfX5T = 'x'
)

// bindingErrors checks the definition's dpop and certificate_bound.
func (d *Definition) bindingErrors() FieldErrors {
	var errs FieldErrors
	if err := validBindingMode(d.DPoP, true); err != nil {
		errs = append(errs, FieldError{Field: "dpop", Message: err.Error()})
	}
	if err := validBindingMode(d.CertificateBound, false); err != nil {
		errs = append(errs, FieldError{Field: "certificate_bound", Message: err.Error()})
	}
	return errs
}

// validBindingMode checks a mode; off only where allowOff.
func validBindingMode(v string, allowOff bool) error {
	switch v {
	case "", BindingRequired, BindingAllowed:
		return nil
	case BindingOff:
		if allowOff {
			return nil
		}
	}
	if allowOff {
		return fmt.Errorf("%q is not one of required, allowed, off", v)
	}
	return fmt.Errorf("%q is not one of required, allowed", v)
}

// bindingOf reads cnf from verified claims (or an active introspection
// answer) into the compact cache form. A cnf that names only confirmation
// methods the gateway cannot check (jwk, x5t, ...) is refused rather than
// ignored.
func bindingOf(claims map[string]json.RawMessage) (string, error) {
	raw, ok := claims["cnf"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	m, err := decodeObject(raw)
	if err != nil {
		return "", detailed(ErrMalformedToken, "cnf is not an object")
	}
	var b []byte
	for _, c := range []struct {
		name string
		kind byte
	}{{"jkt", cnfJKT}, {"x5t#S256", cnfX5T}} {
		v, present := m[c.name]
		if !present {
			continue
		}
		s, ok := claimString(v)
		d, err := b64(s)
		if !ok || err != nil || len(d) != 32 {
			return "", detailed(ErrMalformedToken, "cnf."+c.name+" is not a base64url SHA-256 value")
		}
		b = append(b, c.kind)
		b = append(b, d...)
	}
	if b == nil && len(m) > 0 {
		return "", ErrBindingUnsupported
	}
	return string(b), nil
}

// boundTo returns the 32-byte value of one binding kind of a result.
func (p *Principal) boundTo(kind byte) (string, bool) {
	for b := p.binding; len(b) >= 33; b = b[33:] {
		if b[0] == kind {
			return b[1:33], true
		}
	}
	return "", false
}

// dpopMode is the DPoP mode that applies: the route's when it sets one,
// else the Key Manager's.
func dpopMode(route *Route, km *KeyManager) string {
	if route != nil && route.dpop != "" {
		return route.dpop
	}
	if km != nil && km.def.DPoP != "" {
		return km.def.DPoP
	}
	return BindingAllowed
}

// checkRequestProof runs before the token is validated: the scheme against
// the route's own mode, and the DPoP proof (signature, htm, htu, iat, ath,
// nonce, jti) for a DPoP request. The proof's key is matched with the
// token's binding in checkBinding.
func (g *Gateway) checkRequestProof(req *Request, now time.Time) (*dpopProof, error) {
	if req.Scheme != SchemeDPoP {
		return nil, nil
	}
	if req.Route != nil && req.Route.dpop == BindingOff {
		return nil, ErrDPoPDisabled
	}
	return g.checkDPoPProof(req, now)
}

// checkBinding checks a valid principal's binding against the request on
// every request (cache hits included), before any scope check, and records
// which binding the request used in p.Binding.
func checkBinding(req *Request, p *Principal, proof *dpopProof) error {
	jkt, hasJKT := p.boundTo(cnfJKT)
	x5t, hasX5T := p.boundTo(cnfX5T)
	mode := dpopMode(req.Route, p.km)
	if req.Scheme == SchemeDPoP {
		switch {
		case mode == BindingOff:
			return ErrDPoPDisabled
		case !hasJKT:
			return ErrDPoPUnbound
		case proof == nil || subtle.ConstantTimeCompare([]byte(jkt), proof.thumbprint[:]) != 1:
			return ErrDPoPKeyMismatch
		}
	} else {
		switch {
		case hasJKT:
			return ErrBoundAsBearer
		case mode == BindingRequired:
			return ErrDPoPRequired
		}
	}
	if hasX5T {
		if !req.HasClientCert {
			return ErrCertificateMissing
		}
		if subtle.ConstantTimeCompare([]byte(x5t), req.ClientCertSHA256[:]) != 1 {
			return ErrCertificateMismatch
		}
	} else if p.km != nil && p.km.def.CertificateBound == BindingRequired {
		return ErrCertificateUnbound
	}
	switch {
	case hasJKT && hasX5T:
		p.Binding = BoundDPoPMTLS
	case hasJKT:
		p.Binding = BoundDPoP
	case hasX5T:
		p.Binding = BoundMTLS
	default:
		p.Binding = BoundNone
	}
	return nil
}

// DPoPNonce returns the server nonce clients must put in their proofs on
// routes with DPoP nonces (the edge sends it as DPoP-Nonce).
func (g *Gateway) DPoPNonce() string { return g.nonces.current(g.now()) }

// DPoPMode is the route's own DPoP mode ("" when it follows its Key
// Managers).
func (r *Route) DPoPMode() string {
	if r == nil {
		return ""
	}
	return r.dpop
}
