package scopes_test

import (
	"fmt"

	"github.com/kmgate/caddy-keymanager/scopes"
)

// The handler's flow: compile once at provision time, then per request
// normalise the escaped path (deny when refused) and check.
func Example() {
	p, err := scopes.Compile(scopes.Config{
		Rules: []scopes.Rule{
			{Method: "GET", Path: "/acme/orders/{id}", Scopes: []string{"orders:read"}},
			{Method: "POST", Path: "/acme/orders", Scopes: []string{"orders:write"}},
			{Method: "*", Path: "/acme/admin/*", Scopes: []string{"admin", "ops"}, Match: "all"},
		},
		Unmatched: "deny",
		Strategy:  "hierarchic",
	})
	if err != nil {
		panic(err)
	}
	for _, req := range [][3]string{
		{"GET", "/acme/Orders/42/", "orders"},
		{"GET", "/acme/orders/%2e%2e/admin/users", "orders admin"},
		{"DELETE", "/acme/orders", "orders"},
		{"GET", "/acme/admin;x/users", "orders"},
	} {
		path, ok := scopes.NormalizePath(req[1])
		if !ok {
			fmt.Printf("%s %s: refused path\n", req[0], req[1])
			continue
		}
		d := p.Check(req[0], path, req[2])
		fmt.Printf("%s %s -> %s: allowed=%v matched=%v required=%v\n", req[0], req[1], path, d.Allowed, d.Matched, d.Required)
	}
	// Output:
	// GET /acme/Orders/42/ -> /acme/orders/42: allowed=true matched=true required=[orders:read]
	// GET /acme/orders/%2e%2e/admin/users -> /acme/admin/users: allowed=false matched=true required=[admin ops]
	// DELETE /acme/orders -> /acme/orders: allowed=false matched=false required=[]
	// GET /acme/admin;x/users: refused path
}

func ExampleEffective() {
	fmt.Println(scopes.Effective("openid orders:read orders:read", []string{"inventory:read", "openid"}, []string{"orders:read"}))
	// Output: openid inventory:read
}

func ExampleClaimRequirement_SatisfiedBy() {
	path, _ := scopes.ParseClaimPath("resource_access.my-client.roles")
	req := scopes.ClaimRequirement{Path: path, Values: []string{"orders-admin"}}
	// raw is the JSON of the top-level claim path[0] ("resource_access").
	fmt.Println(req.SatisfiedBy([]byte(`{"my-client":{"roles":["orders-admin"]}}`)))
	fmt.Println(req.SatisfiedBy([]byte(`{"other":{"roles":["orders-admin"]}}`)))
	// Output:
	// true
	// false
}
