package keymanagers

import "time"

// Status is a point-in-time view for operators.
type Status struct {
	Tenant        string    `json:"tenant"`
	Name          string    `json:"name"`
	Issuer        string    `json:"issuer,omitempty"`
	JWKSURL       string    `json:"jwks_url,omitempty"`
	KeyIDs        []string  `json:"key_ids"`
	KeysFetched   time.Time `json:"keys_fetched,omitzero"`
	Fetches       uint64    `json:"jwks_fetches"`
	FetchFailures uint64    `json:"jwks_fetch_failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`

	Introspection *IntrospectionStatus `json:"introspection,omitempty"`
	Validations   ValidationStatus     `json:"validations"`
}

// Status returns the Key Manager's current state.
func (km *KeyManager) Status() Status {
	s := Status{Tenant: km.tenant, Name: km.def.Name, Issuer: km.Issuer(), Fetches: km.fetches.Load(), FetchFailures: km.fetchFailures.Load(), KeyIDs: []string{}}
	if u := km.jwksURL.Load(); u != nil {
		s.JWKSURL = *u
	}
	if ks := km.keys.Load(); ks != nil {
		s.KeyIDs = ks.kids()
		s.KeysFetched = ks.fetched
	}
	if e := km.lastError.Load(); e != nil {
		s.LastError, s.LastErrorAt = e.msg, e.at
	}
	s.Introspection = km.introspectionStatus()
	s.Validations = km.stats.status()
	return s
}

// IntrospectionStatus is the introspection part of a Key Manager's status.
type IntrospectionStatus struct {
	URL      string `json:"url,omitempty"`
	Calls    uint64 `json:"calls"`
	Errors   uint64 `json:"errors"`
	Breaker  string `json:"breaker"`
	Failures int64  `json:"consecutive_failures"`
	// Throttled counts unknown tokens refused over the introspection
	// budget, Busy those refused over max_introspection_flights; InFlight
	// is the number of introspection calls in progress.
	Throttled uint64 `json:"throttled"`
	Busy      uint64 `json:"busy"`
	InFlight  int64  `json:"in_flight"`
}

func (km *KeyManager) introspectionStatus() *IntrospectionStatus {
	if km.def.TokenValidation == ValidationJWT {
		return nil
	}
	s := &IntrospectionStatus{Calls: km.intro.calls.Load(), Errors: km.intro.errors.Load(),
		Breaker: km.intro.breaker.state(km.now().UnixNano()), Failures: km.intro.breaker.failures.Load(),
		Throttled: km.intro.throttled.Load(), Busy: km.intro.busy.Load(), InFlight: km.intro.flights.n.Load()}
	if u := km.introspectURL.Load(); u != nil {
		s.URL = *u
	}
	return s
}

// Metrics are a Key Manager's counters for operators (monotonic for the
// life of the runtime; a changed definition starts new ones).
type Metrics struct {
	JWKSFetches         uint64
	JWKSFetchFailures   uint64
	Keys                int
	KeysAge             time.Duration // 0 when no key set was fetched
	IntrospectionCalls  uint64
	IntrospectionErrors uint64
	// IntrospectionThrottled counts tokens refused over the unknown-token
	// budget (introspection_budget), IntrospectionBusy those refused over
	// max_introspection_flights (introspection_busy); neither made a call.
	IntrospectionThrottled uint64
	IntrospectionBusy      uint64
	BreakerOpen            bool
	IntrospectionLatency   LatencySnapshot
}

// Metrics returns the Key Manager's counters.
func (km *KeyManager) Metrics() Metrics {
	m := Metrics{
		JWKSFetches:            km.fetches.Load(),
		JWKSFetchFailures:      km.fetchFailures.Load(),
		IntrospectionCalls:     km.intro.calls.Load(),
		IntrospectionErrors:    km.intro.errors.Load(),
		IntrospectionThrottled: km.intro.throttled.Load(),
		IntrospectionBusy:      km.intro.busy.Load(),
		BreakerOpen:            km.intro.breaker.state(km.now().UnixNano()) == "open",
		IntrospectionLatency:   km.intro.latency.snapshot(),
	}
	if ks := km.keys.Load(); ks != nil {
		m.Keys = len(ks.all)
		if !ks.pinned {
			m.KeysAge = km.now().Sub(ks.fetched)
		}
	}
	return m
}
