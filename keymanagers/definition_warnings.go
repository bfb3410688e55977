package keymanagers

import (
	"net"
	"net/url"
)

// Warnings lists what is allowed in d but weakens it, for the operator's
// log (NewKeyManager logs each at WARN). d has had its connector applied.
func (d Definition) Warnings() []string {
	var out []string
	acceptsJWT := d.TokenValidation != ValidationIntrospection &&
		(d.JWKSURL != "" || d.WellKnownURL != "" || d.CertificatePEM != "" || d.SharedSecret != "")
	if d.IsEnabled() && acceptsJWT && len(d.Audiences) == 0 && !d.RequireATJWT {
		out = append(out, "no audience and no require_at_jwt: any JWT this issuer signs is accepted for this route's APIs, "+
			"including tokens minted for other clients; set audience (docs/connectors.md says which value each vendor uses)")
	}
	for _, e := range [...]struct{ field, value string }{
		{"well_known_url", d.WellKnownURL},
		{"jwks_url", d.JWKSURL},
		{"introspection_url", d.IntrospectionURL},
		{"token_url", d.TokenURL},
	} {
		if plainHTTP(e.value) {
			out = append(out, e.field+" is plain http:// to a non-loopback host: a network attacker can read or change what it serves; use https")
		}
	}
	if d.InsecureDiscovery {
		out = append(out, "insecure_discovery is on: the discovery document's issuer is not bound to its URL and it may name http:// endpoints")
	}
	return out
}

// plainHTTP reports an http:// URL whose host is not a loopback address
// (a sidecar IdP on 127.0.0.1 or localhost is not on the network).
func plainHTTP(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}
