package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kmgate/caddy-keymanager/keymanagers"
	"github.com/kmgate/caddy-keymanager/scopes"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxTokenSize is the largest bearer token accepted by default.
const DefaultMaxTokenSize = 8 << 10

// Handler is the `keymanager` HTTP handler: it validates the bearer token
// against the tenant's Key Managers and, on success, exposes the principal
// and calls the next handler.
//
// Placeholders set on success: {keymanager.tenant}, {keymanager.key_manager},
// {keymanager.issuer}, {keymanager.subject}, {keymanager.client_id},
// {keymanager.scopes}, {keymanager.claims.NAME}, {keymanager.binding}
// (none, dpop, mtls or dpop+mtls) and {http.auth.user.id}.
// On failure: {keymanager.error.code}, {keymanager.error.message},
// {keymanager.error.description} and {keymanager.error.reason} (the
// stable reason id, docs/troubleshooting.md).
type Handler struct {
	// Tenant is a tenant name or a placeholder that yields one, such as
	// {http.request.header.X-Tenant} or {http.request.host.labels.2}.
	Tenant string `json:"tenant"`
	// KeyManagers limits the accepted Key Managers by name. Default: every
	// Key Manager the tenant can see, Global ones included.
	KeyManagers []string `json:"key_managers,omitempty"`
	// ForwardClaim adds claims to the upstream request as headers. Inbound
	// headers of the same names are always removed first, so clients cannot
	// spoof them.
	ForwardClaim []ForwardClaim `json:"forward_claim,omitempty"`
	// KeepToken keeps the Authorization header on the upstream request;
	// by default it is removed.
	KeepToken bool `json:"keep_token,omitempty"`
	// MaxTokenSize refuses longer tokens before any parsing (default 8 KiB).
	MaxTokenSize int `json:"max_token_size,omitempty"`
	// Realm is the realm in WWW-Authenticate challenges (default: the
	// tenant name).
	Realm string `json:"realm,omitempty"`

	// Scope are the resource scope rules (METHOD PATH SCOPE...): the most
	// specific rule for the request decides which scopes it needs.
	Scope []ScopeRule `json:"scope,omitempty"`
	// ScopeStrategy is exact (default), hierarchic or wildcard.
	ScopeStrategy string `json:"scope_strategy,omitempty"`
	// Unmatched decides requests no scope rule matches: allow (default)
	// or deny.
	Unmatched string `json:"unmatched,omitempty"`
	// API names the API this route serves (for subscriptions).
	API string `json:"api,omitempty"`
	// RequireSubscription refuses (403) tokens whose application is not
	// subscribed to API, and tokens that name no known application.
	RequireSubscription bool `json:"require_subscription,omitempty"`
	// RequireClaim lists claim requirements; all must hold.
	RequireClaim []ClaimRequirement `json:"require_claim,omitempty"`

	// Sender-constrained tokens and protected-resource metadata (dpop.go,
	// resource_metadata.go).
	//
	// DPoP overrides the Key Managers' dpop mode on this route: required,
	// allowed or off (default: each Key Manager's, itself allowed by
	// default).
	DPoP string `json:"dpop,omitempty"`
	// DPoPNonce requires a server nonce in DPoP proofs (use_dpop_nonce,
	// DPoP-Nonce header; RFC 9449 section 9).
	DPoPNonce bool `json:"dpop_nonce,omitempty"`
	// ExternalOrigin (scheme://host[:port]) is the origin clients use when
	// another proxy is in front of Caddy; DPoP proofs' htu is compared with
	// it and the request path. Default: this connection's scheme and Host.
	ExternalOrigin string `json:"external_origin,omitempty"`
	// Resource is this API's resource identifier (RFC 9728): its metadata
	// is served by keymanager_resource_metadata and 401 challenges carry
	// resource_metadata.
	Resource string `json:"resource,omitempty"`

	// BackendJWT sends the upstream a JWT signed by the gateway that
	// states the caller (backend_jwt.go).
	BackendJWT *BackendJWT `json:"backend_jwt,omitempty"`

	app       *App
	route     *keymanagers.Route
	dynTenant bool
	forward   []forwardHeader
	logger    *zap.Logger
	// resourceMeta is the metadata URL of Resource ("" without one).
	resourceMeta string
}

// ForwardClaim copies one claim into one upstream request header.
type ForwardClaim struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// ScopeRule is one `scope METHOD PATH SCOPE...` rule.
type ScopeRule struct {
	Method string   `json:"method"`
	Path   string   `json:"path"`
	Scopes []string `json:"scopes"`
	// Match is any (default: one scope suffices) or all.
	Match string `json:"match,omitempty"`
}

