package keymanagers

import (
	"fmt"
	"sort"
)

// Placement is a Key Manager as the visibility rules see it.
type Placement struct {
	// Tenant owns it (GlobalTenant for Global Key Managers).
	Tenant string
	Name   string
	// Issuers are the exact issuers it vouches for, when it is enabled and
	// they are known before discovery; nil otherwise.
	Issuers []string
	// Pos is where it is defined ("Caddyfile:12"), when known.
	Pos string
}

func (p Placement) label() string {
	switch {
	case p.Pos != "":
		return fmt.Sprintf("%q (%s)", p.Name, p.Pos)
	case p.Tenant == GlobalTenant:
		return fmt.Sprintf("%q (global)", p.Name)
	}
	return fmt.Sprintf("%q", p.Name)
}

// labelAt names the Key Manager whose position starts the message.
func (p Placement) labelAt() string {
	if p.Pos != "" {
		return fmt.Sprintf("%q", p.Name)
	}
	return p.label()
}

// VisibilityError is a broken visibility rule; Pos is where the second of
// the two Key Managers involved is defined, when known.
type VisibilityError struct {
	Pos string
	Msg string
}

func (e *VisibilityError) Error() string {
	if e.Pos != "" {
		return e.Pos + ": " + e.Msg
	}
	return e.Msg
}

// CheckVisibility applies the rules that let a token's issuer pick exactly
// one Key Manager to every tenant's view (its own Key Managers, then the
// Global ones): names are unique in a view, so a tenant's Key Manager may
// not take a Global one's name, and no two Key Managers of a view vouch
// for one issuer. Global Key Managers are checked among themselves too.
// The registry and the Caddyfile adapter (which knows positions) both
// call it.
func CheckVisibility(tenants []string, placed []Placement) error {
	var globals []Placement
	own := map[string][]Placement{}
	for _, p := range placed {
		if p.Tenant == GlobalTenant {
			globals = append(globals, p)
		} else {
			own[p.Tenant] = append(own[p.Tenant], p)
		}
	}
	names := append([]string(nil), tenants...)
	sort.Strings(names)
	if err := checkView("", nil, globals); err != nil {
		return err
	}
	for _, t := range names {
		if err := checkView(t, own[t], globals); err != nil {
			return err
		}
	}
	return nil
}

// checkView checks one tenant's view (tenant "" is the Global Key Managers
// on their own).
func checkView(tenant string, own, globals []Placement) error {
	who := "the Global Key Managers"
	if tenant != "" {
		who = "tenant " + tenant
	}
	byName := map[string]Placement{}
	byIssuer := map[string]Placement{}
	for _, p := range append(append([]Placement(nil), globals...), own...) {
		if prev, ok := byName[p.Name]; ok {
			if prev.Tenant != p.Tenant {
				return &VisibilityError{p.Pos, fmt.Sprintf("%s: key manager %q has the name of the Global Key Manager %s; rename one of them", who, p.Name, prev.label())}
			}
			also := ""
			if prev.Pos != "" {
				also = " (also at " + prev.Pos + ")"
			}
			return &VisibilityError{p.Pos, fmt.Sprintf("%s: key manager %q is defined twice%s", who, p.Name, also)}
		}
		byName[p.Name] = p
		for _, iss := range p.Issuers {
			if prev, ok := byIssuer[iss]; ok {
				return &VisibilityError{p.Pos, fmt.Sprintf("%s: key managers %s and %s have the same issuer %q; a token's issuer must pick exactly one Key Manager",
					who, prev.label(), p.labelAt(), iss)}
			}
			byIssuer[iss] = p
		}
	}
	return nil
}

// placement is how the registry sees a running Key Manager.
func (km *KeyManager) placement() Placement {
	p := Placement{Tenant: km.tenant, Name: km.Name()}
	if km.def.IsEnabled() && km.staticIssuer {
		p.Issuers = km.Issuers()
	}
	return p
}
