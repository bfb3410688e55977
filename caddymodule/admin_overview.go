package caddymodule

import (
	"net/http"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// ConnectorField is one field of a connector type, as GET
// /keymanagers/connectors lists it for forms: its JSON name, its kind
// ("string" or "bool") and whether it is a secret (write-only).
type ConnectorField struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Secret bool   `json:"secret,omitempty"`
}

// ConnectorSchema is a connector type and its fields.
type ConnectorSchema struct {
	Type   string           `json:"type"`
	Fields []ConnectorField `json:"fields"`
}

// serveOverview answers GET /keymanagers/connectors (the connector types
// built in and their fields) and GET /keymanagers/status (every running Key
// Manager's status and the result cache, in one call).
func (a *adminAPI) serveOverview(w http.ResponseWriter, r *http.Request, rest string) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r, "GET")
	}
	if rest == "connectors" {
		return writeJSON(w, http.StatusOK, connectorSchemas())
	}
	all := a.app.gateway.Registry().All()
	list := make([]keymanagers.Status, 0, len(all))
	for _, km := range all {
		list = append(list, km.Status())
	}
	return writeJSON(w, http.StatusOK, map[string]any{"key_managers": list, "cache": a.cacheStatus()})
}

// cacheStatus is the result cache's part of a status answer.
func (a *adminAPI) cacheStatus() map[string]any {
	c := a.app.gateway.Cache()
	return map[string]any{"entries": c.Len(), "bytes": c.Capacity(), "max_ttl": c.MaxTTL().String()}
}

// connectorSchemas lists every keymanagers.connectors module with the JSON
// fields of its struct (embedded structs included).
func connectorSchemas() []ConnectorSchema {
	out := []ConnectorSchema{}
	for _, name := range connectorTypes() {
		info, err := caddy.GetModule("keymanagers.connectors." + name)
		if err != nil {
			continue
		}
		out = append(out, ConnectorSchema{Type: name, Fields: structFields(reflect.TypeOf(info.New()))})
	}
	return out
}

var boolKind = reflect.TypeOf(true).Kind()

func structFields(t reflect.Type) []ConnectorField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := []ConnectorField{}
	if t.Kind() != reflect.Struct {
		return fields
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" {
			fields = append(fields, structFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		kind := "string"
		if ft.Kind() == boolKind {
			kind = "bool"
		}
		fields = append(fields, ConnectorField{Name: name, Kind: kind, Secret: keymanagers.IsSecretField(name)})
	}
	return fields
}
