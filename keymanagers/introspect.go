package keymanagers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// maxIntrospectionBody bounds an introspection response.
const maxIntrospectionBody = 1 << 20

// introspector holds one Key Manager's introspection client state.
type introspector struct {
	rules   *tokenRules
	breaker breaker
	calls   atomic.Uint64
	errors  atomic.Uint64
	latency latencyHistogram

	// budget limits the calls made for tokens the cache knows nothing
	// about (introspection_rate, introspection_burst); flights caps the
	// calls in progress (max_introspection_flights). Refusals are counted
	// in throttled and busy.
	budget    tokenBucket
	flights   flightLimit
	throttled atomic.Uint64
	busy      atomic.Uint64

	tsOnce sync.Once
	ts     oauth2.TokenSource
	tsErr  error
}

// canIntrospect reports whether this Key Manager may introspect (after
// discovery, when it has a well-known URL).
func (km *KeyManager) canIntrospect() bool {
	if km.def.TokenValidation == ValidationJWT || !km.def.IsEnabled() {
		return false
	}
	if km.def.IntrospectionAuth != AuthNone && km.def.ClientID == "" {
		return false
	}
	return km.introspectURL.Load() != nil || (km.def.WellKnownURL != "" && !km.discovered.Load())
}

// introspectionResult is an RFC 7662 answer, read robustly.
type introspectionResult struct {
	active    bool
	scopes    []string
	clientID  string
	subject   string
	exp       int64
	hasExp    bool
	nbf       int64
	aud       []string
	hasAud    bool
	iss       string
	tokenType string
	notAccess bool // typ names an ID, logout or refresh token
	claims    map[string]json.RawMessage
}

func parseIntrospection(body []byte) (*introspectionResult, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("introspection response is not a JSON object: %v", err)
	}
	r := &introspectionResult{claims: m}
	raw, ok := m["active"]
	if !ok {
		return nil, fmt.Errorf("introspection response has no \"active\" member")
	}
	switch string(raw) { // null would decode as false: refuse anything but a boolean
	case "true":
		r.active = true
	case "false":
	default:
		return nil, fmt.Errorf("introspection response's \"active\" is not a boolean")
	}
	if !r.active {
		return r, nil
	}
	if v, ok := m["scope"]; ok {
		if r.scopes, ok = stringOrList(v, true); !ok {
			return nil, fmt.Errorf("introspection response's \"scope\" is neither a string nor a list of strings")
		}
		r.scopes = cleanScopes(r.scopes)
	}
	r.clientID, _ = claimString(m["client_id"])
	if s, ok := claimString(m["sub"]); ok && s != "" {
		r.subject = s
	} else {
		r.subject, _ = claimString(m["username"])
	}
	if v, ok := m["exp"]; ok && string(v) != "null" {
		if r.exp, r.hasExp = numericDate(v); !r.hasExp {
			return nil, fmt.Errorf("introspection response's \"exp\" is not a NumericDate")
		}
	}
	if v, ok := m["nbf"]; ok && string(v) != "null" {
		var okN bool
		if r.nbf, okN = numericDate(v); !okN {
			return nil, fmt.Errorf("introspection response's \"nbf\" is not a NumericDate")
		}
	}
	if v, ok := m["aud"]; ok && string(v) != "null" {
		var okA bool
		if r.aud, okA = stringOrList(v, false); !okA {
			return nil, fmt.Errorf("introspection response's \"aud\" is neither a string nor a list of strings")
		}
		r.hasAud = true
	}
	r.iss, _ = claimString(m["iss"])
	r.tokenType, _ = claimString(m["token_type"])
	if typ, _ := claimString(m["typ"]); notAccessTokenType(typ) { // Keycloak
		r.notAccess = true
	}
	if tu, _ := claimString(m["token_use"]); IsRefreshTokenType(tu) { // Ory Hydra
		r.tokenType = tu
	}
	return r, nil
}

