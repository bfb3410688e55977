package keymanagers

import "sync/atomic"

// outcomeNames names the validation outcomes a Key Manager counts: "ok",
// then one per denial Kind (the names of the validations_total metric).
var outcomeNames = [...]string{
	KindInternal:          "error",
	KindMissing:           "missing",
	KindInvalid:           "invalid",
	KindExpired:           "expired",
	KindInsufficientScope: "insufficient_scope",
	KindForbidden:         "forbidden",
	KindUnknownTenant:     "unknown_tenant",
	KindUnavailable:       "unavailable",
	KindBadRequest:        "bad_request",
	KindInvalidProof:      "invalid_proof",
	KindNonceRequired:     "invalid_proof",
}

// validationStats counts, per Key Manager, the requests whose token it
// vouched for: allowed, or denied by a later check (scopes, subscription,
// claims), and whether the result came from the cache. Lock-free atomics
// bumped on the request path: one add per allowed request (ok is hits +
// misses - denials), a second one per denial.
type validationStats struct {
	denied       [len(outcomeNames)]atomic.Uint64
	hits, misses atomic.Uint64
}

// count records one request whose token km vouched for; err is the later
// check's denial, or nil.
func (s *validationStats) count(cached bool, err error) {
	if err != nil {
		// Before the hit or miss, so a concurrent status never sees more
		// denials than requests.
		if k := int(Classify(err).Kind); k < len(s.denied) {
			s.denied[k].Add(1)
		}
	}
	if cached {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
}

// ValidationStatus is the validations part of a Key Manager's status:
// counts by outcome ("ok" and the denials after the token was verified)
// and the result cache's hits and misses for its tokens.
type ValidationStatus struct {
	Outcomes    map[string]uint64 `json:"outcomes"`
	CacheHits   uint64            `json:"cache_hits"`
	CacheMisses uint64            `json:"cache_misses"`
}

func (s *validationStats) status() ValidationStatus {
	v := ValidationStatus{Outcomes: map[string]uint64{}, CacheHits: s.hits.Load(), CacheMisses: s.misses.Load()}
	var denied uint64
	for k := range s.denied {
		if n := s.denied[k].Load(); n > 0 {
			v.Outcomes[outcomeNames[k]] = n
			denied += n
		}
	}
	// A denial counted whose hit or miss is not yet: ok cannot go below 0.
	v.Outcomes["ok"] = max(v.CacheHits+v.CacheMisses, denied) - denied
	return v
}

// OutcomeName names a denial Kind as validation outcomes are counted
// ("invalid", "expired", ...; "error" for anything unknown).
func OutcomeName(k Kind) string {
	if int(k) < len(outcomeNames) {
		return outcomeNames[k]
	}
	return outcomeNames[KindInternal]
}
