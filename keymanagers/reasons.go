package keymanagers

// Every denial the gateway can give, in one place. Each has a stable reason
// id: it is logged with the denial, counted in the denials metric and
// shown as {keymanager.error.reason}. The Kind decides the status, the
// WSO2 code and the RFC 6750 error at the edge; the Description is shown
// to the client and never holds a token, a key or a secret.
//
// docs/troubleshooting.md has one row per reason: what it means and what
// to check. Reason ids never change once released; add new ones instead.

// Reason ids.
const (
	ReasonTokenMissing          = "token_missing"
	ReasonAuthorizationRepeated = "authorization_repeated"
	ReasonTokenMalformed        = "token_malformed"
	ReasonTokenTooLarge         = "token_too_large"
	ReasonTokenSyntax           = "token_syntax"
	ReasonTokenEncrypted        = "token_encrypted"
	ReasonOpaqueUnsupported     = "opaque_unsupported"
	ReasonIssuerUnknown         = "issuer_unknown"
	ReasonIssuerAmbiguous       = "issuer_ambiguous"
	ReasonKeyManagerNotAccepted = "key_manager_not_accepted"
	ReasonAlgorithmRefused      = "algorithm_refused"
	ReasonCritHeader            = "crit_header"
	ReasonTokenTypeRefused      = "token_type_refused"
	ReasonNotAccessToken        = "not_access_token"
	ReasonKidUnknown            = "kid_unknown"
	ReasonSignatureInvalid      = "signature_invalid"
	ReasonExpired               = "expired"
	ReasonNotYetValid           = "not_yet_valid"
	ReasonIssuedInFuture        = "issued_in_future"
	ReasonExpiryMissing         = "expiry_missing"
	ReasonAudienceMismatch      = "audience_mismatch"
	ReasonRevoked               = "revoked"
	ReasonIntrospectionInactive = "introspection_inactive"
	ReasonRefreshToken          = "refresh_token"
	ReasonIntrospectionIssuer   = "introspection_issuer_mismatch"
	ReasonIntrospectionBudget   = "introspection_budget"
	ReasonConnectorRefused      = "connector_refused"
	ReasonTenantUnknown         = "tenant_unknown"
	ReasonScopeMissing          = "scope_missing"
	ReasonApplicationUnknown    = "application_unknown"
	ReasonSubscriptionMissing   = "subscription_missing"
	ReasonClaimRequirement      = "claim_requirement"
	ReasonPathRefused           = "path_refused"
	ReasonKeyManagerUnavailable = "key_manager_unavailable"
	ReasonKeysUnavailable       = "keys_unavailable"
	ReasonKeyManagerFailed      = "key_manager_failed"
	ReasonIntrospectionFailed   = "introspection_failed"
	ReasonBreakerOpen           = "breaker_open"
	ReasonIntrospectionBusy     = "introspection_busy"
	ReasonInternal              = "internal"
)

// Reason ids of sender-constrained tokens (binding.go, dpop.go).
const (
	ReasonDPoPProofInvalid       = "dpop_proof_invalid"
	ReasonDPoPProofMissing       = "dpop_proof_missing"
	ReasonDPoPReplay             = "dpop_proof_replayed"
	ReasonDPoPReplayFull         = "dpop_replay_cache_full"
	ReasonDPoPNonceRequired      = "dpop_nonce_required"
	ReasonDPoPKeyMismatch        = "dpop_key_mismatch"
	ReasonDPoPUnbound            = "dpop_token_unbound"
	ReasonDPoPRequired           = "dpop_required"
	ReasonDPoPDisabled           = "dpop_disabled"
	ReasonBoundAsBearer          = "bound_token_as_bearer"
	ReasonBindingUnsupported     = "binding_unsupported"
	ReasonCertificateMissing     = "certificate_missing"
	ReasonCertificateMismatch    = "certificate_mismatch"
	ReasonCertificateBindingNeed = "certificate_binding_required"
)

