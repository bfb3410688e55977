package caddymodule

import (
	"net/http"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// serveApplications handles /keymanagers/{tenant}/applications/[{id}].
func (a *adminAPI) serveApplications(w http.ResponseWriter, r *http.Request, tenant, id string) error {
	cat := a.app.catalog
	if tenant == keymanagers.GlobalTenant {
		return apiErr(http.StatusBadRequest, "applications belong to a tenant, not to %q", keymanagers.GlobalTenant)
	}
	if id == "" {
		switch r.Method {
		case http.MethodGet:
			if !cat.TenantExists(tenant) {
				return apiErr(http.StatusNotFound, "tenant %q not found", tenant)
			}
			return writeJSON(w, http.StatusOK, cat.Applications(tenant))
		case http.MethodPost:
			ap, err := decodeApplication(r)
			if err != nil {
				return err
			}
			v, err := cat.PutApplication(r.Context(), tenant, ap, "", true)
			if err != nil {
				return err
			}
			a.audit(r, tenant, "application "+ap.ID, "create")
			w.Header().Set("ETag", v.ETag)
			w.Header().Set("Location", a.resourcePath(r, tenant+"/applications/"+ap.ID))
			if v.Application.Registered {
				w.Header().Set("Cache-Control", "no-store") // it carries the client secret, this once
			}
			return writeJSON(w, http.StatusCreated, v)
		}
		return methodNotAllowed(r, "GET", "POST")
	}
	switch r.Method {
	case http.MethodGet:
		v, err := cat.Application(tenant, id)
		if err != nil {
			return err
		}
		if v.ETag != "" {
			w.Header().Set("ETag", v.ETag)
		}
		return writeJSON(w, http.StatusOK, v)
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
		v, err := cat.PutApplication(r.Context(), tenant, ap, r.Header.Get("If-Match"), false)
		if err != nil {
			return err
		}
		a.audit(r, tenant, "application "+id, "replace")
		w.Header().Set("ETag", v.ETag)
		return writeJSON(w, http.StatusOK, v)
	case http.MethodDelete:
		opts, err := deleteOptions(r)
		if err != nil {
			return err
		}
		if err := cat.DeleteApplicationWith(r.Context(), tenant, id, r.Header.Get("If-Match"), opts); err != nil {
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
