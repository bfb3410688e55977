// Package keymanager is the caddy-keymanager plugin: import it (or build
// Caddy with `xcaddy build --with github.com/kmgate/caddy-keymanager`) to
// get the keymanagers app, the keymanager HTTP handler and the built-in
// Key Manager connectors.
package keymanager

import (
	// The Caddy modules register themselves.
	_ "github.com/kmgate/caddy-keymanager/caddymodule"
)
