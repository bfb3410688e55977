package keymanagers

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmgate/caddy-keymanager/scopes"
)

// Route is what one protected route accepts and requires. Build it with
// CompileRoute; it is immutable and shared by every request of the route.
type Route struct {
	// KeyManagers limits the accepted Key Managers by name; empty accepts
	// every Key Manager the tenant can see.
	KeyManagers []string

	policy       *scopes.Policy
	claimReqs    []scopes.ClaimRequirement
	api          string
	requireSub   bool
	neededClaims []string
	// Sender-constrained tokens (binding.go): the route's DPoP mode (""
	// follows each Key Manager's) and whether proofs need a server nonce.
	dpop      string
	dpopNonce bool
}

// RouteConfig is a route's authorization rules as users write them.
type RouteConfig struct {
	KeyManagers []string
	// Scopes are the resource scope rules; Strategy and Unmatched are as
	// in scopes.Config.
	Scopes    []scopes.Rule
	Strategy  string
	Unmatched string
	// API names the API the route serves (for subscriptions);
	// RequireSubscription refuses tokens whose application is not
	// subscribed to it.
	API                 string
	RequireSubscription bool
	// RequireClaims must all hold.
	RequireClaims []ClaimRule
	// DPoP overrides the Key Managers' dpop mode on this route: required,
	// allowed or off ("" follows each Key Manager). DPoPNonce requires a
	// server nonce in every proof (RFC 9449 section 9).
	DPoP      string
	DPoPNonce bool
}

// ClaimRule is one claim requirement: the claim at the dot path must equal
// one of the values (or be an array holding one).
type ClaimRule struct {
	Claim  string
	Values []string
}

// CompileRoute checks and compiles a route's rules. The Caddyfile adapter
// and the handler both call it, so a route that adapts also provisions.
func CompileRoute(c RouteConfig) (*Route, error) {
	r := &Route{KeyManagers: c.KeyManagers, api: c.API, requireSub: c.RequireSubscription, dpop: c.DPoP, dpopNonce: c.DPoPNonce}
	if err := validBindingMode(c.DPoP, true); err != nil {
		return nil, fmt.Errorf("dpop: %v", err)
	}
	if c.DPoPNonce && c.DPoP == BindingOff {
		return nil, errors.New("dpop_nonce needs dpop allowed or required")
	}
	if len(c.Scopes) > 0 || c.Unmatched != "" || c.Strategy != "" {
		p, err := scopes.Compile(scopes.Config{Rules: c.Scopes, Strategy: c.Strategy, Unmatched: c.Unmatched})
		if err != nil {
			return nil, err
		}
		r.policy = p
	}
	if c.RequireSubscription && c.API == "" {
		return nil, errors.New("require_subscription needs api NAME")
	}
	for i, cr := range c.RequireClaims {
		path, err := scopes.ParseClaimPath(cr.Claim)
		if err != nil {
			return nil, fmt.Errorf("require_claim[%d]: %v", i, err)
		}
		if len(cr.Values) == 0 {
			return nil, fmt.Errorf("require_claim[%d]: needs at least one value", i)
		}
		r.claimReqs = append(r.claimReqs, scopes.ClaimRequirement{Path: path, Values: cr.Values})
		r.neededClaims = append(r.neededClaims, path[0])
	}
	// Application scopes decide "the application's own token" from these.
	r.neededClaims = append(r.neededClaims, ClientMarkerClaims...)
	return r, nil
}

// NeededClaims names the claims the route's rules read; hosts pass them to
// Gateway.SetProjectedClaims so cached results keep them.
func (r *Route) NeededClaims() []string { return r.neededClaims }

func (r *Route) accepts(name string) bool {
	if r == nil || len(r.KeyManagers) == 0 {
		return true
	}
	for _, n := range r.KeyManagers {
		if n == name {
			return true
		}
	}
	return false
}

