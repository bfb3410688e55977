package keymanagers

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// resolve picks the Key Manager for an issuer, discovering pending ones.
func (g *Gateway) resolve(ctx context.Context, t *Tenant, iss string) (*KeyManager, error) {
	km, pending, ambiguous := t.byIssuerLookup(iss)
	if ambiguous {
		return nil, g.ambiguous(t, iss)
	}
	if km != nil {
		return km, nil
	}
	if len(pending) == 0 {
		return nil, ErrUnknownIssuer
	}
	// Some Key Managers' issuers are not known yet: try discovery (bounded
	// by each one's timeout and retry floor), then look again.
	var failed bool
	for _, d := range pending {
		dctx, cancel := context.WithTimeout(ctx, time.Duration(d.def.Timeout))
		if d.ensureDiscovered(dctx, false) != nil {
			failed = true
		}
		cancel()
	}
	km, _, ambiguous = t.byIssuerLookup(iss)
	switch {
	case ambiguous:
		return nil, g.ambiguous(t, iss)
	case km != nil:
		return km, nil
	case failed:
		return nil, detailed(ErrUnavailable, "issuer unknown while discovery of some key managers fails")
	}
	return nil, ErrUnknownIssuer
}

// ambiguous logs, once per tenant snapshot, that two Key Managers claim
// iss; every refused request is counted by its reason (issuer_ambiguous).
func (g *Gateway) ambiguous(t *Tenant, iss string) error {
	if t.ambiguityLogged.CompareAndSwap(false, true) {
		g.logger.Error("two key managers of one tenant have the same discovered issuer; refusing their tokens until the configuration changes",
			zap.String("tenant", t.Name), zap.String("issuer", iss))
	}
	return ErrAmbiguousIssuer
}

// Issuers returns every issuer the Key Manager vouches for (the configured
// or discovered one first).
func (km *KeyManager) Issuers() []string {
	out := make([]string, 0, 1+len(km.def.AdditionalIssuers))
	if iss := km.Issuer(); iss != "" {
		out = append(out, iss)
	}
	return append(out, km.def.AdditionalIssuers...)
}

// byIssuerLookup finds the enabled Key Manager for iss. It reports
// pending when some Key Manager's issuer is not known yet (discovery has
// not completed), and ambiguous when two discovered issuers collide.
func (t *Tenant) byIssuerLookup(iss string) (km *KeyManager, pending []*KeyManager, ambiguous bool) {
	km = t.byIssuer[iss]
	for _, d := range t.dynamic {
		di := d.Issuer()
		if di == "" {
			pending = append(pending, d)
			continue
		}
		if di == iss {
			if km != nil {
				return nil, nil, true
			}
			km = d
		}
	}
	return km, pending, false
}
