package keymanagers

import (
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
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
	// ambiguityLogged makes an ambiguous issuer log once per snapshot
	// (every refused request is still counted, by its reason).
	ambiguityLogged *atomic.Bool
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
	names := make([]string, 0, len(tenants))
	for n := range tenants {
		if n == GlobalTenant {
			return nil, fmt.Errorf("tenant name %q is reserved for Global Key Managers", GlobalTenant)
		}
		if !ValidName(n) {
			return nil, fmt.Errorf("tenant name %q is not valid: use 1-64 characters of a-z, 0-9, '.', '_' or '-'", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var placed []Placement
	for _, km := range globals {
		placed = append(placed, km.placement())
	}
	for _, n := range names {
		for _, km := range tenants[n] {
			placed = append(placed, km.placement())
		}
	}
	if err := CheckVisibility(names, placed); err != nil {
		return nil, err
	}
	for _, name := range names {
		r.tenants[name] = buildTenant(name, tenants[name], globals)
		r.all = append(r.all, tenants[name]...)
	}
	return r, nil
}

// buildTenant indexes a tenant's view; CheckVisibility has already
// refused clashing names and issuers.
func buildTenant(name string, own, globals []*KeyManager) *Tenant {
	t := &Tenant{Name: name, byName: map[string]*KeyManager{}, byIssuer: map[string]*KeyManager{}, ambiguityLogged: new(atomic.Bool)}
	t.kms = append(slices.Clone(own), globals...)
	for _, km := range t.kms {
		t.byName[km.Name()] = km
		if !km.def.IsEnabled() {
			continue
		}
		if !km.staticIssuer {
			t.dynamic = append(t.dynamic, km)
			continue
		}
		for _, iss := range km.Issuers() {
			t.byIssuer[iss] = km
		}
	}
	return t
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
