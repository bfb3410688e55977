package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// ErrUpstream marks a failure of the Key Manager behind a developer-key
// call (registration, RFC 7592 deletion, token generation): it was
// unreachable, refused, or answered against the RFCs. Hosts answer 502.
var ErrUpstream = errors.New("key manager failed")

// DeleteOptions tune DeleteApplicationWith.
type DeleteOptions struct {
	// Force deletes the application here even when its client cannot be
	// deleted at the Key Manager (it is then left there, and a warning
	// names its client_id). Without it such a delete fails with
	// ErrUpstream and nothing changes.
	Force bool
}

// developerKM returns the Key Manager an application of tenant names.
func (c *Catalog) developerKM(tenant, name string) (*keymanagers.KeyManager, error) {
	t := c.cfg.Gateway.Registry().Tenant(tenant)
	if t == nil {
		return nil, fail(ErrNotFound, "tenant %q not found", tenant)
	}
	km := t.KeyManager(name)
	if km == nil {
		return nil, keymanagers.FieldErrors{{Field: "key_manager", Message: fmt.Sprintf("no key manager %q is visible to tenant %q", name, tenant)}}
	}
	return km, nil
}

// registerApplication creates the client at the Key Manager (RFC 7591),
// then stores the application. When storing fails, the client is deleted
// again at the Key Manager, so nothing is left half-made. The answer
// carries the client secret, this once.
func (c *Catalog) registerApplication(ctx context.Context, tenant string, ap keymanagers.Application) (ApplicationView, error) {
	if ap.Registered || ap.ClientSecret != "" {
		return ApplicationView{}, keymanagers.FieldErrors{{Field: "registered", Message: "registered and client_secret are set by the gateway, not sent"}}
	}
	if err := ap.Validate(); err != nil {
		return ApplicationView{}, err
	}
	if c.cfg.Storage == nil {
		return ApplicationView{}, fail(ErrUnavailable, "no storage is configured")
	}
	if c.configApp(tenant, ap.ID) {
		return ApplicationView{}, fail(ErrConflict, "application %q of tenant %q is defined in the Caddy configuration and is read-only here", ap.ID, tenant)
	}
	c.mu.Lock()
	exists := c.apps[tenant][ap.ID] != nil
	c.mu.Unlock()
	if exists {
		return ApplicationView{}, fail(ErrConflict, "application %q of tenant %q already exists", ap.ID, tenant)
	}
	km, err := c.developerKM(tenant, ap.KeyManager)
	if err != nil {
		return ApplicationView{}, err
	}
	if !km.Definition().EnableOAuthAppCreation {
		return ApplicationView{}, fail(ErrConflict, "key manager %q does not allow application registration: set enable_oauth_app_creation on it", ap.KeyManager)
	}
	grants := ap.GrantTypes
	if len(grants) == 0 {
		grants = []string{"client_credentials"}
	}
	rc, err := km.RegisterClient(ctx, keymanagers.ClientRegistration{ClientName: ap.ClientName, GrantTypes: grants,
		RedirectURIs: ap.RedirectURIs, Scopes: ap.RegistrationScopes})
	if err != nil {
		return ApplicationView{}, upstream(fmt.Sprintf("registering the client at key manager %q", ap.KeyManager), err)
	}
	ap.Register, ap.Registered, ap.ClientID, ap.GrantTypes = false, true, rc.ClientID, grants
	v, err := c.putApplication(ctx, tenant, ap, "", true, rc)
	if err != nil {
		// Undo at the IdP, even if the caller has gone away.
		if derr := km.DeleteClient(context.WithoutCancel(ctx), *rc); derr != nil {
			c.logger.Error("a client registered for an application that could not be stored is left at the key manager: delete it there",
				zap.String("tenant", tenant), zap.String("application", ap.ID), zap.String("key_manager", ap.KeyManager),
				zap.String("client_id", rc.ClientID), zap.String("error", derr.Error()))
			return ApplicationView{}, fmt.Errorf("%w (and the client %q registered for it could not be deleted at the key manager: %v)", err, rc.ClientID, derr)
		}
		return ApplicationView{}, err
	}
	v.Application.ClientSecret = rc.ClientSecret
	return v, nil
}

// checkRegisteredFields refuses registered and client_secret on writes
// that do not register (they are the gateway's to set); a replace of a
// registered application may send them back as read (keepRegistration).
func checkRegisteredFields(ap keymanagers.Application, registering bool) error {
	if registering {
		return nil
	}
	if ap.ClientSecret != "" && ap.ClientSecret != keymanagers.Mask {
		return keymanagers.FieldErrors{{Field: "client_secret", Message: "is not accepted: the client secret of a registered application is the Key Manager's, and other applications have none here"}}
	}
	return nil
}

// keepRegistration checks a replacement of a registered application: the
// client at the Key Manager stays as registered (RFC 7592 update is not
// used), so its client_id and metadata may be left out or repeated, not
// changed.
func keepRegistration(cur keymanagers.Application, ap *keymanagers.Application) error {
	var errs keymanagers.FieldErrors
	same := func(field string, changed bool) {
		if changed {
			errs = append(errs, keymanagers.FieldError{Field: field, Message: "cannot change on a registered application (the client at the Key Manager keeps it): delete the application and register it again"})
		}
	}
	same("key_manager", ap.KeyManager != cur.KeyManager)
	same("client_id", ap.ClientID != "" && ap.ClientID != cur.ClientID)
	same("client_name", ap.ClientName != "" && ap.ClientName != cur.ClientName)
	same("grant_types", len(ap.GrantTypes) > 0 && !slices.Equal(ap.GrantTypes, cur.GrantTypes))
	same("redirect_uris", len(ap.RedirectURIs) > 0 && !slices.Equal(ap.RedirectURIs, cur.RedirectURIs))
	same("registration_scopes", len(ap.RegistrationScopes) > 0 && !slices.Equal(ap.RegistrationScopes, cur.RegistrationScopes))
	if len(errs) > 0 {
		return errs
	}
	ap.ClientID, ap.ClientName, ap.GrantTypes = cur.ClientID, cur.ClientName, cur.GrantTypes
	ap.RedirectURIs, ap.RegistrationScopes, ap.Registered = cur.RedirectURIs, cur.RegistrationScopes, true
	return nil
}

