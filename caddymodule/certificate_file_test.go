package caddymodule_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCertificateFile_IsReadAtProvisionNotAtAdapt proves the adapted JSON
// keeps certificate_file as a path (a Caddyfile adapts on a machine
// without the file, and a reload reads a renewed one), while provisioning
// a config whose file is missing fails naming the field.
func TestCertificateFile_IsReadAtProvisionNotAtAdapt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "renewed-later.pem")
	src := `{
	keymanagers {
		tenant acme {
			key_manager pinned {
				issuer https://idp.acme.test
				certificate_file ` + missing + `
			}
		}
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting with a file that does not exist yet: %v", err)
	}
	if !strings.Contains(string(out), `"certificate_file":"`+missing+`"`) || strings.Contains(string(out), "certificate_pem") {
		t.Fatalf("adapted JSON does not keep the path: %s", out)
	}
	if err := validateJSON(out); err == nil || !strings.Contains(err.Error(), "certificate_file") {
		t.Fatalf("provisioning with the file missing: %v, want an error naming certificate_file", err)
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err := os.WriteFile(missing, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := validateJSON(out); err != nil {
		t.Fatalf("provisioning once the file exists: %v", err)
	}
}

// validateJSON provisions and validates an adapted config without
// running it (caddy.Validate).
func validateJSON(b []byte) error {
	var c caddy.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	return caddy.Validate(&c)
}
