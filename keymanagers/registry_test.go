package keymanagers

import (
	"strings"
	"testing"
)

// offlineKM builds a Key Manager that is never started (no I/O).
func offlineKM(tb testing.TB, tenant, name, issuer string) *KeyManager {
	tb.Helper()
	return newKM(tb, newTestClock().Now, tenant, Definition{Name: name, Issuer: issuer, JWKSURL: "https://" + name + ".example.com/jwks"})
}

func disabledKM(tb testing.TB, tenant, name, issuer string) *KeyManager {
	tb.Helper()
	off := false
	return newKM(tb, newTestClock().Now, tenant, Definition{Name: name, Issuer: issuer, JWKSURL: "https://" + name + ".example.com/jwks", Enabled: &off})
}

func TestNewRegistry_RefusesAmbiguousOrReservedConfigurations(t *testing.T) {
	cases := []struct {
		name    string
		tenants func(t *testing.T) (map[string][]*KeyManager, []*KeyManager)
		errHas  []string
	}{
		{
			"two Key Managers with one issuer in a tenant (error names both)",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"acme": {
					offlineKM(t, "acme", "first", "https://same.example.com"),
					offlineKM(t, "acme", "second", "https://same.example.com"),
				}}, nil
			},
			[]string{`"first"`, `"second"`, "https://same.example.com", "tenant acme"},
		},
		{
			"tenant Key Manager with the issuer of a Global one",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"acme": {offlineKM(t, "acme", "mine", "https://corp.example.com")}},
					[]*KeyManager{offlineKM(t, GlobalTenant, "corp", "https://corp.example.com")}
			},
			[]string{`"mine"`, `"corp" (global)`, "same issuer"},
		},
		{
			"two Global Key Managers with one issuer",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return nil, []*KeyManager{
					offlineKM(t, GlobalTenant, "g1", "https://corp.example.com"),
					offlineKM(t, GlobalTenant, "g2", "https://corp.example.com"),
				}
			},
			[]string{`"g1" (global)`, `"g2" (global)`},
		},
		{
			"tenant Key Manager shadowing a Global name",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"acme": {offlineKM(t, "acme", "corp", "https://acme.example.com")}},
					[]*KeyManager{offlineKM(t, GlobalTenant, "corp", "https://corp.example.com")}
			},
			[]string{`"corp"`, "Global Key Manager"},
		},
		{
			"tenant named global",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{GlobalTenant: {offlineKM(t, GlobalTenant, "idp", testIssuer)}}, nil
			},
			[]string{`"global"`, "reserved"},
		},
		{
			"tenant named global without Key Managers",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{GlobalTenant: nil}, nil
			},
			[]string{"reserved"},
		},
		{
			"invalid tenant name",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"Acme Corp": nil}, nil
			},
			[]string{`"Acme Corp"`, "not valid"},
		},
		{
			"Key Manager name defined twice in a tenant",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"acme": {
					offlineKM(t, "acme", "idp", "https://a.example.com"),
					offlineKM(t, "acme", "idp", "https://b.example.com"),
				}}, nil
			},
			[]string{`"idp"`, "defined twice"},
		},
		{
			"Global Key Manager name defined twice",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return nil, []*KeyManager{
					offlineKM(t, GlobalTenant, "corp", "https://a.example.com"),
					offlineKM(t, GlobalTenant, "corp", "https://b.example.com"),
				}
			},
			[]string{`"corp"`, "defined twice"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenants, globals := tc.tenants(t)
			reg, err := NewRegistry(tenants, globals)
			if err == nil {
				t.Fatalf("NewRegistry accepted it: tenants %v", reg.TenantNames())
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestNewRegistry_AcceptsSameIssuerWhenNotVisibleTogether(t *testing.T) {
	cases := []struct {
		name    string
		tenants func(t *testing.T) (map[string][]*KeyManager, []*KeyManager)
	}{
		{
			"one issuer in two tenants",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{
					"a": {offlineKM(t, "a", "idp", testIssuer)},
					"b": {offlineKM(t, "b", "idp", testIssuer)},
				}, nil
			},
		},
		{
			"one issuer twice in a tenant, one of them disabled",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"a": {
					offlineKM(t, "a", "new", testIssuer),
					disabledKM(t, "a", "old", testIssuer),
				}}, nil
			},
		},
		{
			"issuer differing only by a trailing slash",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"a": {
					offlineKM(t, "a", "one", testIssuer),
					offlineKM(t, "a", "two", testIssuer+"/"),
				}}, nil
			},
		},
		{
			"tenant issuer equal to a disabled Global's issuer",
			func(t *testing.T) (map[string][]*KeyManager, []*KeyManager) {
				return map[string][]*KeyManager{"a": {offlineKM(t, "a", "mine", testIssuer)}},
					[]*KeyManager{disabledKM(t, GlobalTenant, "corp", testIssuer)}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenants, globals := tc.tenants(t)
			if _, err := NewRegistry(tenants, globals); err != nil {
				t.Fatalf("NewRegistry: %v", err)
			}
		})
	}
}

func TestRegistry_ExposesTenantsInDefinitionOrderOwnBeforeGlobal(t *testing.T) {
	g1 := offlineKM(t, GlobalTenant, "corp", "https://corp.example.com")
	a1 := offlineKM(t, "b-tenant", "z-idp", "https://z.example.com")
	a2 := offlineKM(t, "b-tenant", "a-idp", "https://a.example.com")
	c1 := offlineKM(t, "a-tenant", "idp", "https://c.example.com")
	reg, err := NewRegistry(map[string][]*KeyManager{"b-tenant": {a1, a2}, "a-tenant": {c1}}, []*KeyManager{g1})
	must(t, err)
	if got := strings.Join(reg.TenantNames(), ","); got != "a-tenant,b-tenant" {
		t.Fatalf("TenantNames = %s", got)
	}
	tb := reg.Tenant("b-tenant")
	var names []string
	for _, km := range tb.KeyManagers() {
		names = append(names, km.Name())
	}
	if got := strings.Join(names, ","); got != "z-idp,a-idp,corp" {
		t.Fatalf("KeyManagers = %s", got)
	}
	if tb.KeyManager("corp") != g1 || tb.KeyManager("a-idp") != a2 || tb.KeyManager("nope") != nil {
		t.Fatal("KeyManager lookup by name is wrong")
	}
	if reg.Tenant("nope") != nil || reg.Tenant(GlobalTenant) != nil {
		t.Fatal("unknown tenants must be nil")
	}
	if len(reg.All()) != 4 || len(reg.Globals()) != 1 {
		t.Fatalf("All = %d, Globals = %d", len(reg.All()), len(reg.Globals()))
	}
	if g1.Tenant() != GlobalTenant || a1.Tenant() != "b-tenant" || a1.Issuer() != "https://z.example.com" {
		t.Fatal("accessors are wrong")
	}
}
