package catalog

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// KeyManagerView is a Key Manager as the admin API shows it: secrets
// masked, with its source ("config" or "api") and ETag.
type KeyManagerView struct {
	Tenant     string                 `json:"tenant"`
	Name       string                 `json:"name"`
	Source     string                 `json:"source"`
	ETag       string                 `json:"etag"`
	Created    time.Time              `json:"created,omitzero"`
	Updated    time.Time              `json:"updated,omitzero"`
	Definition keymanagers.Definition `json:"definition"`
}

// etagKey keys the ETags of config Key Managers: they are read-only, so
// an instance's own key is enough, and the ETag reveals nothing of the
// definition (secrets included) it stands for.
var etagKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

func configView(km *keymanagers.KeyManager) KeyManagerView {
	m := hmac.New(sha256.New, etagKey)
	m.Write([]byte(km.FingerprintValue()))
	return KeyManagerView{Tenant: km.Tenant(), Name: km.Name(), Source: "config", ETag: `"c` + hex.EncodeToString(m.Sum(nil)[:12]) + `"`,
		Definition: km.Definition().Redacted()}
}

func (k *apiKM) view() KeyManagerView {
	return KeyManagerView{Tenant: k.tenant, Name: k.rec.Definition.Name, Source: "api", ETag: k.rec.etag(),
		Created: k.rec.Created, Updated: k.rec.Updated, Definition: k.rec.Definition.Redacted()}
}

func (c *Catalog) configKM(tenant, name string) *keymanagers.KeyManager {
	list := c.cfg.ConfigTenants[tenant]
	if tenant == keymanagers.GlobalTenant {
		list = c.cfg.ConfigGlobals
	}
	for _, km := range list {
		if km.Name() == name {
			return km
		}
	}
	return nil
}