// ClaimRequirement is one `require_claim PATH VALUE...`: the claim at the
// dot path (into nested objects) must equal one of the values, or be an
// array holding one of them.
type ClaimRequirement struct {
	Claim  string   `json:"claim"`
	Values []string `json:"values"`
}

type forwardHeader struct {
	claim  string
	header string // canonical
	folded string // lower case, '_' as '-': how CGI-style upstreams see it
}

func foldHeaderName(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// dropForwardAliases removes inbound headers that differ from a forwarded
// one only by '_' for '-' (X-User_Id for X-User-Id): WSGI, PHP/CGI, Rack
// and others map both to one variable, so a client could spoof the claim.
func (h *Handler) dropForwardAliases(hdr http.Header) {
	for k := range hdr {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		fk := foldHeaderName(k)
		for _, f := range h.forward {
			if fk == f.folded {
				delete(hdr, k)
				break
			}
		}
	}
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.keymanager",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the app and checks the route's names.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.AppIfConfigured("keymanagers")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return errors.New("the keymanager handler needs the keymanagers app: add a `keymanagers { ... }` global option (Caddyfile) or apps.keymanagers (JSON)")
		}
		return err
	}
	h.app = appIface.(*App)
	if h.MaxTokenSize == 0 {
		h.MaxTokenSize = DefaultMaxTokenSize
	}
	route, err := keymanagers.CompileRoute(h.routeConfig())
	if err != nil {
		return fmt.Errorf("keymanager: %v", err)
	}
	h.route = route
	h.dynTenant = strings.Contains(h.Tenant, "{")
	claims := append([]string(nil), route.NeededClaims()...)
	for _, f := range h.ForwardClaim {
		h.forward = append(h.forward, forwardHeader{claim: f.Claim, header: textproto.CanonicalMIMEHeaderKey(f.Header), folded: foldHeaderName(f.Header)})
		claims = append(claims, f.Claim)
	}
	h.app.addProjectedClaims(claims)
	if h.Resource != "" {
		h.resourceMeta, _ = metadataURL(h.Resource) // checked in Validate
		h.app.resources.add(h)
	}
	return h.provisionBackendJWT()
}

// routeConfig is the handler's authorization rules for the domain.
func (h *Handler) routeConfig() keymanagers.RouteConfig {
	c := keymanagers.RouteConfig{KeyManagers: h.KeyManagers, Strategy: h.ScopeStrategy, Unmatched: h.Unmatched,
		API: h.API, RequireSubscription: h.RequireSubscription, DPoP: h.DPoP, DPoPNonce: h.DPoPNonce}
	for _, r := range h.Scope {
		c.Scopes = append(c.Scopes, scopes.Rule{Method: r.Method, Path: r.Path, Scopes: r.Scopes, Match: r.Match})
	}
	for _, r := range h.RequireClaim {
		c.RequireClaims = append(c.RequireClaims, keymanagers.ClaimRule{Claim: r.Claim, Values: r.Values})
	}
	return c
}

