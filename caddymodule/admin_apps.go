package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// appView is an application as the admin API shows it.
type appView struct {
	Tenant      string                  `json:"tenant"`
	Source      string                  `json:"source"`
	ETag        string                  `json:"etag,omitempty"`
	Created     time.Time               `json:"created,omitzero"`
	Updated     time.Time               `json:"updated,omitzero"`
	Application keymanagers.Application `json:"application"`
}

func appStorageKey(tenant, id string) string {
	return path.Join(storageApplications, tenant, id+".json")
}

// serveApplications handles /keymanagers/{tenant}/applications/[{id}].
func (a *adminAPI) serveApplications(w http.ResponseWriter, r *http.Request, tenant, id string) error {
	if tenant == keymanagers.GlobalTenant {
		return apiErr(http.StatusBadRequest, "applications belong to a tenant, not to %q", keymanagers.GlobalTenant)
	}
	if id == "" {
		switch r.Method {
		case http.MethodGet:
			if !a.app.tenantExists(tenant) {
				return apiErr(http.StatusNotFound, "tenant %q not found", tenant)
			}
			return writeJSON(w, http.StatusOK, a.app.listApps(tenant))
		case http.MethodPost:
			ap, err := decodeApplication(r)
			if err != nil {
				return err
			}
			v, err := a.app.putApp(r.Context(), tenant, ap, "", true)
			if err != nil {
				if isFieldErr(err) {
					return writeFieldErrors(w, err)
				}
				return err
			}
			a.audit(r, tenant, "application "+ap.ID, "create")
			w.Header().Set("ETag", v.ETag)
			return writeJSON(w, http.StatusCreated, v)
		}
		return methodNotAllowed(r, "GET", "POST")
	}
	switch r.Method {
	case http.MethodGet:
		for _, v := range a.app.listApps(tenant) {
			if v.Application.ID == id {
				if v.ETag != "" {
					w.Header().Set("ETag", v.ETag)
				}
				return writeJSON(w, http.StatusOK, v)
			}
		}
		return apiErr(http.StatusNotFound, "application %q of tenant %q not found", id, tenant)
	case http.MethodPut:
		ap, err := decodeApplication(r)
		if err != nil {
			return err
		}
		if ap.ID == "" {
			ap.ID = id
		}
		if ap.ID != id {
			return apiErr(http.StatusBadRequest, "the body names %q but the path names %q", ap.ID, id)
		}
		v, err := a.app.putApp(r.Context(), tenant, ap, r.Header.Get("If-Match"), false)
		if err != nil {
			if isFieldErr(err) {
				return writeFieldErrors(w, err)
			}
			return err
		}
		a.audit(r, tenant, "application "+id, "replace")
		w.Header().Set("ETag", v.ETag)
		return writeJSON(w, http.StatusOK, v)
	case http.MethodDelete:
		if err := a.app.deleteApp(r.Context(), tenant, id, r.Header.Get("If-Match")); err != nil {
			return err
		}
		a.audit(r, tenant, "application "+id, "delete")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r, "GET", "PUT", "DELETE")
}

func decodeApplication(r *http.Request) (keymanagers.Application, error) {
	var ap keymanagers.Application
	err := decodeBody(r, &ap, "application")
	return ap, err
}

func (a *App) listApps(tenant string) []appView {
	out := []appView{}
	if t := a.Tenants[tenant]; t != nil {
		for _, ap := range t.Applications {
			out = append(out, appView{Tenant: tenant, Source: "config", Application: *ap})
		}
	}
	a.dyn.mu.Lock()
	defer a.dyn.mu.Unlock()
	ids := make([]string, 0, len(a.dyn.apps[tenant]))
	for id := range a.dyn.apps[tenant] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		x := a.dyn.apps[tenant][id]
		out = append(out, appView{Tenant: tenant, Source: "api", ETag: x.etag, Created: x.created, Updated: x.updated, Application: x.app})
	}
	return out
}

func (a *App) configApp(tenant, id string) bool {
	if t := a.Tenants[tenant]; t != nil {
		for _, ap := range t.Applications {
			if ap.ID == id {
				return true
			}
		}
	}
	return false
}

// putApp creates (create) or replaces an API application.
func (a *App) putApp(ctx context.Context, tenant string, ap keymanagers.Application, ifMatch string, create bool) (appView, error) {
	if err := ap.Validate(); err != nil {
		return appView{}, err
	}
	var v appView
	err := a.writeLocked(ctx, func() error {
		if a.configApp(tenant, ap.ID) {
			return apiErr(http.StatusConflict, "application %q of tenant %q is defined in the Caddy configuration and is read-only here", ap.ID, tenant)
		}
		cur := a.dyn.apps[tenant][ap.ID]
		switch {
		case create && cur != nil:
			return apiErr(http.StatusConflict, "application %q of tenant %q already exists", ap.ID, tenant)
		case !create && cur == nil:
			return apiErr(http.StatusNotFound, "application %q of tenant %q not found", ap.ID, tenant)
		case !create && ifMatch != "" && !etagMatches(ifMatch, cur.etag):
			return apiErr(http.StatusPreconditionFailed, "If-Match %s does not match the current ETag %s", ifMatch, cur.etag)
		}
		now := time.Now().UTC()
		cand := &apiApp{tenant: tenant, app: ap, created: now, updated: now}
		if cur != nil {
			cand.created = cur.created
		}
		base, err := a.composeKMsLocked()
		if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		reg, err := base.WithApplications(a.allApplicationsLocked(cand))
		if err != nil {
			return apiErr(http.StatusConflict, "%v", err)
		}
		b, _ := json.MarshalIndent(storedApp{Application: ap, Created: cand.created, Updated: now}, "", "  ")
		if err := a.storage.Store(ctx, appStorageKey(tenant, ap.ID), b); err != nil {
			return apiErr(http.StatusInternalServerError, "storing: %v", err)
		}
		cand.etag = etagOf(b)
		if a.dyn.apps[tenant] == nil {
			a.dyn.apps[tenant] = map[string]*apiApp{}
		}
		a.dyn.apps[tenant][ap.ID] = cand
		a.gateway.Swap(reg)
		v = appView{Tenant: tenant, Source: "api", ETag: cand.etag, Created: cand.created, Updated: cand.updated, Application: ap}
		return nil
	})
	return v, err
}

func (a *App) deleteApp(ctx context.Context, tenant, id, ifMatch string) error {
	return a.writeLocked(ctx, func() error {
		if a.configApp(tenant, id) {
			return apiErr(http.StatusConflict, "application %q of tenant %q is defined in the Caddy configuration and is read-only here", id, tenant)
		}
		cur := a.dyn.apps[tenant][id]
		if cur == nil {
			return apiErr(http.StatusNotFound, "application %q of tenant %q not found", id, tenant)
		}
		if ifMatch != "" && !etagMatches(ifMatch, cur.etag) {
			return apiErr(http.StatusPreconditionFailed, "If-Match %s does not match the current ETag %s", ifMatch, cur.etag)
		}
		if err := a.storage.Delete(ctx, appStorageKey(tenant, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return apiErr(http.StatusInternalServerError, "deleting from storage: %v", err)
		}
		delete(a.dyn.apps[tenant], id)
		if err := a.rebuildLocked(); err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		return nil
	})
}
