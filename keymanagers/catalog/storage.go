package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Storage layout (shared by every instance on the storage):
//
//	keymanagers/tenants/<tenant>/<name>.json      API-made Key Managers
//	keymanagers/applications/<tenant>/<id>.json   API-made applications
//	keymanagers/revocations/<id>.json             gateway revocations
//	keymanagers/lock                              write lock
const (
	storageTenants      = "keymanagers/tenants"
	storageApplications = "keymanagers/applications"
	storageRevocations  = "keymanagers/revocations"
	storageLock         = "keymanagers/lock"
)

// now is the clock (tests may swap it).
var now = time.Now

// stamp is the bookkeeping of a stored record.
type stamp struct {
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Revision counts the record's writes; with Created it makes the ETag,
	// which therefore says nothing about the record's secrets.
	Revision uint64 `json:"revision,omitempty"`
}

// newStamp is the stamp of a write over prev (nil: a new record).
func newStamp(prev *stamp) stamp {
	t := now().UTC()
	s := stamp{Created: t, Updated: t, Revision: 1}
	if prev != nil {
		s.Created, s.Revision = prev.Created, prev.Revision+1
	}
	return s
}

func (s *stamp) etag() string {
	return `"` + strconv.FormatUint(s.Revision, 10) + "." + strconv.FormatInt(s.Created.UnixNano(), 36) + `"`
}

// checkIfMatch refuses a write whose If-Match ("" for none) is stale.
func (s *stamp) checkIfMatch(ifMatch string) error {
	if ifMatch != "" && !ETagMatches(ifMatch, s.etag()) {
		return fail(ErrPrecondition, "If-Match %s does not match the current ETag %s", ifMatch, s.etag())
	}
	return nil
}

// kmRecord is one API-made Key Manager as stored.
type kmRecord struct {
	Definition keymanagers.Definition `json:"definition"`
	stamp
}

// appRecord is one API-made application as stored.
type appRecord struct {
	Application keymanagers.Application `json:"application"`
	// Registration is the Key Manager's answer when the gateway
	// registered the client (secrets included: never shown).
	Registration *keymanagers.RegisteredClient `json:"registration,omitempty"`
	stamp
}

// apiKM is a loaded API-made Key Manager.
type apiKM struct {
	tenant string
	rec    kmRecord
	sum    [32]byte // of the stored bytes: change detection only
	rt     Runtime
}

// apiApp is a loaded API-made application.
type apiApp struct {
	tenant string
	app    keymanagers.Application
	rec    appRecord
	sum    [32]byte
}

func kmKey(tenant, name string) string { return path.Join(storageTenants, tenant, name+".json") }
func appKey(tenant, id string) string  { return path.Join(storageApplications, tenant, id+".json") }

// ETagMatches reports whether an If-Match header value matches etag.
func ETagMatches(ifMatch, etag string) bool {
	for _, v := range strings.Split(ifMatch, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || v == etag || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// storedFile is one record read from <prefix>/<tenant>/<name>.json.
type storedFile struct {
	key, tenant, name string
	sum               [32]byte
	data              []byte
}

// readStored lists and loads every <prefix>/<tenant>/<name>.json. A record
// that vanishes between listing and loading is left out; any other failure
// is an error, and callers then keep their current state.
func (c *Catalog) readStored(ctx context.Context, prefix string) ([]storedFile, error) {
	keys, err := c.list(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	var out []storedFile
	for _, k := range keys {
		tenant, file, ok := strings.Cut(strings.TrimPrefix(k, prefix+"/"), "/")
		if !ok || !strings.HasSuffix(file, ".json") || strings.Contains(file, "/") {
			continue
		}
		b, err := c.cfg.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loading %s: %v", k, err)
		}
		out = append(out, storedFile{key: k, tenant: tenant, name: strings.TrimSuffix(file, ".json"), sum: sha256.Sum256(b), data: b})
	}
	return out, nil
}

// list lists prefix. A missing folder is an empty list; any other failure
// (including file storage's "not found" when another instance renames a
// record over an old one in the middle of the listing) is an error after a
// few tries, so a partial listing is never taken for the whole.
func (c *Catalog) list(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		keys, err := c.cfg.Storage.List(ctx, prefix, recursive)
		if err == nil {
			return keys, nil
		}
		if errors.Is(err, fs.ErrNotExist) && !c.cfg.Storage.Exists(ctx, prefix) {
			return nil, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("listing %s in storage: %v", prefix, lastErr)
}

// store writes a record as indented JSON and returns its bytes' sum.
func (c *Catalog) store(ctx context.Context, key string, v any) ([32]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return [32]byte{}, fmt.Errorf("encoding: %v", err)
	}
	if err := c.cfg.Storage.Store(ctx, key, b); err != nil {
		return [32]byte{}, fmt.Errorf("storing: %v", err)
	}
	return sha256.Sum256(b), nil
}

// remove deletes a record; a missing one is fine.
func (c *Catalog) remove(ctx context.Context, key string) error {
	if err := c.cfg.Storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting from storage: %v", err)
	}
	return nil
}

// write runs fn under this instance's write queue and the storage lock,
// after re-reading storage so that changes by other instances are seen.
func (c *Catalog) write(ctx context.Context, fn func() error) error {
	if c.cfg.Storage == nil {
		return fail(ErrUnavailable, "no storage is configured")
	}
	// Writers of this instance queue on writeMu (file storage polls its
	// lock once a second, so they must not all poll it), then take the
	// storage lock, and only then the state lock: waiting for another
	// instance's write must not hold up this instance's sync and reads.
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.cfg.Storage.Lock(lctx, storageLock); err != nil {
		return fail(ErrUnavailable, "could not take the storage lock: %v", err)
	}
	defer func() { _ = c.cfg.Storage.Unlock(context.Background(), storageLock) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.syncLocked(ctx); err != nil {
		c.logger.Warn("re-reading storage before a change", zapErr(err))
	}
	return fn()
}
