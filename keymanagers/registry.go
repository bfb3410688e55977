package keymanagers

import (
	"fmt"
	"slices"
	"sort"
)

// GlobalTenant is the owner name of Global Key Managers.
const GlobalTenant = "global"

// Registry is an immutable snapshot of every tenant's Key Managers. The
// Gateway holds it behind an atomic pointer and swaps whole snapshots, so
// the request path never locks.
type Registry struct {
	tenants map[string]*Tenant
	globals []*KeyManager
	all     []*KeyManager
}

// Tenant is one tenant's view: its own Key Managers, then the Global ones,
// in definition order.
type Tenant struct {
	Name     string
	kms      []*KeyManager
	byName   map[string]*KeyManager
	byIssuer map[string]*KeyManager
	// dynamic are enabled Key Managers whose issuer comes from discovery.
	dynamic []*KeyManager
	// apps index applications by Key Manager name, then client id.
	apps    map[string]map[string]*Application
	appList []*Application
}

// KeyManagers returns the tenant's visible Key Managers (own then Global),
// in definition order.
func (t *Tenant) KeyManagers() []*KeyManager { return t.kms }

// KeyManager returns the visible Key Manager with that name.
func (t *Tenant) KeyManager(name string) *KeyManager { return t.byName[name] }

// NewRegistry builds a snapshot. tenants maps tenant names to their Key
// Managers in definition order. It refuses a tenant named "global", a
// tenant Key Manager that shadows a Global one, and two enabled Key
// Managers with the same configured issuer visible to one tenant.
func NewRegistry(tenants map[string][]*KeyManager, globals []*KeyManager) (*Registry, error) {
	r := &Registry{tenants: map[string]*Tenant{}, globals: globals}
	r.all = append(r.all, globals...)
	globalNames := map[string]bool{}
	for _, g := range globals {
		if globalNames[g.Name()] {
			return nil, fmt.Errorf("global key manager %q is defined twice", g.Name())
		}
		globalNames[g.Name()] = true
	}
	names := make([]string, 0, len(tenants))
	for n := range tenants {
		names = append(names, n)
	}
	sort.Strings(names)
	// Global Key Managers with one issuer collide for every tenant.
	if _, err := buildTenant(GlobalTenant, nil, globals); err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == GlobalTenant {
			return nil, fmt.Errorf("tenant name %q is reserved for Global Key Managers", GlobalTenant)
		}
		if !ValidName(name) {
			return nil, fmt.Errorf("tenant name %q is not valid: use 1-64 characters of a-z, 0-9, '.', '_' or '-'", name)
		}
		t, err := buildTenant(name, tenants[name], globals)
		if err != nil {
			return nil, err
		}
		r.tenants[name] = t
		r.all = append(r.all, tenants[name]...)
	}
	return r, nil
}

func buildTenant(name string, own, globals []*KeyManager) (*Tenant, error) {
	t := &Tenant{Name: name, byName: map[string]*KeyManager{}, byIssuer: map[string]*KeyManager{}}
	t.kms = append(slices.Clone(own), globals...)
	for _, km := range t.kms {
		if prev, ok := t.byName[km.Name()]; ok {
			if prev.tenant != km.tenant {
				return nil, fmt.Errorf("tenant %q: key manager %q has the name of a Global Key Manager; rename one of them", name, km.Name())
			}
			return nil, fmt.Errorf("tenant %q: key manager %q is defined twice", name, km.Name())
		}
		t.byName[km.Name()] = km
		if !km.def.IsEnabled() {
			continue
		}
		if !km.staticIssuer {
			t.dynamic = append(t.dynamic, km)
			continue
		}
		for _, iss := range km.Issuers() {
			if prev, ok := t.byIssuer[iss]; ok {
				return nil, fmt.Errorf("tenant %q: key managers %s and %s have the same issuer %q; a token's issuer must pick exactly one Key Manager",
					name, prev.label(), km.label(), iss)
			}
			t.byIssuer[iss] = km
		}
	}
	return t, nil
}

func (km *KeyManager) label() string {
	if km.tenant == GlobalTenant {
		return fmt.Sprintf("%q (global)", km.Name())
	}
	return fmt.Sprintf("%q", km.Name())
}

// Tenant returns the tenant's view, or nil.
func (r *Registry) Tenant(name string) *Tenant { return r.tenants[name] }

// TenantNames returns the tenant names, sorted.
func (r *Registry) TenantNames() []string {
	out := make([]string, 0, len(r.tenants))
	for n := range r.tenants {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Globals returns the Global Key Managers.
func (r *Registry) Globals() []*KeyManager { return r.globals }

// All returns every Key Manager once.
func (r *Registry) All() []*KeyManager { return r.all }