// breakerFailure marks an introspection failure that says the Key Manager
// is unhealthy: a transport error (connect, timeout, TLS, a broken body)
// or an HTTP 5xx. Only these count towards opening the breaker; anything
// else (a 4xx, an unreadable 200) can be provoked by the token a caller
// sends, for example through a WAF in front of the Key Manager.
type breakerFailure struct{ err error }

func (e *breakerFailure) Error() string { return e.err.Error() }
func (e *breakerFailure) Unwrap() error { return e.err }

// introspect asks the Key Manager about token. It returns the answer, or
// an error of KindUnavailable when the Key Manager could not answer.
//
// At most max_introspection_flights calls are in progress at once; beyond
// that it refuses at once (ErrIntrospectionBusy). When unknown is set (the
// cache has no positive result for the token) the call also spends one
// unit of the unknown-token budget, or is refused without a call
// (ErrIntrospectionBudget).
func (km *KeyManager) introspect(ctx context.Context, token string, unknown bool) (*introspectionResult, error) {
	if err := km.ensureDiscovered(ctx, false); err != nil {
		return nil, err
	}
	up := km.introspectURL.Load()
	if up == nil {
		return nil, detailed(ErrKeyManagerFailed, "no introspection endpoint known")
	}
	in := km.intro
	if !in.flights.acquire() {
		in.busy.Add(1)
		return nil, detailed(ErrIntrospectionBusy, "too many introspection calls in progress")
	}
	defer in.flights.release()
	now := km.now().UnixNano()
	if in.breaker.isOpen(now) { // no budget spent on a call that cannot go out
		return nil, detailed(ErrBreakerOpen, "circuit breaker open")
	}
	if unknown && !in.budget.take(now) {
		in.throttled.Add(1)
		return nil, detailed(ErrIntrospectionBudget, "unknown-token introspection budget spent")
	}
	if !in.breaker.allow(now) {
		return nil, detailed(ErrBreakerOpen, "circuit breaker open")
	}
	in.calls.Add(1)
	start := time.Now()
	res, err := km.doIntrospect(ctx, *up, token)
	in.latency.observe(time.Since(start))
	if err != nil {
		in.errors.Add(1)
		var bf *breakerFailure
		if !errors.As(err, &bf) {
			in.breaker.neutral()
		} else if in.breaker.failure(km.now().UnixNano()) {
			km.logger.Warn("introspection circuit breaker opened", zap.Duration("cooldown", time.Duration(km.def.BreakerCooldown)))
		}
		km.lastError.Store(&statusError{at: km.now(), msg: "introspection: " + err.Error()})
		km.logger.Warn("introspection failed", zap.Error(err))
		return nil, detailed(ErrIntrospection, "introspection failed")
	}
	in.breaker.success()
	return res, nil
}

