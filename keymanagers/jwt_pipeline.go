package keymanagers

import (
	"context"
	"errors"
	"strings"
)

func (g *Gateway) validate(ctx context.Context, t *Tenant, route *Route, token string, p *Principal, proj *projection) (*Principal, error) {
	jws, err := parseCompact(token)
	if errors.Is(err, ErrOpaqueToken) {
		km, eerr := g.electIntrospector(ctx, t, route, token, nil)
		if eerr != nil {
			return nil, eerr
		}
		return g.introspectAndCache(ctx, t, km, token, p, proj, "")
	}
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(jws.payload)
	if err != nil {
		return nil, err
	}
	iss, err := issuerOf(claims)
	if err != nil {
		return nil, err
	}
	km, err := g.resolve(ctx, t, iss)
	if errors.Is(err, ErrUnknownIssuer) {
		// A Key Manager may claim JWTs of other issuers through jwt token
		// handling rules (it then introspects them).
		if km2, eerr := g.electIntrospector(ctx, t, route, token, claims); eerr == nil {
			return g.introspectAndCache(ctx, t, km2, token, p, proj, iss)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !route.accepts(km.def.Name) {
		return nil, detailed(ErrNotAccepted, "key manager "+km.def.Name+" not accepted by route")
	}
	if km.def.TokenValidation == ValidationIntrospection || (!km.hasKeySource() && km.hmacSecret == nil && km.canIntrospect()) {
		// Revocation-sensitive (or no keys to verify with): ask the Key
		// Manager even about JWTs.
		return g.introspectAndCache(ctx, t, km, token, p, proj, "")
	}
	if hc, ok := km.connector.(HeaderChecker); ok {
		h := TokenHeader{Alg: jws.header.Alg, Kid: jws.header.Kid, Typ: jws.header.Typ, HasNonce: len(jws.header.Nonce) > 0}
		if err := hc.CheckHeader(h, claims); err != nil {
			return nil, err
		}
	}
	kid, err := km.verify(ctx, jws)
	if err != nil {
		return nil, err
	}
	p.keyID = kid
	now := g.now()
	exp, err := km.checkClaims(claims, now)
	if err != nil {
		return nil, err
	}
	if km.def.RequireATJWT && !isATJWT(jws.header.Typ) {
		return nil, ErrWrongType
	}
	if cc, ok := km.connector.(ClaimsChecker); ok {
		if err := cc.CheckClaims(claims); err != nil {
			return nil, err
		}
	}
	if notAccessToken(claims) {
		return nil, ErrNotAccessToken
	}
	pf := PrincipalFields{Subject: km.subject(claims), ClientID: km.clientID(claims), Scopes: km.scopes(claims)}
	if pm, ok := km.connector.(PrincipalMapper); ok {
		pm.MapPrincipal(claims, &pf)
	}
	p.Subject = pf.Subject
	p.ClientID = pf.ClientID
	p.JTI, _ = claimString(claims["jti"])
	p.Scopes = strings.Join(pf.Scopes, " ")
	p.hardExpiry = exp
	soft := exp
	if lim := now.Add(g.cache.maxTTL).Unix(); lim < soft {
		soft = lim
	}
	entry, err := g.finish(km, iss, p, proj, claims, soft)
	if err != nil {
		return nil, err
	}
	return g.cacheResult(t, km, p, entry), nil
}

func isATJWT(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// verify checks the JWS signature with this Key Manager's keys only and
// returns the verifying key's id (0 for HMAC).
func (km *KeyManager) verify(ctx context.Context, jws *parsedJWT) (uint32, error) {
	alg := jws.header.Alg
	if !km.allowedAlgs[alg] {
		return 0, detailed(ErrAlgorithm, "alg "+safeAlg(alg)+" not allowed")
	}
	if strings.HasPrefix(alg, "HS") {
		if km.hmacSecret == nil || !verifyHMAC(alg, km.hmacSecret, jws.signingInput, jws.sig) {
			return 0, ErrBadSignature
		}
		return 0, nil
	}
	ks := km.keys.Load()
	if ks == nil && !km.hasKeySource() {
		return 0, ErrUnknownKey // no asymmetric key source at all (shared secret only)
	}
	if ks == nil {
		// First fetch not done (or failed): try now, within the floor.
		km.refreshKeysForToken(ctx)
		if ks = km.keys.Load(); ks == nil {
			return 0, ErrNoKeys
		}
	}
	key := pickKey(ks, jws.header.Kid, alg)
	if key == nil && !ks.pinned {
		if km.refreshKeysForToken(ctx) {
			ks = km.keys.Load()
			key = pickKey(ks, jws.header.Kid, alg)
		}
	}
	if key == nil {
		return 0, ErrUnknownKey
	}
	if !verifySignature(alg, key.pub, jws.signingInput, jws.sig) {
		return 0, ErrBadSignature
	}
	return key.id, nil
}

// hasKeySource reports whether the Key Manager has (or can discover) a key
// set or pinned key.
func (km *KeyManager) hasKeySource() bool {
	return km.def.JWKSURL != "" || km.def.CertificatePEM != "" || km.def.WellKnownURL != ""
}

// pickKey finds the key for kid usable with alg. Without a kid, a set with
// exactly one usable key serves; pinned keys serve whatever the kid.
func pickKey(ks *keySet, kid, alg string) *verificationKey {
	var cands []*verificationKey
	if ks.pinned || kid == "" {
		cands = ks.all
	} else {
		cands = ks.byKid[kid]
	}
	var found *verificationKey
	for _, k := range cands {
		if k.alg != "" && k.alg != alg {
			continue
		}
		if !keyMatchesAlg(k.pub, alg) {
			continue
		}
		if kid == "" && !ks.pinned && found != nil {
			return nil // ambiguous without a kid
		}
		if found == nil {
			found = k
		}
	}
	return found
}

func safeAlg(a string) string {
	if len(a) > 16 {
		return a[:16] + "..."
	}
	return a
}
