package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// OAuth 2.0 Protected Resource Metadata (RFC 9728). Each keymanager
// handler that names its `resource` registers itself with the app; the
// keymanager_resource_metadata handler serves
// /.well-known/oauth-protected-resource[/path] from those handlers' config
// and the current Key Manager registry, so the document is never written
// by hand and follows admin-API changes at once.

func init() {
	caddy.RegisterModule(ResourceMetadata{})
}

// wellKnownPrefix is the RFC 9728 well-known path.
const wellKnownPrefix = "/.well-known/oauth-protected-resource"

// metadataURL is the metadata document URL of a resource identifier: the
// well-known path inserted between the host and the resource's path (RFC
// 9728 section 3.1).
func metadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", resource)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("%q: a resource identifier has no query or fragment", resource)
	}
	return u.Scheme + "://" + u.Host + wellKnownPrefix + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// resourceRegistry holds the handlers that name a resource, by metadata
// URL path and host. Written while handlers provision, read by the
// metadata endpoint (not on the authorization path).
type resourceRegistry struct {
	mu sync.RWMutex
	by map[string][]*Handler // key: lower-case hostname + well-known path
}

func resourceKey(host, path string) string { return strings.ToLower(host) + path }

func (rr *resourceRegistry) add(h *Handler) {
	u, err := url.Parse(h.resourceMeta)
	if rr == nil || err != nil {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.by == nil {
		rr.by = map[string][]*Handler{}
	}
	k := resourceKey(u.Hostname(), u.EscapedPath())
	rr.by[k] = append(rr.by[k], h)
}

func (rr *resourceRegistry) lookup(host, path string) []*Handler {
	if rr == nil {
		return nil
	}
	rr.mu.RLock()
	defer rr.mu.RUnlock()
	return rr.by[resourceKey(host, path)]
}

// ProtectedResourceMetadata is the RFC 9728 document.
type ProtectedResourceMetadata struct {
	Resource                              string   `json:"resource"`
	AuthorizationServers                  []string `json:"authorization_servers,omitempty"`
	ScopesSupported                       []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported                []string `json:"bearer_methods_supported"`
	DPoPSigningAlgValuesSupported         []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired         bool     `json:"dpop_bound_access_tokens_required"`
	TLSClientCertificateBoundAccessTokens bool     `json:"tls_client_certificate_bound_access_tokens"`
}

// metadataOf builds the document of one resource from the handlers that
// name it: the issuers of every enabled Key Manager they accept, the
// scopes of their scope rules, and DPoP required only if every handler
// requires it.
func metadataOf(resource string, hs []*Handler) ProtectedResourceMetadata {
	md := ProtectedResourceMetadata{Resource: resource, BearerMethodsSupported: []string{"header"}}
	dpopRequired, dpopOffered := true, false
	certRequired := true
	for _, h := range hs {
		kms := h.acceptedKeyManagers()
		routeMode := h.route.DPoPMode()
		for _, km := range kms {
			def := km.Definition()
			md.AuthorizationServers = append(md.AuthorizationServers, km.Issuer())
			mode := routeMode
			if mode == "" {
				mode = def.DPoP
			}
			dpopRequired = dpopRequired && mode == keymanagers.BindingRequired
			dpopOffered = dpopOffered || mode != keymanagers.BindingOff
			certRequired = certRequired && def.CertificateBound == keymanagers.BindingRequired
		}
		if len(kms) == 0 {
			dpopRequired, certRequired = false, false
		}
		for _, r := range h.Scope {
			md.ScopesSupported = append(md.ScopesSupported, r.Scopes...)
		}
	}
	md.AuthorizationServers = sortedUnique(md.AuthorizationServers)
	md.ScopesSupported = sortedUnique(md.ScopesSupported)
	if dpopOffered {
		md.DPoPSigningAlgValuesSupported = keymanagers.DPoPAlgorithms
		md.DPoPBoundAccessTokensRequired = dpopRequired
	}
	md.TLSClientCertificateBoundAccessTokens = certRequired && len(md.AuthorizationServers) > 0
	return md
}

// acceptedKeyManagers are the enabled Key Managers a handler with a fixed
// tenant accepts, in the current registry (nil for a placeholder tenant).
func (h *Handler) acceptedKeyManagers() []*keymanagers.KeyManager {
	if h.dynTenant {
		return nil
	}
	t := h.app.gateway.Registry().Tenant(h.Tenant)
	if t == nil {
		return nil
	}
	var kms []*keymanagers.KeyManager
	for _, km := range t.KeyManagers() {
		if len(h.KeyManagers) > 0 && !slices.Contains(h.KeyManagers, km.Name()) {
			continue
		}
		if def := km.Definition(); def.IsEnabled() {
			kms = append(kms, km)
		}
	}
	return kms
}

func sortedUnique(l []string) []string {
	l = slices.DeleteFunc(l, func(s string) bool { return s == "" })
	sort.Strings(l)
	return slices.Compact(l)
}

// ResourceMetadata is the `keymanager_resource_metadata` handler: it
// answers GET /.well-known/oauth-protected-resource[/path] for the
// resources that keymanager handlers of this config name, and passes
// every other request on.
type ResourceMetadata struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (ResourceMetadata) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.keymanager_resource_metadata",
		New: func() caddy.Module { return new(ResourceMetadata) },
	}
}

// Provision finds the keymanagers app.
func (m *ResourceMetadata) Provision(ctx caddy.Context) error {
	appIface, err := ctx.AppIfConfigured("keymanagers")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return errors.New("keymanager_resource_metadata needs the keymanagers app: add a `keymanagers { ... }` global option")
		}
		return err
	}
	m.app = appIface.(*App)
	return nil
}

// ServeHTTP serves a metadata document, or calls next.
func (m *ResourceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.EscapedPath()
	if path != wellKnownPrefix && !strings.HasPrefix(path, wellKnownPrefix+"/") {
		return next.ServeHTTP(w, r)
	}
	host := r.Host
	if h, _, err := splitHostPort(host); err == nil {
		host = h
	}
	hs := m.app.resources.lookup(host, strings.TrimSuffix(path, "/"))
	if len(hs) == 0 {
		return next.ServeHTTP(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("protected-resource metadata is read-only"))
	}
	body, err := json.Marshal(metadataOf(hs[0].Resource, hs))
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// splitHostPort splits host[:port] (a bare host is returned as it is).
func splitHostPort(hostport string) (string, string, error) {
	u := url.URL{Host: hostport}
	if u.Hostname() == "" {
		return "", "", errors.New("no host")
	}
	return u.Hostname(), u.Port(), nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ResourceMetadata)(nil)
	_ caddyhttp.MiddlewareHandler = (*ResourceMetadata)(nil)
)
