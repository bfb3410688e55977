package caddymodule

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmgate/caddy-keymanager/keymanagers"
)

// Sender-constrained tokens at the edge: what the host saw (scheme, DPoP
// header, URI as sent, verified client certificate), the DPoP and Bearer
// challenges (RFC 9449 section 7.1, RFC 6750) and the binding metric. The
// decisions are the domain's (keymanagers/binding.go).

// dpopAlgs is the algs= parameter of DPoP challenges.
var dpopAlgs = strings.Join(keymanagers.DPoPAlgorithms, " ")

// senderConstraint fills the request's scheme, DPoP proofs, URI and client
// certificate thumbprint. The URI is only built for DPoP requests.
func (h *Handler) senderConstraint(r *http.Request, req *keymanagers.Request) {
	req.Scheme = authScheme(r)
	if req.Scheme == keymanagers.SchemeDPoP {
		req.DPoPProofs = r.Header.Values("DPoP")
		req.URI = h.requestURI(r)
	}
	// Only a certificate Caddy verified: with client_auth modes that do
	// not verify (request, require), a client could present any
	// certificate, so those count as none.
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.VerifiedChains) > 0 {
		req.ClientCertSHA256 = sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		req.HasClientCert = true
	}
}

// authScheme is the authorization scheme of the one Authorization header.
func authScheme(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) >= 5 && strings.EqualFold(v[:5], "DPoP ") {
		return keymanagers.SchemeDPoP
	}
	return keymanagers.SchemeBearer
}

// requestURI is the request URI as the client sent it, for the proof's
// htu: the external origin when configured (behind another proxy), else
// the scheme of this connection and the Host header; and the path of the
// original request (before any rewrite in the route), without the query.
func (h *Handler) requestURI(r *http.Request) string {
	path := r.URL.EscapedPath()
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		path = or.URL.EscapedPath()
	}
	if h.ExternalOrigin != "" {
		return h.ExternalOrigin + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// validateSenderConstraint checks the handler's DPoP and resource
// options (the domain checks the modes in CompileRoute).
func (h *Handler) validateSenderConstraint() error {
	if h.ExternalOrigin != "" {
		u, err := url.Parse(h.ExternalOrigin)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("keymanager: external_origin: %q is not an origin (scheme://host[:port])", h.ExternalOrigin)
		}
		h.ExternalOrigin = strings.TrimSuffix(h.ExternalOrigin, "/")
	}
	if h.Resource != "" {
		if _, err := metadataURL(h.Resource); err != nil {
			return fmt.Errorf("keymanager: resource: %v", err)
		}
		if h.dynTenant {
			return fmt.Errorf("keymanager: resource needs a fixed tenant (its metadata lists the tenant's Key Managers)")
		}
	}
	return nil
}

// challengeMode is the DPoP mode the route's challenges follow: its own,
// else the one every Key Manager it accepts agrees on (required or off),
// else "" (mixed or allowed: the one Bearer challenge, DPoP only when the
// request or the denial is about DPoP).
func (h *Handler) challengeMode() string {
	if m := h.route.DPoPMode(); m != "" {
		return m
	}
	kms := h.acceptedKeyManagers()
	if len(kms) == 0 {
		return ""
	}
	mode := kms[0].Definition().DPoP
	for _, km := range kms[1:] {
		if km.Definition().DPoP != mode {
			return ""
		}
	}
	if mode == keymanagers.BindingRequired || mode == keymanagers.BindingOff {
		return mode
	}
	return ""
}

// writeChallenges sets the WWW-Authenticate challenges of a 401 or 403:
// the error goes on the scheme the request used (DPoP for proof errors and
// for bound tokens sent as Bearer); the other scheme the route accepts is
// offered without an error. Every challenge carries resource_metadata when
// the route names its resource.
func (h *Handler) writeChallenges(w http.ResponseWriter, r *http.Request, e *keymanagers.Error, resp edgeResponse, realm string, required []string) {
	mode := h.challengeMode()
	dpopReq := authScheme(r) == keymanagers.SchemeDPoP && r.Header.Get("Authorization") != ""
	errCode := resp.bearer
	switch e.Kind {
	case keymanagers.KindInvalidProof:
		errCode, dpopReq = "invalid_dpop_proof", true
	case keymanagers.KindNonceRequired:
		errCode, dpopReq = "use_dpop_nonce", true
		w.Header().Set("DPoP-Nonce", h.app.gateway.DPoPNonce())
	}
	if e.Reason == keymanagers.ReasonBoundAsBearer || e.Reason == keymanagers.ReasonDPoPRequired {
		dpopReq = true // the client must switch to DPoP: say so there
	}
	var resMeta string
	if h.resourceMeta != "" {
		resMeta = `, resource_metadata=` + quote(h.resourceMeta)
	}
	challenge := func(scheme string, withErr bool) string {
		var b strings.Builder
		b.WriteString(scheme)
		b.WriteString(` realm=`)
		b.WriteString(quote(realm))
		if withErr && errCode != "" {
			b.WriteString(`, error="`)
			b.WriteString(errCode)
			b.WriteString(`", error_description=`)
			b.WriteString(quote(e.Description))
		}
		if withErr && len(required) > 0 {
			b.WriteString(`, scope=`)
			b.WriteString(quote(strings.Join(required, " ")))
		}
		if scheme == keymanagers.SchemeDPoP {
			b.WriteString(`, algs="` + dpopAlgs + `"`)
		}
		b.WriteString(resMeta)
		return b.String()
	}
	// A route that does not set dpop itself keeps the one Bearer challenge
	// for Bearer requests (DPoP is then offered by Key Managers, which the
	// route may not know before the token is read), unless the denial is
	// about DPoP.
	if mode == keymanagers.BindingOff || (mode == "" && !dpopReq) {
		w.Header().Set("WWW-Authenticate", challenge(keymanagers.SchemeBearer, true))
		return
	}
	if mode != keymanagers.BindingRequired {
		w.Header().Add("WWW-Authenticate", challenge(keymanagers.SchemeBearer, !dpopReq))
	}
	w.Header().Add("WWW-Authenticate", challenge(keymanagers.SchemeDPoP, dpopReq || mode == keymanagers.BindingRequired))
}

// The binding metric: requests allowed, by the binding they used (four
// fixed label values; the counters are resolved once).
var bindingMetric struct {
	vec *prometheus.CounterVec
	by  map[string]prometheus.Counter
}

func initBindingMetric() {
	bindingMetric.vec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "keymanagers", Name: "bindings_total",
		Help: "Allowed requests by the token binding they used: none, dpop, mtls or dpop+mtls.",
	}, []string{"binding"})
	bindingMetric.by = map[string]prometheus.Counter{}
	for _, b := range []string{keymanagers.BoundNone, keymanagers.BoundDPoP, keymanagers.BoundMTLS, keymanagers.BoundDPoPMTLS} {
		bindingMetric.by[b] = bindingMetric.vec.WithLabelValues(b)
	}
}

// observeBinding counts an allowed request's binding.
func (h *Handler) observeBinding(binding string) {
	if h.app.DisableMetrics || bindingMetric.vec == nil {
		return
	}
	if c := bindingMetric.by[binding]; c != nil {
		c.Inc()
	}
}
