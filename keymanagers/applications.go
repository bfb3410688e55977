package keymanagers

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// Application is an application (OAuth client) registered at the gateway
// for one tenant: the Key Manager and client id that identify its tokens,
// scopes the gateway grants it or takes away, and the APIs it may call.
type Application struct {
	// ID names the application within the tenant.
	ID string `json:"id"`
	// KeyManager and ClientID identify the application's tokens.
	KeyManager string `json:"key_manager"`
	ClientID   string `json:"client_id"`
	// Scopes are added to the token's scopes when the token belongs to the
	// application itself (client-credentials tokens), never to user tokens.
	Scopes []string `json:"scopes,omitempty"`
	// DenyScopes are removed from any token of the application.
	DenyScopes []string `json:"deny_scopes,omitempty"`
	// Subscriptions are the API names the application may call on routes
	// that require a subscription.
	Subscriptions []string `json:"subscriptions,omitempty"`

	// Developer keys (RFC 7591, see registration.go and the catalog).
	// Register asks the admin API to create the client at the Key Manager
	// (request only; client_id must then be empty). The metadata below is
	// sent to the Key Manager and kept. Registered is set by the gateway
	// when it created the client; ClientSecret is returned once, in the
	// answer to that create, and masked in every later answer.
	Register           bool     `json:"register,omitempty"`
	ClientName         string   `json:"client_name,omitempty"`
	GrantTypes         []string `json:"grant_types,omitempty"`
	RedirectURIs       []string `json:"redirect_uris,omitempty"`
	RegistrationScopes []string `json:"registration_scopes,omitempty"`
	Registered         bool     `json:"registered,omitempty"`
	ClientSecret       string   `json:"client_secret,omitempty"`
}

// Validate checks an application on its own.
func (a *Application) Validate() error {
	var errs FieldErrors
	if !ValidName(a.ID) {
		errs = append(errs, FieldError{"id", fmt.Sprintf("%q is not a valid application id: use 1-64 characters of a-z, 0-9, '.', '_' or '-'", a.ID)})
	}
	if a.KeyManager == "" {
		errs = append(errs, FieldError{"key_manager", "is required"})
	}
	switch {
	case a.Register && a.ClientID != "":
		errs = append(errs, FieldError{"client_id", "must be empty with register: true (the Key Manager assigns it)"})
	case !a.Register && a.ClientID == "":
		errs = append(errs, FieldError{"client_id", "is required (or register: true to have the Key Manager create the client)"})
	}
	errs = append(errs, a.validateRegistration()...)
	for i, s := range append(slices.Clone(a.Scopes), a.DenyScopes...) {
		if s == "" || !validScopeToken(s) {
			errs = append(errs, FieldError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not a scope token", s)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func validScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Subscribed reports whether the application may call api.
func (a *Application) Subscribed(api string) bool { return slices.Contains(a.Subscriptions, api) }

// WithApplications returns a copy of the registry with each tenant's
// applications indexed by (Key Manager, client id). Every application's
// Key Manager must be visible to its tenant.
func (r *Registry) WithApplications(apps map[string][]*Application) (*Registry, error) {
	out := &Registry{tenants: make(map[string]*Tenant, len(r.tenants)), globals: r.globals, all: r.all}
	for name, t := range r.tenants {
		cp := *t
		cp.apps = nil
		cp.ambiguityLogged = new(atomic.Bool) // a new snapshot logs anew
		out.tenants[name] = &cp
	}
	for tenant, list := range apps {
		t := out.tenants[tenant]
		if t == nil && len(list) > 0 {
			return nil, fmt.Errorf("applications of tenant %q: no such tenant", tenant)
		}
		ids := map[string]bool{}
		for i, a := range list {
			if err := a.Validate(); err != nil {
				return nil, fmt.Errorf("tenant %q: application[%d] (%s): %v", tenant, i, a.ID, err)
			}
			if a.Register || a.ClientSecret != "" {
				return nil, fmt.Errorf("tenant %q: application %q: register and client_secret are for the admin API only (it registers the client at the Key Manager)", tenant, a.ID)
			}
			if ids[a.ID] {
				return nil, fmt.Errorf("tenant %q: application %q is defined twice", tenant, a.ID)
			}
			ids[a.ID] = true
			if t.byName[a.KeyManager] == nil {
				return nil, fmt.Errorf("tenant %q: application %q: key manager %q is not visible to the tenant", tenant, a.ID, a.KeyManager)
			}
			if t.apps == nil {
				t.apps = map[string]map[string]*Application{}
			}
			if t.apps[a.KeyManager] == nil {
				t.apps[a.KeyManager] = map[string]*Application{}
			}
			if prev := t.apps[a.KeyManager][a.ClientID]; prev != nil {
				return nil, fmt.Errorf("tenant %q: applications %q and %q both claim client id %q of key manager %q", tenant, prev.ID, a.ID, a.ClientID, a.KeyManager)
			}
			t.apps[a.KeyManager][a.ClientID] = a
			t.appList = append(t.appList, a)
		}
	}
	return out, nil
}

// Application returns the tenant's application for a principal's Key
// Manager and client id, or nil.
func (t *Tenant) Application(keyManager, clientID string) *Application {
	if t == nil || t.apps == nil || clientID == "" {
		return nil
	}
	return t.apps[keyManager][clientID]
}

// Applications lists the tenant's applications in definition order.
func (t *Tenant) Applications() []*Application { return t.appList }

// OwnedByClient reports whether the principal's token belongs to the
// application itself rather than to a user (a client-credentials token).
// Vendor markers decide when present (WSO2 aut, Auth0 gty, Azure AD
// idtyp); otherwise Auth0's "<client_id>@clients" subject, a subject equal
// to the client id, or (introspection only) no subject at all. An IdP whose
// users choose their own subject (a username) must not let a username equal
// a client id: docs/scopes.md says so.
func (p *Principal) OwnedByClient() bool {
	if p.ClientID == "" {
		return false
	}
	switch v, _ := p.Claim("aut"); v {
	case "APPLICATION":
		return true
	case "APPLICATION_USER":
		return false
	}
	switch v, _ := p.Claim("idtyp"); v {
	case "app":
		return true
	case "user":
		return false
	}
	if v, ok := p.Claim("gty"); ok && v == "client-credentials" {
		return true
	}
	if p.Subject == "" {
		return p.introspected
	}
	return p.Subject == p.ClientID || p.Subject == p.ClientID+"@clients"
}

// ClientMarkerClaims are the claims OwnedByClient reads; hosts keep them
// with each result when applications are configured.
var ClientMarkerClaims = []string{"aut", "gty", "idtyp"}
