package keymanagers

import (
	"errors"
)

// Kind classifies a failed authentication for the edge (status, WSO2 code,
// WWW-Authenticate).
type Kind uint8

// Kinds of authentication failure.
const (
	KindInternal          Kind = iota // 500: a bug or an unexpected failure
	KindMissing                       // 401, 900902
	KindInvalid                       // 401, 900901
	KindExpired                       // 401, 900903
	KindInsufficientScope             // 403, 900910
	KindForbidden                     // 403, 900908
	KindUnknownTenant                 // 404
	KindUnavailable                   // 503, 900900
	KindBadRequest                    // 400
)

// Error is a classified authentication failure. Description is safe to show
// to the client: it never contains a token, a key or a secret.
type Error struct {
	Kind        Kind
	Description string
}

func (e *Error) Error() string { return e.Description }

// Sentinel errors. Compare with errors.Is; detail for logs is attached with
// detailed().
var (
	ErrNoToken          = &Error{KindMissing, "No bearer access token was found in the request."}
	ErrMalformedToken   = &Error{KindInvalid, "The access token is malformed."}
	ErrTokenTooLarge    = &Error{KindInvalid, "The access token is larger than this API accepts."}
	ErrTokenSyntax      = &Error{KindInvalid, "The access token contains characters a bearer token cannot contain."}
	ErrEncryptedToken   = &Error{KindInvalid, "Encrypted (JWE) access tokens are not accepted."}
	ErrOpaqueToken      = &Error{KindInvalid, "The access token is not a JWT and no Key Manager of this API validates opaque tokens."}
	ErrUnknownIssuer    = &Error{KindInvalid, "The access token was issued by an issuer this API does not trust."}
	ErrNotAccepted      = &Error{KindInvalid, "The access token's Key Manager is not accepted by this API."}
	ErrAlgorithm        = &Error{KindInvalid, "The access token is signed with an algorithm this Key Manager does not allow."}
	ErrCritHeader       = &Error{KindInvalid, "The access token has critical header parameters this API does not understand."}
	ErrWrongType        = &Error{KindInvalid, "The token is not an access token (typ must be at+jwt)."}
	ErrUnknownKey       = &Error{KindInvalid, "The access token is signed with a key the Key Manager does not publish."}
	ErrBadSignature     = &Error{KindInvalid, "The access token signature is invalid."}
	ErrExpired          = &Error{KindExpired, "The access token has expired."}
	ErrNotYetValid      = &Error{KindInvalid, "The access token is not valid yet."}
	ErrIssuedInFuture   = &Error{KindInvalid, "The access token was issued in the future."}
	ErrNoExpiry         = &Error{KindInvalid, "The access token has no valid expiry (exp)."}
	ErrWrongAudience    = &Error{KindInvalid, "The access token is not intended for this API (audience mismatch)."}
	ErrUnknownTenant    = &Error{KindUnknownTenant, "Unknown tenant."}
	ErrUnavailable      = &Error{KindUnavailable, "The Key Manager that issued the access token cannot be reached right now; try again later."}
	ErrNoKeys           = &Error{KindUnavailable, "The Key Manager's signing keys are not available right now; try again later."}
	ErrKeyManagerFailed = &Error{KindUnavailable, "The Key Manager is misconfigured or failing; the gateway's operators have been told."}

	ErrInsufficientScope = &Error{KindInsufficientScope, "The access token does not have a scope this resource requires."}
	ErrNotSubscribed     = &Error{KindForbidden, "The application is not subscribed to this API."}
	ErrNoApplication     = &Error{KindForbidden, "The access token does not identify a subscribed application (no client id, or an unknown one)."}
	ErrClaimRequirement  = &Error{KindForbidden, "The access token lacks a claim value this resource requires."}
	ErrBadPath           = &Error{KindBadRequest, "The request path is malformed (encoded separators, dot segments or characters the gateway refuses)."}
)

// detailedError adds log-only detail to a sentinel.
type detailedError struct {
	base   *Error
	detail string
}

func (e *detailedError) Error() string { return e.base.Description + " (" + e.detail + ")" }
func (e *detailedError) Unwrap() error { return e.base }

// detailed attaches log-only detail to a sentinel. The detail must never
// hold a token, a key or a secret.
func detailed(base *Error, detail string) error { return &detailedError{base, detail} }

// Classify returns the classified error behind err, or a KindInternal one.
func Classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{KindInternal, "Internal error."}
}
