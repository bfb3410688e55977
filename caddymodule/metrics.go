package caddymodule

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Metrics (namespace caddy, subsystem keymanagers). Labels are bounded:
// tenant (configured or API-made tenants only; anything else is
// "_unknown"), key_manager (a configured name or ""), outcome and result.
// Never subject, client or token.
var metrics struct {
	once        sync.Once
	validations *prometheus.CounterVec
	denials     *prometheus.CounterVec
	cache       *prometheus.CounterVec
	hit, miss   prometheus.Counter
	// ok caches the outcome="ok" counters by tenant and Key Manager
	// (copy-on-write), so the success path neither locks nor allocates.
	okMu sync.Mutex
	ok   atomic.Pointer[map[string]map[string]prometheus.Counter]
}

const unknownTenantLabel = "_unknown"

func initMetrics() {
	metrics.once.Do(func() {
		metrics.validations = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "keymanagers", Name: "validations_total",
			Help: "Token validations by tenant, Key Manager and outcome.",
		}, []string{"tenant", "key_manager", "outcome"})
		metrics.denials = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "keymanagers", Name: "denials_total",
			Help: "Denied requests by tenant and stable reason id (docs/troubleshooting.md).",
		}, []string{"tenant", "reason"})
		metrics.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "keymanagers", Name: "cache_requests_total",
			Help: "Result cache lookups of successful validations, by result (hit or miss).",
		}, []string{"result"})
		metrics.hit = metrics.cache.WithLabelValues("hit")
		metrics.miss = metrics.cache.WithLabelValues("miss")
		metrics.ok.Store(&map[string]map[string]prometheus.Counter{})
		initBindingMetric() // dpop.go
	})
}

// okCounter returns the outcome="ok" counter of (tenant, keyManager).
func okCounter(tenant, keyManager string) prometheus.Counter {
	if c := (*metrics.ok.Load())[tenant][keyManager]; c != nil {
		return c
	}
	metrics.okMu.Lock()
	defer metrics.okMu.Unlock()
	cur := *metrics.ok.Load()
	if c := cur[tenant][keyManager]; c != nil {
		return c
	}
	c := metrics.validations.WithLabelValues(tenant, keyManager, "ok")
	next := make(map[string]map[string]prometheus.Counter, len(cur)+1)
	for t, m := range cur {
		next[t] = m
	}
	inner := make(map[string]prometheus.Counter, len(cur[tenant])+1)
	for k, v := range cur[tenant] {
		inner[k] = v
	}
	inner[keyManager] = c
	next[tenant] = inner
	metrics.ok.Store(&next)
	return c
}

// registerMetrics registers the shared collectors and this app's Key
// Manager collector into the config's registry.
func (a *App) registerMetrics(ctx caddy.Context) error {
	if a.DisableMetrics {
		return nil
	}
	initMetrics()
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.validations, metrics.denials, metrics.cache, bindingMetric.vec, &kmCollector{app: a}} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// outcomeLabel names a validation outcome.
func outcomeLabel(kind keymanagers.Kind) string { return keymanagers.OutcomeName(kind) }

// observe counts an allowed request.
func (h *Handler) observe(tenant, keyManager string, cached bool) {
	if h.app.DisableMetrics || metrics.validations == nil {
		return
	}
	okCounter(tenant, keyManager).Inc()
	if cached {
		metrics.hit.Inc()
	} else {
		metrics.miss.Inc()
	}
}

// observeDenial counts a denied request by outcome and by reason. p is
// the principal when the token was valid but authorization denied it.
func (h *Handler) observeDenial(tenant string, p *keymanagers.Principal, err error) {
	if h.app.DisableMetrics || metrics.validations == nil {
		return
	}
	e := keymanagers.Classify(err)
	if e.Kind == keymanagers.KindUnknownTenant && h.dynTenant {
		tenant = unknownTenantLabel // a tenant from the request: not a label
	}
	keyManager := ""
	if p != nil {
		keyManager = p.KeyManager
		if p.Cached {
			metrics.hit.Inc()
		} else {
			metrics.miss.Inc()
		}
	}
	metrics.validations.WithLabelValues(tenant, keyManager, outcomeLabel(e.Kind)).Inc()
	metrics.denials.WithLabelValues(tenant, e.Reason).Inc()
}