// deregister deletes the client of a registered application at the Key
// Manager (RFC 7592), before the application is deleted here. When the
// Key Manager gave no registration_client_uri and
// registration_access_token there is no way to, and the delete goes on
// with a warning naming the client. Anything
// else (a config application, an unknown one, a stale If-Match) is left
// to the delete itself to report.
func (c *Catalog) deregister(ctx context.Context, tenant, id, ifMatch string, opts DeleteOptions) error {
	if c.configApp(tenant, id) {
		return nil
	}
	c.mu.Lock()
	cur := c.apps[tenant][id]
	c.mu.Unlock()
	if cur == nil || cur.rec.Registration == nil || cur.rec.checkIfMatch(ifMatch) != nil {
		return nil
	}
	rc := *cur.rec.Registration
	if !rc.Manageable() {
		// The Key Manager gave no RFC 7592 management: nothing to call.
		c.logger.Warn("deleting a registered application whose key manager offers no RFC 7592 deletion: its client is left there",
			zap.String("tenant", tenant), zap.String("application", id), zap.String("key_manager", cur.app.KeyManager),
			zap.String("client_id", rc.ClientID))
		return nil
	}
	km, err := c.developerKM(tenant, cur.app.KeyManager)
	if err == nil {
		err = km.DeleteClient(ctx, rc)
	}
	if err == nil {
		return nil
	}
	if !opts.Force {
		return upstream(fmt.Sprintf("deleting client %q of application %q at key manager %q (nothing was deleted; retry, or delete with force to keep the client there)",
			rc.ClientID, id, cur.app.KeyManager), err)
	}
	c.logger.Warn("application deleted with force: its client is left at the key manager",
		zap.String("tenant", tenant), zap.String("application", id), zap.String("key_manager", cur.app.KeyManager),
		zap.String("client_id", rc.ClientID), zap.String("error", err.Error()))
	return nil
}

// ApplicationToken obtains a client-credentials token for an application
// the gateway registered, at its Key Manager's token endpoint, with scopes
// (default: the registration scopes). The token is returned, never logged.
func (c *Catalog) ApplicationToken(ctx context.Context, tenant, id string, scopes []string) (*keymanagers.ClientToken, error) {
	if err := c.appChecks(tenant); err != nil {
		return nil, err
	}
	for i, s := range scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return nil, keymanagers.FieldErrors{{Field: fmt.Sprintf("scopes[%d]", i), Message: fmt.Sprintf("%q is not a scope token", s)}}
		}
	}
	if c.configApp(tenant, id) {
		return nil, fail(ErrConflict, "application %q of tenant %q is defined in the Caddy configuration: the gateway did not register it and holds no secret for it", id, tenant)
	}
	c.mu.Lock()
	cur := c.apps[tenant][id]
	c.mu.Unlock()
	if cur == nil {
		return nil, fail(ErrNotFound, "application %q of tenant %q not found", id, tenant)
	}
	if cur.rec.Registration == nil {
		return nil, fail(ErrConflict, "application %q was not registered by the gateway (create it with register: true): it holds no secret for it", id)
	}
	km, err := c.developerKM(tenant, cur.app.KeyManager)
	if err != nil {
		return nil, err
	}
	if !km.Definition().EnableTokenGeneration {
		return nil, fail(ErrConflict, "key manager %q does not allow token generation: set enable_token_generation on it", cur.app.KeyManager)
	}
	if len(scopes) == 0 {
		scopes = cur.app.RegistrationScopes
	}
	tok, err := km.ClientToken(ctx, cur.rec.Registration.ClientID, cur.rec.Registration.ClientSecret, scopes)
	if err != nil {
		var re *keymanagers.RegistrationError
		if errors.As(err, &re) && re.Code == "invalid_scope" {
			return nil, keymanagers.FieldErrors{{Field: "scopes", Message: "the key manager refused them: " + re.Error()}}
		}
		return nil, fail(ErrUpstream, "getting a token for application %q at key manager %q: %v", id, cur.app.KeyManager, err)
	}
	return tok, nil
}

// upstream turns a Key Manager failure into a catalog failure: refused
// client metadata is the caller's input (field errors), anything else
// ErrUpstream.
func upstream(what string, err error) error {
	var re *keymanagers.RegistrationError
	if errors.As(err, &re) && re.ClientMetadataError() {
		return keymanagers.FieldErrors{{Field: metadataField(re), Message: "the key manager refused it: " + re.Error()}}
	}
	return fail(ErrUpstream, "%s: %v", what, err)
}

// metadataField guesses which application field a refused registration
// is about, from the error code and the IdP's description.
func metadataField(re *keymanagers.RegistrationError) string {
	if re.Code == "invalid_redirect_uri" {
		return "redirect_uris"
	}
	d := strings.ToLower(re.Description)
	for _, f := range [...]struct{ word, field string }{
		{"redirect", "redirect_uris"}, {"grant", "grant_types"}, {"scope", "registration_scopes"}, {"client_name", "client_name"},
	} {
		if strings.Contains(d, f.word) {
			return f.field
		}
	}
	return "register"
}
