package catalog

import (
	"maps"
	"sort"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// state is the API-made part of a snapshot. Changes build a new state
// (copy on write), compose it, and commit it only if that worked.
type state struct {
	kms  map[string]map[string]*apiKM
	apps map[string]map[string]*apiApp
}

func (c *Catalog) current() state { return state{kms: c.kms, apps: c.apps} }

// withKM returns s with tenant/name set to k (nil removes it).
func (s state) withKM(tenant, name string, k *apiKM) state {
	s.kms = maps.Clone(s.kms)
	m := maps.Clone(s.kms[tenant])
	if m == nil {
		m = map[string]*apiKM{}
	}
	if k == nil {
		delete(m, name)
	} else {
		m[name] = k
	}
	if len(m) == 0 {
		delete(s.kms, tenant)
	} else {
		s.kms[tenant] = m
	}
	return s
}

// withApp returns s with tenant/id set to a (nil removes it).
func (s state) withApp(tenant, id string, a *apiApp) state {
	s.apps = maps.Clone(s.apps)
	m := maps.Clone(s.apps[tenant])
	if m == nil {
		m = map[string]*apiApp{}
	}
	if a == nil {
		delete(m, id)
	} else {
		m[id] = a
	}
	if len(m) == 0 {
		delete(s.apps, tenant)
	} else {
		s.apps[tenant] = m
	}
	return s
}

// sortedKMs lists API Key Managers in their election order after the
// config's: creation time, then tenant, then name.
func (s state) sortedKMs() []*apiKM {
	var out []*apiKM
	for _, m := range s.kms {
		for _, k := range m {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].rec.Created.Equal(out[j].rec.Created) {
			return out[i].rec.Created.Before(out[j].rec.Created)
		}
		if out[i].tenant != out[j].tenant {
			return out[i].tenant < out[j].tenant
		}
		return out[i].rec.Definition.Name < out[j].rec.Definition.Name
	})
	return out
}

// sortedApps lists one tenant's API applications by id.
func (s state) sortedApps(tenant string) []*apiApp {
	ids := make([]string, 0, len(s.apps[tenant]))
	for id := range s.apps[tenant] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*apiApp, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.apps[tenant][id])
	}
	return out
}

// compose is the one registry builder: config Key Managers, then API
// ones; config applications, then API ones.
func (c *Catalog) compose(s state) (*keymanagers.Registry, error) {
	tenants := map[string][]*keymanagers.KeyManager{}
	for t, kms := range c.cfg.ConfigTenants {
		tenants[t] = append([]*keymanagers.KeyManager(nil), kms...)
	}
	globals := append([]*keymanagers.KeyManager(nil), c.cfg.ConfigGlobals...)
	for _, k := range s.sortedKMs() {
		if k.tenant == keymanagers.GlobalTenant {
			globals = append(globals, k.rt.KeyManager)
		} else {
			tenants[k.tenant] = append(tenants[k.tenant], k.rt.KeyManager)
		}
	}
	reg, err := keymanagers.NewRegistry(tenants, globals)
	if err != nil {
		return nil, err
	}
	apps := map[string][]*keymanagers.Application{}
	for t, list := range c.cfg.ConfigApps {
		apps[t] = append(apps[t], list...)
	}
	for t := range s.apps {
		for _, a := range s.sortedApps(t) {
			app := a.app
			apps[t] = append(apps[t], &app)
		}
	}
	return reg.WithApplications(apps)
}

// commit installs s and its snapshot.
func (c *Catalog) commit(s state, reg *keymanagers.Registry) {
	c.kms, c.apps = s.kms, s.apps
	c.cfg.Gateway.Swap(reg)
}

// installRevocations gives the gateway the current revocation set.
func (c *Catalog) installRevocations() {
	list := make([]keymanagers.Revocation, 0, len(c.revs))
	for _, r := range c.revs {
		list = append(list, r)
	}
	c.cfg.Gateway.SetRevocations(keymanagers.NewRevocations(list, now()))
}
