package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// convergence is the bound the cluster test holds instances to: the
// sync_interval (1s) plus room for a JWKS fetch on a loaded machine.
const convergence = 3 * time.Second

// TestClusterConvergesWithinSyncInterval: two processes on one storage
// directory. Creates, changes, deletes and revocations made on A take
// effect on B within the sync interval, cached results included; two
// concurrent creates of one name on A and B give one 201 and one 409.
func TestClusterConvergesWithinSyncInterval(t *testing.T) {
	storage := t.TempDir()
	cfgIdP := newIdP(t, "cfg-1")
	a := startCaddy(t, gatewayConfig{ports: newPorts(t), storage: storage, cfgIdP: cfgIdP, version: "a"}.caddyfile())
	bCfg := gatewayConfig{ports: newPorts(t), storage: storage, cfgIdP: cfgIdP, version: "b"}
	b := startCaddy(t, bCfg.caddyfile())

	convIdP := newIdP(t, "k1")
	tokOrders := convIdP.mint("k1", "alice", "api://orders")

	t.Run("create on A is served by B", func(t *testing.T) {
		b.expect(t, tokOrders, "acme", 401, "") // unknown issuer on B before
		a.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("conv", convIdP, "api://orders"))
		sent := time.Now()
		a.expect(t, tokOrders, "acme", 200, "ok conv")
		d := b.waitStatus(t, tokOrders, "acme", 200, convergence)
		t.Logf("B accepted the new Key Manager's token %v after the create on A (%v after the 201)", d.Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
		b.expect(t, tokOrders, "acme", 200, "ok conv") // and has it cached now
	})
	if t.Failed() {
		return
	}

	t.Run("audience change on A refuses B's cached token", func(t *testing.T) {
		a.mustAdmin(t, 200, "PUT", "/keymanagers/acme/conv", kmDef("conv", convIdP, "api://billing"))
		a.expect(t, tokOrders, "acme", 401, "")
		d := b.waitStatus(t, tokOrders, "acme", 401, convergence)
		t.Logf("B refused the cached token %v after the PUT on A", d.Round(time.Millisecond))
		b.expect(t, convIdP.mint("k1", "bob", "api://billing"), "acme", 200, "ok conv")
	})
	if t.Failed() {
		return
	}

	t.Run("revocation on A refuses B's cached token", func(t *testing.T) {
		revoked := convIdP.mint("k1", "carol", "api://billing")
		kept := convIdP.mint("k1", "dave", "api://billing")
		b.expect(t, revoked, "acme", 200, "ok conv")
		b.expect(t, revoked, "acme", 200, "ok conv") // cached on B
		b.expect(t, kept, "acme", 200, "ok conv")
		body := a.mustAdmin(t, 201, "POST", "/keymanagers/revoke", map[string]any{"token": revoked})
		if strings.Contains(string(body), revoked) {
			t.Fatalf("the revocation answer echoes the token: %s", body)
		}
		a.expect(t, revoked, "acme", 401, "")
		d := b.waitStatus(t, revoked, "acme", 401, convergence)
		t.Logf("B refused the revoked (cached) token %v after the revocation on A", d.Round(time.Millisecond))
		b.expect(t, kept, "acme", 200, "ok conv") // only that token
	})

	t.Run("delete on A refuses the Key Manager's tokens on B", func(t *testing.T) {
		goneIdP := newIdP(t, "g1")
		tok := goneIdP.mint("g1", "erin")
		a.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("gone", goneIdP))
		b.waitStatus(t, tok, "acme", 200, convergence)
		b.expect(t, tok, "acme", 200, "ok gone") // cached on B
		a.mustAdmin(t, 204, "DELETE", "/keymanagers/acme/gone", nil)
		a.expect(t, tok, "acme", 401, "")
		d := b.waitStatus(t, tok, "acme", 401, convergence)
		t.Logf("B refused the deleted Key Manager's (cached) token %v after the DELETE on A", d.Round(time.Millisecond))
		if status, body := b.admin(t, "GET", "/keymanagers/acme/gone", nil); status != 404 {
			t.Fatalf("B still lists the deleted Key Manager: %d %s", status, body)
		}
	})

	t.Run("after a config reload B still follows A", func(t *testing.T) {
		bCfg.version = "b2"
		if err := b.load(bCfg.caddyfile()); err != nil {
			t.Fatal(err)
		}
		if status, body, err := b.get("/version", "", ""); err != nil || status != 200 || body != "version b2" {
			t.Fatalf("B does not serve the reloaded config: %d %q %v", status, body, err)
		}
		lateIdP := newIdP(t, "l1")
		tok := lateIdP.mint("l1", "gina")
		a.mustAdmin(t, 201, "POST", "/keymanagers/acme/", kmDef("late", lateIdP))
		d := b.waitStatus(t, tok, "acme", 200, convergence)
		t.Logf("reloaded B accepted a Key Manager created on A %v after the create", d.Round(time.Millisecond))
	})

	t.Run("concurrent creates of one name on A and B: one 201, one 409", func(t *testing.T) {
		raceIdP := newIdP(t, "r1")
		for round := range 3 {
			tenant := fmt.Sprintf("race-%d", round)
			def := kmDef("dup", raceIdP)
			var wg sync.WaitGroup
			gate := make(chan struct{})
			codes := make([]int, 2)
			bodies := make([]string, 2)
			for i, p := range []*proc{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					status, body, err := p.adminRaw("POST", "/keymanagers/"+tenant+"/", "application/json", mustJSON(def))
					if err != nil {
						body = []byte(err.Error())
					}
					codes[i], bodies[i] = status, string(body)
				}()
			}
			start := time.Now()
			close(gate)
			wg.Wait()
			t.Logf("round %d: A %d, B %d in %v", round, codes[0], codes[1], time.Since(start).Round(time.Millisecond))
			created, conflict := -1, -1
			for i, c := range codes {
				switch c {
				case 201:
					if created >= 0 {
						t.Fatalf("round %d: both instances created %s/dup: %v", round, tenant, codes)
					}
					created = i
				case 409:
					conflict = i
				}
			}
			if created < 0 || conflict < 0 {
				t.Fatalf("round %d: codes %v, want one 201 and one 409:\nA: %s\nB: %s", round, codes, bodies[0], bodies[1])
			}
			if !strings.Contains(bodies[conflict], "already exists") {
				t.Fatalf("round %d: the 409 is not about the existing name: %s", round, bodies[conflict])
			}
			tok := raceIdP.mint("r1", "frank")
			for _, p := range []*proc{a, b} {
				p.waitStatus(t, tok, tenant, 200, convergence)
				if l := parseList(t, p.mustAdmin(t, 200, "GET", "/keymanagers/"+tenant+"/", nil)); len(l) != 1 || l[0].Name != "dup" {
					t.Fatalf("round %d: %s lists %+v for tenant %s", round, p.name, l, tenant)
				}
			}
		}
	})
}
