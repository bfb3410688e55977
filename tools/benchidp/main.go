// Command benchidp is the load benchmark's identity provider: it serves a
// JWKS and an RFC 7662 introspection endpoint on 127.0.0.1 and writes
// pre-minted tokens for wrk. It is test tooling, not part of the plugin.
//
//	benchidp -addr 127.0.0.1:9200 -out bench/out -fresh 40000
//
// writes out/jwt.txt (one cached JWT), out/opaque.txt (one opaque token
// the introspection endpoint knows) and out/fresh.txt (N distinct JWTs),
// then serves until killed.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9200", "listen address (loopback)")
	out := flag.String("out", "bench/out", "directory for the token files")
	fresh := flag.Int("fresh", 40000, "number of distinct fresh JWTs to mint")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.0.0.1:") {
		log.Fatal("benchidp listens on 127.0.0.1 only")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	issuer := "http://" + *addr
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	mint := func(sub string) string {
		return sign(key, map[string]any{"iss": issuer, "sub": sub, "aud": "https://api.bench.test", "azp": "bench-client",
			"scope": "orders:read orders:write", "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix(),
			"jti": sub, "padding": strings.Repeat("x", 420)})
	}
	write := func(name string, lines []string) {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	write("jwt.txt", []string{mint("cached-user")})
	opaque := "bench-opaque-" + randHex(16)
	write("opaque.txt", []string{opaque})
	tokens := make([]string, *fresh)
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(tokens); i += workers {
				tokens[i] = mint(fmt.Sprintf("user-%d", i))
			}
		}(w)
	}
	wg.Wait()
	write("fresh.txt", tokens)

	n := base64.RawURLEncoding.EncodeToString(key.N.Bytes())
	e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "RSA", "kid": "bench-1", "alg": "RS256", "use": "sig", "n": n, "e": e}}})
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	mux.HandleFunc("/introspect", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("token") != opaque {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "client_id": "bench-client", "sub": "opaque-user",
			"scope": "orders:read", "exp": time.Now().Add(2 * time.Hour).Unix(), "iss": issuer, "token_type": "Bearer",
			"aud": "https://api.bench.test"})
	})
	log.Printf("benchidp: issuer %s, %d fresh tokens in %s", issuer, len(tokens), *out)
	if err := os.WriteFile(filepath.Join(*out, "ready"), []byte(issuer), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Fatal((&http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
}

func sign(key *rsa.PrivateKey, claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "bench-1", "typ": "at+jwt"})
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		log.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