// Request is one request to authorize, as the host saw it.
type Request struct {
	Tenant string
	Route  *Route
	// Token is the bearer token; TokenErr is why the host could not take
	// one (no Authorization header, two of them, too large).
	Token    string
	TokenErr error
	// Method and EscapedPath are the request's method and escaped path,
	// for the route's scope rules.
	Method      string
	EscapedPath string

	// Sender constraint (binding.go). Scheme is the authorization scheme
	// the token came with, SchemeBearer or SchemeDPoP; DPoPProofs are the
	// request's DPoP header values (exactly one is accepted); URI is the
	// request URI as the client sent it (scheme, host, path; no query),
	// compared with the proof's htu. ClientCertSHA256 is the SHA-256 of
	// the client certificate the TLS server verified, when HasClientCert.
	Scheme           string
	DPoPProofs       []string
	URI              string
	ClientCertSHA256 [32]byte
	HasClientCert    bool
}

// Authorize is the one call a host makes per request. On one registry
// snapshot it checks, in this order:
//
//  1. the tenant;
//     then, for a DPoP request, the proof (binding.go);
//  2. the token (cache, JWT verification or introspection, revocations);
//     then its binding (DPoP key, client certificate), cache hits included;
//  3. the application's scopes (gateway-granted scopes added to the
//     application's own tokens, denied scopes removed from all);
//  4. the subscription, when the route requires one;
//  5. the route's claim requirements;
//  6. the resource scopes of the route's scope rules.
//
// It returns the principal, or an error that Classify maps to the edge
// response (RequiredScopes tells which scopes would have opened the
// resource). When the token is valid but a later check denies, the
// principal is returned with the error, for logs and metrics only.
func (g *Gateway) Authorize(ctx context.Context, req *Request) (*Principal, error) {
	t := g.reg.Load().tenants[req.Tenant]
	if t == nil {
		return nil, ErrUnknownTenant
	}
	if req.TokenErr != nil {
		return nil, req.TokenErr
	}
	proof, err := g.checkRequestProof(req, g.now())
	if err != nil {
		return nil, err
	}
	p, err := g.authenticate(ctx, t, req.Route, req.Token)
	if err != nil {
		return nil, err
	}
	err = checkBinding(req, p, proof)
	if err == nil {
		err = authorizePrincipal(t, req, p)
	}
	if km := t.byName[p.KeyManager]; km != nil {
		km.stats.count(p.Cached, err)
	}
	return p, err
}

// authorizePrincipal applies checks 3 to 6 to a valid principal. It may
// replace p.Scopes with the effective scopes.
func authorizePrincipal(t *Tenant, req *Request, p *Principal) error {
	route := req.Route
	if route == nil {
		return nil
	}
	app := t.Application(p.KeyManager, p.ClientID)
	if app != nil && (len(app.Scopes) > 0 || len(app.DenyScopes) > 0) {
		var add []string
		if p.OwnedByClient() {
			add = app.Scopes
		}
		p.Scopes = scopes.Effective(p.Scopes, add, app.DenyScopes)
	}
	if route.requireSub {
		if app == nil {
			return ErrNoApplication
		}
		if !app.Subscribed(route.api) {
			return ErrNotSubscribed
		}
	}
	for _, c := range route.claimReqs {
		raw, ok := p.ClaimRaw(c.Path[0])
		if !ok || !c.SatisfiedBy([]byte(raw)) {
			return ErrClaimRequirement
		}
	}
	if route.policy != nil {
		path, ok := scopes.NormalizePath(req.EscapedPath)
		if !ok {
			return ErrBadPath
		}
		var denied []string
		if app != nil {
			denied = app.DenyScopes
		}
		if d := route.policy.CheckDenying(req.Method, path, p.Scopes, denied); !d.Allowed {
			return &scopeDenial{required: d.Required}
		}
	}
	return nil
}

// scopeDenial is ErrInsufficientScope with the scopes that would satisfy
// the resource.
type scopeDenial struct{ required []string }

func (e *scopeDenial) Error() string { return ErrInsufficientScope.Description }
func (e *scopeDenial) Unwrap() error { return ErrInsufficientScope }

// RequiredScopes returns the scopes that would have satisfied the resource
// of an insufficient-scope denial, or nil.
func RequiredScopes(err error) []string {
	var sd *scopeDenial
	if errors.As(err, &sd) {
		return sd.required
	}
	return nil
}
