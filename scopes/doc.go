// Package scopes holds the pure scope logic of the keymanager handler: which
// scopes a resource (method + path) requires, whether a token's granted
// scopes satisfy them, the application scopes adjustment, and claim
// requirements. It does no I/O and imports only the standard library; the
// Caddy glue translates `scope`, `unmatched`, `require_claim` and the
// application `scopes` / `deny_scopes` directives into calls on it.
//
// # Resource rules
//
// A [Rule] is `scope METHOD PATH SCOPE...`. Rules are compiled once with
// [Compile] into a [Policy]; [Policy.Check] then finds the single most
// specific rule for a request through an index (a map for exact paths and a
// segment trie for templates and wildcards), never by scanning every rule.
//
// PATH forms, all case-insensitive (rules are lower-cased at compile time,
// request paths by [NormalizePath]):
//
//   - exact: `/orders`, `/orders/archive`. `/` matches only the root.
//   - template: `/orders/{id}`, `/tenants/{t}/orders/{id}`. Each `{name}` is a
//     whole segment and matches exactly one non-empty segment (no slash).
//   - wildcard: `/orders/*`, `/tenants/{t}/*`. `*` must be the whole last
//     segment. `/orders/*` matches `/orders` itself and `/orders/` followed
//     by one or more further segments (`/orders/1`, `/orders/1/items`), but
//     never `/ordersX`. `/*` matches every path, including `/`.
//
// Rule paths are written decoded: a `%`, `;`, `\`, control character, `.`
// or `..` segment in a rule path is a compile error, and repeated or
// trailing slashes are merged as in request paths. `*` or `{`/`}` inside a
// segment (`/orders*`, `/o/{id}.json`) is a compile error.
//
// METHOD is an HTTP method token, compared case-insensitively, or `*` for
// any method. A HEAD request also uses GET rules: a GET rule covers HEAD
// unless a HEAD rule for the same path exists (many servers answer HEAD
// with their GET handler, so a GET-only rule must not leave HEAD open).
//
// # Specificity
//
// The most specific matching rule wins, independently of declaration order:
//
//  1. exact beats template beats wildcard;
//  2. among templates: more literal segments wins; at equal count, the one
//     whose first differing segment is literal wins (`/a/{x}/{y}` beats
//     `/{x}/b/{y}` for `/a/b/c`);
//  3. among wildcards: the longer prefix (in segments) wins, then more
//     literal segments, then the literal-first rule as for templates;
//  4. only at equal path specificity does the method decide: a rule for the
//     request's own method beats a GET rule applied to HEAD, which beats `*`.
//
// So `* /orders/42` beats `GET /orders/{id}` for `GET /orders/42`: path
// specificity comes first. A rule whose method does not apply is simply not
// a candidate. Two rules with the same method and the same path (parameter
// names ignored: `/o/{id}` and `/o/{oid}` are the same path) are a compile
// error. A request no rule matches is allowed or denied by
// [Config.Unmatched] (default allow, as WSO2 does for resources without
// scopes).
//
// # Matching granted scopes
//
// Granted scopes are one string separated by spaces (any ASCII white space
// is accepted as a separator). Per rule, Match `any` (default) needs one of
// the rule's scopes, `all` needs every one. [Config.Strategy] decides when a
// granted scope g satisfies a required scope r; in every strategy g == r
// does:
//
//   - exact (default): only g == r (case-sensitive, as RFC 6749 scopes are).
//   - hierarchic: also when r is g followed by a separator and anything:
//     granted `orders` satisfies `orders.read`, `orders:read`, `orders/read`
//     and deeper (`orders:read:own`). The separators are `.`, `:` and `/`.
//     `order` does not satisfy `orders.read`, `orders.read` does not satisfy
//     `orders`.
//   - wildcard: also when g contains `*` segments (segments are split by the
//     same separators `.`, `:` and `/`; the separators must then be equal
//     character by character). A `*` segment in the middle matches exactly
//     one non-empty segment of r; a final `*` matches one or more segments:
//     `orders:*` satisfies `orders:read` and `orders:read:own`, not `orders`
//     nor `orders.read`; `orders:*:read` satisfies `orders:eu:read`. A
//     granted scope needs at least one literal (non-`*`, non-empty) segment
//     to act as a pattern: `*`, `*:*` or `*.*` grant nothing (except a
//     required scope literally equal to them). `*` inside a segment
//     (`orders*`) is an ordinary character. Required scopes are always
//     literal.
//
// An unknown strategy, unmatched mode or match mode is a compile error.
//
// # Path normalisation
//
// [Policy.Check] expects the output of [NormalizePath], which does what
// Caddy's route matching does and then some, so that encoded separators,
// dot segments, case and slashes cannot dodge a rule: decode escapes once,
// resolve `.`/`..`, merge slashes, drop a trailing slash, lower-case ASCII.
// Inputs that servers disagree on are refused (ok=false, callers deny):
// invalid escapes, double encoding (a `%` left after decoding), control
// characters including NUL, invalid UTF-8 (overlong encodings of `/` and `.`
// included), the backslash (a separator on Windows servers) and the
// semicolon. Servlet containers (Tomcat, Jetty, Spring) cut `;params` off
// each segment, so `/admin;x/users` and `/public/..;/admin` reach `/admin`
// there, while most other servers treat `;` as data; no single reading is
// safe for every upstream, so `;` is refused, as Spring Security's strict
// firewall does.
//
// # Application scopes and claims
//
// [Effective] computes the scopes of an application (granted + added -
// denied). [ClaimRequirement] checks `require_claim PATH VALUE...` against
// a token's claims.
package scopes