var (
	descKeys = prometheus.NewDesc("caddy_keymanagers_jwks_keys", "Keys in the Key Manager's current key set.",
		[]string{"tenant", "key_manager"}, nil)
	descKeysAge = prometheus.NewDesc("caddy_keymanagers_jwks_age_seconds", "Age of the Key Manager's current key set.",
		[]string{"tenant", "key_manager"}, nil)
	descFetches = prometheus.NewDesc("caddy_keymanagers_jwks_fetches_total", "JWKS fetches by result (ok or failed).",
		[]string{"tenant", "key_manager", "result"}, nil)
	descIntroErrors = prometheus.NewDesc("caddy_keymanagers_introspection_errors_total", "Introspection calls that failed (transport, HTTP status, malformed answer).",
		[]string{"tenant", "key_manager"}, nil)
	descIntroLatency = prometheus.NewDesc("caddy_keymanagers_introspection_duration_seconds", "Introspection call latency.",
		[]string{"tenant", "key_manager"}, nil)
	descIntroRefused = prometheus.NewDesc("caddy_keymanagers_introspection_refused_total", "Unknown tokens refused without an introspection call, by why: budget (introspection_rate/burst) or busy (max_introspection_flights).",
		[]string{"tenant", "key_manager", "why"}, nil)
	descBreaker = prometheus.NewDesc("caddy_keymanagers_breaker_open", "1 while the Key Manager's introspection circuit breaker is open.",
		[]string{"tenant", "key_manager"}, nil)
	descCacheEntries = prometheus.NewDesc("caddy_keymanagers_cache_entries", "Entries in the result cache (expired ones until swept).", nil, nil)
	descCacheBytes   = prometheus.NewDesc("caddy_keymanagers_cache_bytes", "Bytes the result cache occupies.", nil, nil)
)

// kmCollector reads the running Key Managers at scrape time, so nothing is
// counted on the request path for them.
type kmCollector struct{ app *App }

// Describe sends nothing: an unchecked collector (its label values follow
// the Key Managers of the moment).
func (c *kmCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *kmCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.app.gateway
	if g == nil {
		return
	}
	for _, km := range g.Registry().All() {
		m := km.Metrics()
		t, n := km.Tenant(), km.Name()
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(m.Keys), t, n)
		if m.KeysAge > 0 {
			ch <- prometheus.MustNewConstMetric(descKeysAge, prometheus.GaugeValue, m.KeysAge.Seconds(), t, n)
		}
		ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(m.JWKSFetches-m.JWKSFetchFailures), t, n, "ok")
		ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(m.JWKSFetchFailures), t, n, "failed")
		if km.UsesIntrospection() {
			ch <- prometheus.MustNewConstMetric(descIntroErrors, prometheus.CounterValue, float64(m.IntrospectionErrors), t, n)
			ch <- prometheus.MustNewConstMetric(descIntroRefused, prometheus.CounterValue, float64(m.IntrospectionThrottled), t, n, "budget")
			ch <- prometheus.MustNewConstMetric(descIntroRefused, prometheus.CounterValue, float64(m.IntrospectionBusy), t, n, "busy")
			ch <- prometheus.MustNewConstHistogram(descIntroLatency, m.IntrospectionLatency.Count, m.IntrospectionLatency.SumSeconds,
				m.IntrospectionLatency.Cumulative, t, n)
			open := 0.0
			if m.BreakerOpen {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, open, t, n)
		}
	}
	cache := g.Cache()
	ch <- prometheus.MustNewConstMetric(descCacheEntries, prometheus.GaugeValue, float64(cache.Len()))
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(cache.Capacity()))
}