func (km *KeyManager) doIntrospect(ctx context.Context, endpoint, token string) (*introspectionResult, error) {
	form := url.Values{"token": {token}}
	if h := km.def.TokenTypeHint; h != "" && h != "none" {
		form.Set("token_type_hint", h)
	}
	switch km.def.IntrospectionAuth {
	case AuthClientSecretPost:
		form.Set("client_id", km.def.ClientID)
		form.Set("client_secret", km.def.ClientSecret)
	case AuthNone:
		if km.def.ClientID != "" {
			form.Set("client_id", km.def.ClientID)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(km.def.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	switch km.def.IntrospectionAuth {
	case AuthClientSecretBasic:
		// RFC 6749 2.3.1: form-encode before Basic.
		req.SetBasicAuth(url.QueryEscape(km.def.ClientID), url.QueryEscape(km.def.ClientSecret))
	case AuthBearer:
		ts, err := km.bearerSource()
		if err != nil {
			return nil, err
		}
		tok, err := ts.Token()
		if err != nil {
			var re *oauth2.RetrieveError
			down := !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode >= 500
			err = fmt.Errorf("getting a client-credentials token for introspection: %v", scrubURLError(err))
			if down { // the token endpoint is unreachable or failing
				return nil, &breakerFailure{err}
			}
			return nil, err
		}
		tok.SetAuthHeader(req)
	}
	resp, err := km.postClient.Do(req)
	if err != nil {
		return nil, &breakerFailure{scrubURLError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody+1))
	if err != nil {
		return nil, &breakerFailure{fmt.Errorf("reading the introspection response: %v", err)}
	}
	if len(body) > maxIntrospectionBody {
		return nil, fmt.Errorf("introspection response is larger than %d bytes", maxIntrospectionBody)
	}
	if resp.StatusCode != http.StatusOK {
		// The IdP's error_description may echo the token: never let it into
		// a log line or the status.
		suffix := oauthErrorSuffix(body, token)
		err := fmt.Errorf("introspection endpoint answered HTTP %d%s", resp.StatusCode, suffix)
		if resp.StatusCode >= 500 {
			return nil, &breakerFailure{err}
		}
		return nil, err // a 4xx (or 3xx) is this request's failure only
	}
	return parseIntrospection(body)
}

// oauthErrorSuffix quotes an OAuth error code from a response body, for
// logs, with the token scrubbed out before anything is shortened.
func oauthErrorSuffix(body []byte, token string) string {
	var e struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	if token != "" {
		e.Error = strings.ReplaceAll(e.Error, token, "[token]")
		e.Desc = strings.ReplaceAll(e.Desc, token, "[token]")
	}
	if len(e.Error) > 64 {
		e.Error = e.Error[:64]
	}
	s := fmt.Sprintf(" (%s", e.Error)
	if e.Desc != "" {
		if len(e.Desc) > 200 {
			e.Desc = e.Desc[:200]
		}
		s += ": " + e.Desc
	}
	return s + ")"
}

// scrubURLError drops the request URL's query from transport errors (the
// token is in the body, never the URL, but be sure nothing else leaks).
func scrubURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery = ""
			u.User = nil
			return fmt.Errorf("%s %s: %v", ue.Op, u.String(), ue.Err)
		}
	}
	return err
}

// bearerSource is the client-credentials token source for
// introspection_auth bearer.
func (km *KeyManager) bearerSource() (oauth2.TokenSource, error) {
	in := km.intro
	in.tsOnce.Do(func() {
		tokenURL := km.def.TokenURL
		if tokenURL == "" {
			if p := km.tokenURL.Load(); p != nil {
				tokenURL = *p
			}
		}
		if tokenURL == "" {
			in.tsErr = fmt.Errorf("introspection_auth bearer: no token_url known")
			return
		}
		cc := &clientcredentials.Config{ClientID: km.def.ClientID, ClientSecret: km.def.ClientSecret, TokenURL: tokenURL}
		ctx := context.WithValue(km.ctx, oauth2.HTTPClient, km.postClient)
		in.ts = oauth2.ReuseTokenSource(nil, cc.TokenSource(ctx))
	})
	return in.ts, in.tsErr
}

// principalFromIntrospection checks an active answer and turns it into a
// principal (without cache bookkeeping).
//
// tokenIss is the unverified iss of a JWT elected by a jwt token handling
// rule (its issuer is not the Key Manager's); "" otherwise.
func (km *KeyManager) principalFromIntrospection(r *introspectionResult, now time.Time, tokenIss string) error {
	if !r.active {
		return ErrInactive
	}
	if IsRefreshTokenType(r.tokenType) {
		return ErrRefreshToken
	}
	if r.notAccess {
		return ErrNotAccessToken
	}
	skew := int64(time.Duration(km.def.ClockSkew) / time.Second)
	n := now.Unix()
	if r.hasExp && n > r.exp+skew {
		return ErrExpired
	}
	if r.nbf != 0 && r.nbf > n+skew {
		return ErrNotYetValid
	}
	switch {
	case tokenIss != "":
		if r.iss != "" && r.iss != tokenIss {
			return ErrWrongTokenIssuer
		}
	case r.iss != "" && km.Issuer() != "" && !slices.Contains(km.Issuers(), r.iss):
		return ErrWrongTokenIssuer
	}
	if !km.audienceMatches(r.aud) {
		return ErrWrongAudience
	}
	return nil
}