// Validate checks the handler against the app's registry.
func (h *Handler) Validate() error {
	if h.Tenant == "" {
		return errors.New("keymanager: tenant is required (a name or a placeholder)")
	}
	if h.MaxTokenSize < 0 || h.MaxTokenSize > keymanagers.MaxTokenSize {
		return fmt.Errorf("keymanager: max_token_size must be between 1 and %d bytes", keymanagers.MaxTokenSize)
	}
	for i, f := range h.ForwardClaim {
		if f.Claim == "" || f.Header == "" {
			return fmt.Errorf("keymanager: forward_claim[%d]: needs a claim and a header", i)
		}
		if !validHeaderName(f.Header) {
			return fmt.Errorf("keymanager: forward_claim[%d]: %q is not a valid header name", i, f.Header)
		}
		if strings.EqualFold(f.Header, "Authorization") {
			return fmt.Errorf("keymanager: forward_claim[%d]: refusing to overwrite the Authorization header", i)
		}
	}
	if h.RequireSubscription && h.API == "" {
		return errors.New("keymanager: require_subscription needs api NAME")
	}
	if err := h.validateSenderConstraint(); err != nil {
		return err
	}
	if h.dynTenant {
		return nil
	}
	reg := h.app.gateway.Registry()
	t := reg.Tenant(h.Tenant)
	if t == nil {
		return fmt.Errorf("keymanager: tenant %q is not defined in the keymanagers app (known: %s)", h.Tenant, strings.Join(reg.TenantNames(), ", "))
	}
	for _, n := range h.KeyManagers {
		if t.KeyManager(n) == nil {
			return fmt.Errorf("keymanager: key_managers: tenant %q has no key manager %q (own or global)", h.Tenant, n)
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ServeHTTP implements caddyhttp.MiddlewareHandler: one call into the
// domain decides, then the principal is exposed and the request goes on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	req := keymanagers.Request{Tenant: h.Tenant, Route: h.route, Method: r.Method, EscapedPath: r.URL.EscapedPath()}
	if h.dynTenant && repl != nil {
		req.Tenant = repl.ReplaceAll(h.Tenant, "")
	}
	req.Token, req.TokenErr = h.extractToken(r)
	h.senderConstraint(r, &req)
	p, err := h.app.gateway.Authorize(r.Context(), &req)
	if err != nil {
		h.observeDenial(req.Tenant, p, err)
		return h.deny(w, r, repl, req.Tenant, err)
	}
	h.observe(req.Tenant, p.KeyManager, p.Cached)
	h.observeBinding(p.Binding)
	if h.DPoPNonce {
		w.Header().Set("DPoP-Nonce", h.app.gateway.DPoPNonce())
	}
	if repl != nil {
		repl.Map(principalPlaceholders(p))
	}
	if len(h.forward) > 0 {
		h.dropForwardAliases(r.Header)
	}
	for _, f := range h.forward {
		r.Header.Del(f.header)
		if v, ok := p.Claim(f.claim); ok {
			r.Header.Set(f.header, v)
		}
	}
	if !h.KeepToken {
		r.Header.Del("Authorization")
		r.Header.Del("DPoP")
	}
	if h.BackendJWT != nil {
		if err := h.BackendJWT.apply(r, p); err != nil {
			return err
		}
	}
	return next.ServeHTTP(w, r)
}

// extractToken reads the access token from the Authorization header
// (Bearer or DPoP scheme; senderConstraint tells which).
func (h *Handler) extractToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", keymanagers.ErrNoToken
	}
	if len(vals) > 1 {
		return "", keymanagers.ErrMultipleAuth
	}
	v := vals[0]
	if len(v) > h.MaxTokenSize+len("Bearer ") {
		return "", keymanagers.ErrTokenTooLarge
	}
	var tok string
	switch {
	case len(v) >= 7 && strings.EqualFold(v[:7], "Bearer "):
		tok = strings.TrimLeft(v[7:], " ")
	case len(v) >= 5 && strings.EqualFold(v[:5], "DPoP "):
		tok = strings.TrimLeft(v[5:], " ")
	default:
		return "", keymanagers.ErrNoToken
	}
	if tok == "" {
		return "", keymanagers.ErrNoToken
	}
	if len(tok) > h.MaxTokenSize {
		return "", keymanagers.ErrTokenTooLarge
	}
	// The token's syntax (RFC 6750 b64token) is checked by the gateway on a
	// cache miss: a cached token was checked when it was first validated.
	return tok, nil
}

// principalPlaceholders answers the {keymanager.*} placeholders and
// {http.auth.user.id} for one request.
func principalPlaceholders(p *keymanagers.Principal) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		if !strings.HasPrefix(key, "keymanager.") {
			if key == "http.auth.user.id" {
				return p.Subject, true
			}
			return nil, false
		}
		switch key[len("keymanager."):] {
		case "tenant":
			return p.Tenant, true
		case "key_manager":
			return p.KeyManager, true
		case "issuer":
			return p.Issuer, true
		case "subject":
			return p.Subject, true
		case "client_id":
			return p.ClientID, true
		case "scopes":
			return p.Scopes, true
		case "binding":
			return p.Binding, true
		}
		if name, ok := strings.CutPrefix(key, "keymanager.claims."); ok {
			v, _ := p.Claim(name) // an absent claim is empty, not left literal
			return v, true
		}
		return nil, false
	}
}

func (h *Handler) logDenial(r *http.Request, tenant string, err error, e *keymanagers.Error) {
	level := zapcore.DebugLevel
	// An ambiguous issuer is logged once per snapshot by the domain.
	if (e.Kind == keymanagers.KindUnavailable || e.Kind == keymanagers.KindInternal) && e.Reason != keymanagers.ReasonIssuerAmbiguous {
		level = zapcore.WarnLevel
	}
	if c := h.logger.Check(level, "request denied"); c != nil {
		// err carries log-only detail written by the domain; it never
		// holds the token.
		c.Write(zap.String("tenant", tenant), zap.String("reason", e.Reason), zap.String("detail", err.Error()), zap.String("remote_ip", r.RemoteAddr))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
