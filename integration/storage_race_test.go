package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestStorageSyncIgnoresFilesReplacedByOtherInstances: other instances on
// the same storage rewrite records all the time (file_system storage writes
// a temporary file and renames it over the record). While they do, this
// instance's periodic sync must neither forget a revocation (a revoked
// token would pass again) nor drop a Key Manager (its tokens would be
// refused) -- the records did not change.
func TestStorageSyncIgnoresFilesReplacedByOtherInstances(t *testing.T) {
	cfg := gatewayConfig{ports: newPorts(t), storage: t.TempDir(), cfgIdP: newIdP(t, "cfg-1"), version: "v0"}
	kmIdP := newIdP(t, "k1")
	p := startCaddy(t, cfg.caddyfile())

	p.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("zz-last", kmIdP))
	good := kmIdP.mint("k1", "alice")
	revoked := kmIdP.mint("k1", "mallory")
	p.expect(t, good, "acme", 200, "ok zz-last")
	p.mustAdmin(t, 201, "POST", "/keymanagers/revoke", map[string]any{"token": revoked})
	p.expect(t, revoked, "acme", 401, "")

	// Another instance's writes: the same records stored again, unchanged,
	// through certmagic's file storage (temporary file + rename).
	fs := &certmagic.FileStorage{Path: cfg.storage}
	var records []string
	for _, dir := range []string{"keymanagers/revocations", "keymanagers/tenants/acme"} {
		ents, err := os.ReadDir(filepath.Join(cfg.storage, filepath.FromSlash(dir)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			records = append(records, dir+"/"+e.Name())
		}
	}
	if len(records) != 2 {
		t.Fatalf("storage holds %v, want one revocation and one Key Manager", records)
	}
	contents := map[string][]byte{}
	for _, k := range records {
		b, err := fs.Load(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		contents[k] = b
	}

	const runFor = 4 * time.Second // four sync intervals
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := records[w%len(records)]
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fs.Store(context.Background(), k, contents[k]); err != nil {
					t.Errorf("store %s: %v", k, err)
					return
				}
				writes.Add(1)
			}
		}()
	}

	var requests, revokedPassed, goodRefused int
	var first []string
	deadline := time.Now().Add(runFor)
	for time.Now().Before(deadline) {
		for _, c := range []struct {
			tok  string
			want int
		}{{revoked, 401}, {good, 200}} {
			status, body, err := p.get("/api/x", c.tok, "acme")
			requests++
			if err != nil || status != c.want {
				if c.want == 401 {
					revokedPassed++
				} else {
					goodRefused++
				}
				if len(first) < 5 {
					first = append(first, fmt.Sprintf("%s: %d %q %v (want %d)", time.Now().Format("15:04:05.000"), status, body, err, c.want))
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d unchanged records rewritten by the other writer, %d requests", writes.Load(), requests)
	if revokedPassed > 0 || goodRefused > 0 {
		t.Fatalf("while another instance rewrote unchanged records: the revoked token was not refused %d times, the valid token was refused %d times; first:\n%v",
			revokedPassed, goodRefused, first)
	}
}

// TestWaitingForTheStorageLockStallsNeitherSyncNorReads: while another
// instance holds the storage write lock, a write on this instance waits
// for it -- but this instance must keep following storage within the
// sync interval and keep answering admin reads.
func TestWaitingForTheStorageLockStallsNeitherSyncNorReads(t *testing.T) {
	cfg := gatewayConfig{ports: newPorts(t), storage: t.TempDir(), cfgIdP: newIdP(t, "cfg-1"), version: "v0"}
	p := startCaddy(t, cfg.caddyfile())
	pendingIdP, otherIdP := newIdP(t, "p1"), newIdP(t, "o1")

	// The other instance takes the lock (as the admin API does) and holds
	// it for a while, as a slow or stuck instance would.
	fs := &certmagic.FileStorage{Path: cfg.storage}
	ctx := context.Background()
	if err := fs.Lock(ctx, "keymanagers/lock"); err != nil {
		t.Fatal(err)
	}
	const hold = 7 * time.Second
	locked := time.Now()
	unlocked := make(chan struct{})
	go func() {
		defer close(unlocked)
		time.Sleep(hold)
		_ = fs.Unlock(ctx, "keymanagers/lock")
	}()
	t.Cleanup(func() { <-unlocked })

	// This instance starts a write; it has to wait for the lock.
	created := make(chan int, 1)
	go func() {
		status, _, _ := p.adminRaw("POST", "/keymanagers/acme/", "application/json", mustJSON(kmDef("pending", pendingIdP)))
		created <- status
	}()
	time.Sleep(200 * time.Millisecond)

	// Under its lock, the other instance stores a Key Manager.
	rec := map[string]any{"definition": kmDef("by-other", otherIdP), "created": time.Now().UTC(), "updated": time.Now().UTC()}
	if err := fs.Store(ctx, "keymanagers/tenants/acme/by-other.json", mustJSON(rec)); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()

	// The other instance's Key Manager is followed within the sync
	// interval (plus room), not only once the lock is free.
	tok := otherIdP.mint("o1", "olga")
	for {
		s, _, err := p.get("/api/x", tok, "acme")
		if err == nil && s == 200 {
			t.Logf("the stored Key Manager was served %v after it was stored", time.Since(stored).Round(time.Millisecond))
			break
		}
		if time.Since(stored) > convergence {
			t.Errorf("the Key Manager stored by the other instance was not served within %v while a local write waited for the lock (last %d %v)", convergence, s, err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And admin reads answer while the write waits.
	start := time.Now()
	status, body, err := p.adminRaw("GET", "/keymanagers/acme/", "", nil)
	if took := time.Since(start); err != nil || status != 200 || took > time.Second {
		t.Errorf("GET /keymanagers/acme/ while a write waits for the storage lock: %d %v after %v (%d bytes; lock released %v before the answer)",
			status, err, took.Round(time.Millisecond), len(body), (time.Since(locked) - hold).Round(time.Millisecond))
	}
	select {
	case s := <-created:
		if time.Since(locked) < hold {
			t.Errorf("the write did not wait for the storage lock (status %d)", s)
		}
		if s != 201 {
			t.Errorf("the write that waited for the lock answered %d, want 201", s)
		}
	case <-time.After(hold + 10*time.Second):
		t.Fatal("the waiting write never finished")
	}
}
