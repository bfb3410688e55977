package catalog

import (
	"context"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// ApplicationView is an application as the admin API shows it.
type ApplicationView struct {
	Tenant      string                  `json:"tenant"`
	Source      string                  `json:"source"`
	ETag        string                  `json:"etag,omitempty"`
	Created     time.Time               `json:"created,omitzero"`
	Updated     time.Time               `json:"updated,omitzero"`
	Application keymanagers.Application `json:"application"`
}

func (a *apiApp) view() ApplicationView {
	ap := a.app
	if a.rec.Registration != nil {
		ap.ClientSecret = keymanagers.Mask // shown once, at registration
	}
	return ApplicationView{Tenant: a.tenant, Source: "api", ETag: a.rec.etag(), Created: a.rec.Created,
		Updated: a.rec.Updated, Application: ap}
}

// Applications lists a tenant's applications: config ones, then API ones
// by id.
func (c *Catalog) Applications(tenant string) []ApplicationView {
	out := []ApplicationView{}
	for _, ap := range c.cfg.ConfigApps[tenant] {
		out = append(out, ApplicationView{Tenant: tenant, Source: "config", Application: *ap})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.current().sortedApps(tenant) {
		out = append(out, a.view())
	}
	return out
}

// Application returns one application.
func (c *Catalog) Application(tenant, id string) (ApplicationView, error) {
	for _, v := range c.Applications(tenant) {
		if v.Application.ID == id {
			return v, nil
		}
	}
	return ApplicationView{}, fail(ErrNotFound, "application %q of tenant %q not found", id, tenant)
}

func (c *Catalog) configApp(tenant, id string) bool {
	for _, ap := range c.cfg.ConfigApps[tenant] {
		if ap.ID == id {
			return true
		}
	}
	return false
}

func (c *Catalog) appChecks(tenant string) error {
	if tenant == keymanagers.GlobalTenant {
		return fail(ErrInvalid, "applications belong to a tenant, not to %q", keymanagers.GlobalTenant)
	}
	return nil
}

// PutApplication creates (create) or replaces an API-made application.
// A create with register: true registers the client at the Key Manager
// first (registration.go).
func (c *Catalog) PutApplication(ctx context.Context, tenant string, ap keymanagers.Application, ifMatch string, create bool) (ApplicationView, error) {
	if err := c.appChecks(tenant); err != nil {
		return ApplicationView{}, err
	}
	if create && ap.Register {
		return c.registerApplication(ctx, tenant, ap)
	}
	return c.putApplication(ctx, tenant, ap, ifMatch, create, nil)
}

// putApplication stores ap; reg is the registration of a new registered
// application (nil otherwise).
func (c *Catalog) putApplication(ctx context.Context, tenant string, ap keymanagers.Application, ifMatch string, create bool, reg *keymanagers.RegisteredClient) (ApplicationView, error) {
	if err := checkRegisteredFields(ap, reg != nil); err != nil {
		return ApplicationView{}, err
	}
	if !create {
		// A registered application keeps its client: fill what the body
		// leaves out before validating (checked again under the lock).
		c.mu.Lock()
		cur := c.apps[tenant][ap.ID]
		c.mu.Unlock()
		if cur != nil && cur.rec.Registration != nil {
			if err := keepRegistration(cur.app, &ap); err != nil {
				return ApplicationView{}, err
			}
		}
	}
	if err := ap.Validate(); err != nil {
		return ApplicationView{}, err
	}
	var v ApplicationView
	err := c.write(ctx, func() error {
		if c.configApp(tenant, ap.ID) {
			return fail(ErrConflict, "application %q of tenant %q is defined in the Caddy configuration and is read-only here", ap.ID, tenant)
		}
		cur := c.apps[tenant][ap.ID]
		if cur != nil && cur.rec.Registration != nil {
			if err := keepRegistration(cur.app, &ap); err != nil {
				return err
			}
			reg = cur.rec.Registration
		}
		if reg == nil && (ap.Registered || ap.ClientSecret != "") {
			return keymanagers.FieldErrors{{Field: "registered", Message: "registered and client_secret are set by the gateway when it registers the client (create with register: true)"}}
		}
		ap.ClientSecret = ""
		rec := appRecord{Application: ap, Registration: reg, stamp: newStamp(nil)}
		switch {
		case create && cur != nil:
			return fail(ErrConflict, "application %q of tenant %q already exists", ap.ID, tenant)
		case !create && cur == nil:
			return fail(ErrNotFound, "application %q of tenant %q not found", ap.ID, tenant)
		case cur != nil:
			if err := cur.rec.checkIfMatch(ifMatch); err != nil {
				return err
			}
			rec.stamp = newStamp(&cur.rec.stamp)
		}
		cand := &apiApp{tenant: tenant, app: ap, rec: rec}
		next := c.current().withApp(tenant, ap.ID, cand)
		reg, err := c.compose(next)
		if err != nil {
			return fail(ErrConflict, "%v", err)
		}
		if cand.sum, err = c.store(ctx, appKey(tenant, ap.ID), rec); err != nil {
			return err
		}
		c.commit(next, reg)
		v = cand.view()
		return nil
	})
	return v, err
}

// DeleteApplication deletes an API-made application, and first its client
// at the Key Manager when the gateway registered it (registration.go).
func (c *Catalog) DeleteApplication(ctx context.Context, tenant, id, ifMatch string) error {
	return c.DeleteApplicationWith(ctx, tenant, id, ifMatch, DeleteOptions{})
}

// DeleteApplicationWith is DeleteApplication with options.
func (c *Catalog) DeleteApplicationWith(ctx context.Context, tenant, id, ifMatch string, opts DeleteOptions) error {
	if err := c.appChecks(tenant); err != nil {
		return err
	}
	if err := c.deregister(ctx, tenant, id, ifMatch, opts); err != nil {
		return err
	}
	return c.write(ctx, func() error {
		if c.configApp(tenant, id) {
			return fail(ErrConflict, "application %q of tenant %q is defined in the Caddy configuration and is read-only here", id, tenant)
		}
		cur := c.apps[tenant][id]
		if cur == nil {
			return fail(ErrNotFound, "application %q of tenant %q not found", id, tenant)
		}
		if err := cur.rec.checkIfMatch(ifMatch); err != nil {
			return err
		}
		next := c.current().withApp(tenant, id, nil)
		reg, err := c.compose(next)
		if err != nil {
			return err
		}
		if err := c.remove(ctx, appKey(tenant, id)); err != nil {
			return err
		}
		c.commit(next, reg)
		return nil
	})
}