// Sender-constrained tokens: the proof or certificate does not fit.
var (
	ErrDPoPProof           = &Error{KindInvalidProof, ReasonDPoPProofInvalid, "The DPoP proof is invalid (typ, alg, key, signature, htm, htu, iat or ath)."}
	ErrDPoPProofMissing    = &Error{KindInvalidProof, ReasonDPoPProofMissing, "The request uses the DPoP scheme but has no DPoP proof header."}
	ErrDPoPReplay          = &Error{KindInvalidProof, ReasonDPoPReplay, "The DPoP proof has been used before; send a new proof with every request."}
	ErrDPoPReplayFull      = &Error{KindUnavailable, ReasonDPoPReplayFull, "The gateway is receiving too many DPoP proofs right now; try again shortly."}
	ErrUseDPoPNonce        = &Error{KindNonceRequired, ReasonDPoPNonceRequired, "The DPoP proof must carry the server nonce given in the DPoP-Nonce header."}
	ErrDPoPKeyMismatch     = &Error{KindInvalidProof, ReasonDPoPKeyMismatch, "The DPoP proof is signed with another key than the one the access token is bound to."}
	ErrDPoPUnbound         = &Error{KindInvalid, ReasonDPoPUnbound, "The access token is not DPoP-bound; send it with the Bearer scheme."}
	ErrDPoPRequired        = &Error{KindInvalid, ReasonDPoPRequired, "This API requires DPoP-bound access tokens sent with the DPoP scheme."}
	ErrDPoPDisabled        = &Error{KindInvalid, ReasonDPoPDisabled, "This API does not accept DPoP."}
	ErrBoundAsBearer       = &Error{KindInvalid, ReasonBoundAsBearer, "The access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof."}
	ErrBindingUnsupported  = &Error{KindInvalid, ReasonBindingUnsupported, "The access token is bound (cnf) by a method this API cannot check."}
	ErrCertificateMissing  = &Error{KindInvalid, ReasonCertificateMissing, "The access token is bound to a client certificate, and the request has none."}
	ErrCertificateMismatch = &Error{KindInvalid, ReasonCertificateMismatch, "The access token is bound to another client certificate than the request's."}
	ErrCertificateUnbound  = &Error{KindInvalid, ReasonCertificateBindingNeed, "This API requires access tokens bound to a client certificate (cnf.x5t#S256)."}
)

// Token: missing, unreadable or refused before any Key Manager is asked.
var (
	ErrNoToken        = &Error{KindMissing, ReasonTokenMissing, "No bearer access token was found in the request."}
	ErrMultipleAuth   = &Error{KindInvalid, ReasonAuthorizationRepeated, "The request has more than one Authorization header."}
	ErrMalformedToken = &Error{KindInvalid, ReasonTokenMalformed, "The access token is malformed."}
	ErrTokenTooLarge  = &Error{KindInvalid, ReasonTokenTooLarge, "The access token is larger than this API accepts."}
	ErrTokenSyntax    = &Error{KindInvalid, ReasonTokenSyntax, "The access token contains characters a bearer token cannot contain."}
	ErrEncryptedToken = &Error{KindInvalid, ReasonTokenEncrypted, "Encrypted (JWE) access tokens are not accepted."}
	ErrOpaqueToken    = &Error{KindInvalid, ReasonOpaqueUnsupported, "The access token is not a JWT and no Key Manager of this API validates opaque tokens."}
	ErrRevoked        = &Error{KindInvalid, ReasonRevoked, "The access token has been revoked."}
)

// Issuer resolution: which Key Manager vouches for the token.
var (
	ErrUnknownIssuer   = &Error{KindInvalid, ReasonIssuerUnknown, "The access token was issued by an issuer this API does not trust."}
	ErrNotAccepted     = &Error{KindInvalid, ReasonKeyManagerNotAccepted, "The access token's Key Manager is not accepted by this API."}
	ErrAmbiguousIssuer = &Error{KindUnavailable, ReasonIssuerAmbiguous, "The Key Manager is misconfigured or failing; the gateway's operators have been told."}
)

// JWT verification and claim checks.
var (
	ErrAlgorithm      = &Error{KindInvalid, ReasonAlgorithmRefused, "The access token is signed with an algorithm this Key Manager does not allow."}
	ErrCritHeader     = &Error{KindInvalid, ReasonCritHeader, "The access token has critical header parameters this API does not understand."}
	ErrWrongType      = &Error{KindInvalid, ReasonTokenTypeRefused, "The token is not an access token (typ must be at+jwt)."}
	ErrNotAccessToken = &Error{KindInvalid, ReasonNotAccessToken, "The token is an ID, logout or refresh token, not an access token."}
	ErrUnknownKey     = &Error{KindInvalid, ReasonKidUnknown, "The access token is signed with a key the Key Manager does not publish."}
	ErrBadSignature   = &Error{KindInvalid, ReasonSignatureInvalid, "The access token signature is invalid."}
	ErrExpired        = &Error{KindExpired, ReasonExpired, "The access token has expired."}
	ErrNotYetValid    = &Error{KindInvalid, ReasonNotYetValid, "The access token is not valid yet."}
	ErrIssuedInFuture = &Error{KindInvalid, ReasonIssuedInFuture, "The access token was issued in the future."}
	ErrNoExpiry       = &Error{KindInvalid, ReasonExpiryMissing, "The access token has no valid expiry (exp)."}
	ErrWrongAudience  = &Error{KindInvalid, ReasonAudienceMismatch, "The access token is not intended for this API (audience mismatch)."}
)