// KeyManagers lists Key Managers (of one tenant when tenant is set;
// "global" lists the Global ones), config ones first, in election order.
func (c *Catalog) KeyManagers(tenant string) []KeyManagerView {
	out := []KeyManagerView{}
	if tenant == "" || tenant == keymanagers.GlobalTenant {
		for _, km := range c.cfg.ConfigGlobals {
			out = append(out, configView(km))
		}
	}
	names := make([]string, 0, len(c.cfg.ConfigTenants))
	for n := range c.cfg.ConfigTenants {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if tenant == "" || tenant == n {
			for _, km := range c.cfg.ConfigTenants[n] {
				out = append(out, configView(km))
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.current().sortedKMs() {
		if tenant == "" || tenant == k.tenant {
			out = append(out, k.view())
		}
	}
	return out
}

// KeyManager returns one definition.
func (c *Catalog) KeyManager(tenant, name string) (KeyManagerView, error) {
	if km := c.configKM(tenant, name); km != nil {
		return configView(km), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.kms[tenant][name]; k != nil {
		return k.view(), nil
	}
	return KeyManagerView{}, fail(ErrNotFound, "key manager %q of tenant %q not found", name, tenant)
}

// Runtime returns a running Key Manager (config or API), or nil.
func (c *Catalog) Runtime(tenant, name string) *keymanagers.KeyManager {
	if km := c.configKM(tenant, name); km != nil {
		return km
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.kms[tenant][name]; k != nil {
		return k.rt.KeyManager
	}
	return nil
}

func (c *Catalog) readOnly(tenant, name string) error {
	if c.configKM(tenant, name) != nil {
		return fail(ErrConflict, "key manager %q of tenant %q is defined in the Caddy configuration and is read-only here; change the config instead", name, tenant)
	}
	return nil
}

// build checks what only admin-API definitions are refused, then asks the
// host to prepare and run def.
func (c *Catalog) build(tenant string, def keymanagers.Definition) (Runtime, error) {
	var fe keymanagers.FieldErrors
	if def.CertificateFile != "" {
		fe = append(fe, keymanagers.FieldError{Field: "certificate_file", Message: "admin-API definitions give the certificate itself in certificate_pem"})
	}
	if def.TLS != nil && def.TLS.CAFile != "" {
		p, ok := c.caPath(def.TLS.CAFile)
		if !ok {
			fe = append(fe, keymanagers.FieldError{Field: "tls.ca_file", Message: caFileMessage(c.cfg.CADir)})
		} else {
			tls := *def.TLS
			tls.CAFile = p
			def.TLS = &tls
		}
	}
	if len(fe) > 0 {
		return Runtime{}, fe
	}
	rt, err := c.cfg.Build(tenant, def)
	if err != nil && def.TLS != nil && def.TLS.CAFile != "" {
		if fes, ok := err.(keymanagers.FieldErrors); ok {
			for i := range fes {
				if fes[i].Field == "tls.ca_file" {
					// The same words whatever went wrong: an admin-API caller
					// must not learn which files exist on the host.
					fes[i].Message = caFileMessage(c.cfg.CADir)
				}
			}
		}
	}
	return rt, err
}

func caFileMessage(dir string) string {
	if dir == "" {
		return "admin-API definitions give the CA bundle itself in tls.ca_pem (no ca_dir is configured for files)"
	}
	return "must name a readable PEM CA bundle inside the configured ca_dir " + dir + " (or give the bundle in tls.ca_pem)"
}

// caPath resolves an admin-API ca_file inside CADir, following links, and
// reports whether it stays inside.
func (c *Catalog) caPath(name string) (string, bool) {
	if c.cfg.CADir == "" || name == "" {
		return "", false
	}
	dir, err := filepath.EvalSymlinks(c.cfg.CADir)
	if err != nil {
		return "", false
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(dir, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return real, true
}

// putLocked builds def, checks it fits the snapshot, stores it and
// installs it.
func (c *Catalog) putLocked(ctx context.Context, tenant string, def keymanagers.Definition, prev *apiKM) (KeyManagerView, error) {
	rt, err := c.build(tenant, def)
	if err != nil {
		return KeyManagerView{}, err
	}
	rec := kmRecord{Definition: def}
	if prev != nil {
		rec.stamp = newStamp(&prev.rec.stamp)
	} else {
		rec.stamp = newStamp(nil)
	}
	cand := &apiKM{tenant: tenant, rt: rt, rec: rec}
	next := c.current().withKM(tenant, def.Name, cand)
	reg, err := c.compose(next)
	if err != nil {
		rt.Release()
		return KeyManagerView{}, fail(ErrConflict, "%v", err)
	}
	if cand.sum, err = c.store(ctx, kmKey(tenant, def.Name), rec); err != nil {
		rt.Release()
		return KeyManagerView{}, err
	}
	if c.started {
		rt.KeyManager.Start()
	}
	c.commit(next, reg)
	if prev != nil {
		prev.rt.Release() // after the swap: nothing uses it any more
	}
	return cand.view(), nil
}

// CreateKeyManager stores and installs a new API-made Key Manager.
func (c *Catalog) CreateKeyManager(ctx context.Context, tenant string, def keymanagers.Definition) (KeyManagerView, error) {
	if tenant != keymanagers.GlobalTenant && !keymanagers.ValidName(tenant) {
		return KeyManagerView{}, fail(ErrInvalid, "tenant name %q is not valid", tenant)
	}
	if def.Name == "applications" {
		return KeyManagerView{}, keymanagers.FieldErrors{{Field: "name", Message: `"applications" is reserved by the admin API`}}
	}
	var v KeyManagerView
	err := c.write(ctx, func() error {
		if err := c.readOnly(tenant, def.Name); err != nil {
			return err
		}
		if c.kms[tenant][def.Name] != nil {
			return fail(ErrConflict, "key manager %q of tenant %q already exists; PUT /keymanagers/%s/%s replaces it", def.Name, tenant, tenant, def.Name)
		}
		var err error
		v, err = c.putLocked(ctx, tenant, def, nil)
		return err
	})
	return v, err
}

// ReplaceKeyManager replaces an API-made Key Manager. ifMatch, when set,
// must match its ETag. Masked secrets are kept from the stored definition
// unless an endpoint changed (then the secret must be sent again).
func (c *Catalog) ReplaceKeyManager(ctx context.Context, tenant string, def keymanagers.Definition, ifMatch string) (KeyManagerView, error) {
	var v KeyManagerView
	err := c.write(ctx, func() error {
		if err := c.readOnly(tenant, def.Name); err != nil {
			return err
		}
		cur := c.kms[tenant][def.Name]
		if cur == nil {
			return fail(ErrNotFound, "key manager %q of tenant %q not found; POST /keymanagers/%s/ creates it", def.Name, tenant, tenant)
		}
		if err := cur.rec.checkIfMatch(ifMatch); err != nil {
			return err
		}
		restored, err := def.RestoreMaskedSecrets(cur.rec.Definition)
		if err != nil {
			return err
		}
		v, err = c.putLocked(ctx, tenant, restored, cur)
		return err
	})
	return v, err
}

// DeleteKeyManager deletes an API-made Key Manager; one that an
// application uses cannot be deleted.
func (c *Catalog) DeleteKeyManager(ctx context.Context, tenant, name, ifMatch string) error {
	return c.write(ctx, func() error {
		if err := c.readOnly(tenant, name); err != nil {
			return err
		}
		cur := c.kms[tenant][name]
		if cur == nil {
			return fail(ErrNotFound, "key manager %q of tenant %q not found", name, tenant)
		}
		if err := cur.rec.checkIfMatch(ifMatch); err != nil {
			return err
		}
		if t, id, ok := c.usedBy(tenant, name); ok {
			return fail(ErrConflict, "application %q of tenant %q uses key manager %q; delete or change it first", id, t, name)
		}
		// Build the snapshot without it first: commit only if that works.
		next := c.current().withKM(tenant, name, nil)
		reg, err := c.compose(next)
		if err != nil {
			return err
		}
		if err := c.remove(ctx, kmKey(tenant, name)); err != nil {
			return err
		}
		c.commit(next, reg)
		cur.rt.Release()
		return nil
	})
}

// usedBy finds an application (config or API) that uses the Key Manager
// tenant/name: one of that tenant's, or any tenant's for a Global one.
func (c *Catalog) usedBy(tenant, name string) (string, string, bool) {
	check := func(t string, ap *keymanagers.Application) bool {
		return ap.KeyManager == name && (t == tenant || tenant == keymanagers.GlobalTenant)
	}
	for t, list := range c.cfg.ConfigApps {
		for _, ap := range list {
			if check(t, ap) {
				return t, ap.ID, true
			}
		}
	}
	for t, m := range c.apps {
		for _, a := range m {
			if check(t, &a.app) {
				return t, a.app.ID, true
			}
		}
	}
	return "", "", false
}
