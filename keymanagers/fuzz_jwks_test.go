package keymanagers

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

func TestProbeTmp(t *testing.T) {
	rk := rsaKey(t, "rsa-a", "k1", "RS256")
	pub := rk.public().(*rsa.PublicKey)
	n := b64e(pub.N.Bytes())
	doc := `{"keys":[{"kty":"RSA","kid":"x","n":"` + n + `","e":"AQ"}]}`
	ks, err := parseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	input := "abc.def"
	h := sha256.Sum256([]byte(input))
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	k := len(pub.N.Bytes())
	em := make([]byte, k)
	em[1] = 1
	tl := len(prefix) + 32
	for i := 2; i < k-tl-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-tl:], prefix)
	copy(em[k-32:], h[:])
	_ = crypto.SHA256
	t.Logf("e=1 forged verify: %v", verifySignature("RS256", ks.all[0].pub, input, em))
	func() {
		defer func() { t.Logf("recover: %v", recover()) }()
		ks, err := parseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"x","x":"AA"}]}`))
		t.Logf("%v", err)
		t.Logf("ed short verify: %v", verifySignature("EdDSA", ks.all[0].pub, input, make([]byte, 64)))
	}()
	ks2, _ := parseJWKS([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AA","y":"AA"}]}`))
	t.Logf("ec zero verify: %v", verifySignature("ES256", ks2.all[0].pub, input, make([]byte, 64)))
}