// Introspection answers (RFC 7662).
var (
	ErrInactive            = &Error{KindInvalid, ReasonIntrospectionInactive, "The access token is not active (revoked, expired or unknown to its Key Manager)."}
	ErrRefreshToken        = &Error{KindInvalid, ReasonRefreshToken, "A refresh token cannot be used as an access token."}
	ErrWrongTokenIssuer    = &Error{KindInvalid, ReasonIntrospectionIssuer, "The access token was issued by another issuer than its Key Manager's."}
	ErrIntrospectionBudget = &Error{KindInvalid, ReasonIntrospectionBudget, "The access token is not known to the gateway and its Key Manager is receiving too many unknown tokens; try again shortly."}
)

// Authorization: the token is valid but does not open this resource.
var (
	ErrUnknownTenant     = &Error{KindUnknownTenant, ReasonTenantUnknown, "Unknown tenant."}
	ErrInsufficientScope = &Error{KindInsufficientScope, ReasonScopeMissing, "The access token does not have a scope this resource requires."}
	ErrNotSubscribed     = &Error{KindForbidden, ReasonSubscriptionMissing, "The application is not subscribed to this API."}
	ErrNoApplication     = &Error{KindForbidden, ReasonApplicationUnknown, "The access token does not identify a subscribed application (no client id, or an unknown one)."}
	ErrClaimRequirement  = &Error{KindForbidden, ReasonClaimRequirement, "The access token lacks a claim value this resource requires."}
	ErrBadPath           = &Error{KindBadRequest, ReasonPathRefused, "The request path is malformed (encoded separators, dot segments or characters the gateway refuses)."}
)

// The Key Manager cannot answer: 503, never cached.
var (
	ErrUnavailable       = &Error{KindUnavailable, ReasonKeyManagerUnavailable, "The Key Manager that issued the access token cannot be reached right now; try again later."}
	ErrNoKeys            = &Error{KindUnavailable, ReasonKeysUnavailable, "The Key Manager's signing keys are not available right now; try again later."}
	ErrKeyManagerFailed  = &Error{KindUnavailable, ReasonKeyManagerFailed, "The Key Manager is misconfigured or failing; the gateway's operators have been told."}
	ErrIntrospection     = &Error{KindUnavailable, ReasonIntrospectionFailed, "The Key Manager could not validate the access token right now; try again later."}
	ErrBreakerOpen       = &Error{KindUnavailable, ReasonBreakerOpen, "The Key Manager is failing; the gateway stopped asking it for a short while. Try again later."}
	ErrIntrospectionBusy = &Error{KindUnavailable, ReasonIntrospectionBusy, "The Key Manager is validating too many access tokens at once; try again shortly."}
)

var errInternal = &Error{KindInternal, ReasonInternal, "Internal error."}

// Reasons lists every sentinel denial, for documentation and tests.
func Reasons() []*Error {
	return []*Error{
		ErrNoToken, ErrMultipleAuth, ErrMalformedToken, ErrTokenTooLarge, ErrTokenSyntax, ErrEncryptedToken, ErrOpaqueToken, ErrRevoked,
		ErrUnknownIssuer, ErrNotAccepted, ErrAmbiguousIssuer,
		ErrAlgorithm, ErrCritHeader, ErrWrongType, ErrNotAccessToken, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrNotYetValid,
		ErrIssuedInFuture, ErrNoExpiry, ErrWrongAudience,
		ErrInactive, ErrRefreshToken, ErrWrongTokenIssuer, ErrIntrospectionBudget,
		ErrUnknownTenant, ErrInsufficientScope, ErrNotSubscribed, ErrNoApplication, ErrClaimRequirement, ErrBadPath,
		ErrUnavailable, ErrNoKeys, ErrKeyManagerFailed, ErrIntrospection, ErrBreakerOpen, ErrIntrospectionBusy,
		errInternal,
		// sender-constrained tokens
		ErrDPoPProof, ErrDPoPProofMissing, ErrDPoPReplay, ErrDPoPReplayFull, ErrUseDPoPNonce, ErrDPoPKeyMismatch,
		ErrDPoPUnbound, ErrDPoPRequired, ErrDPoPDisabled, ErrBoundAsBearer, ErrBindingUnsupported,
		ErrCertificateMissing, ErrCertificateMismatch, ErrCertificateUnbound,
	}
}
