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
	// Sender-constrained tokens (RFC 9449): 401 with a DPoP challenge.
	KindInvalidProof  // 401, error="invalid_dpop_proof"
	KindNonceRequired // 401, error="use_dpop_nonce" and a DPoP-Nonce
)

// Error is a classified authentication failure. Description is safe to show
// to the client: it never contains a token, a key or a secret.
type Error struct {
	Kind Kind
	// Reason is the stable id of the denial (see reasons.go): logged,
	// counted in metrics and shown as {keymanager.error.reason}.
	Reason      string
	Description string
}

func (e *Error) Error() string { return e.Description }

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
	return errInternal
}
