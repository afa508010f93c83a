package relay

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// dkimHeaderKeys are the fields we sign: those RFC 6376 §5.4.1 recommends,
// and our loop marker. From is listed twice to over-sign it (RFC 6376
// §8.15): a second From added later breaks the signature.
var dkimHeaderKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe",
	"List-Post", "List-Owner", "List-Archive",
	LoopHeader,
}

// minRSABits is the smallest RSA key we sign with: RFC 8301 §3.2 makes
// verifiers reject keys under 1024 bits; 2048 is what it asks signers for.
const minRSABits = 1024

// DKIMSigner signs forwarded messages with our domain's key (RFC 6376),
// rsa-sha256 or ed25519-sha256 (RFC 8463), relaxed/relaxed
// canonicalization. The original signatures of a message are kept; ours is
// added on top.
type DKIMSigner struct {
	domain   string
	selector string
	key      crypto.Signer
}

// NewDKIMSigner returns a signer for domain and selector with key, an
// *rsa.PrivateKey of at least 1024 bits or an ed25519.PrivateKey.
func NewDKIMSigner(domain, selector string, key crypto.Signer) (*DKIMSigner, error) {
	domain = strings.TrimSuffix(strings.TrimSpace(domain), ".")
	selector = strings.TrimSpace(selector)
	if domain == "" || selector == "" {
		return nil, errors.New("relay: dkim domain and selector are required")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("relay: dkim rsa key has %d bits, want at least %d (RFC 8301 §3.2)", k.N.BitLen(), minRSABits)
		}
	case ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("relay: dkim key type %T is not rsa or ed25519", key)
	}
	return &DKIMSigner{domain: domain, selector: selector, key: key}, nil
}

// LoadDKIMSigner reads a PEM private key from keyFile (RSA as PKCS#1
// "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"; ed25519 as PKCS#8) and
// returns a signer for domain and selector.
func LoadDKIMSigner(domain, selector, keyFile string) (*DKIMSigner, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("relay: dkim key: %w", err)
	}
	key, err := parseDKIMKey(b)
	if err != nil {
		return nil, fmt.Errorf("relay: dkim key %s: %w", keyFile, err)
	}
	return NewDKIMSigner(domain, selector, key)
}

func parseDKIMKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no pem block")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unsupported pem block %q", block.Type)
}

// Domain is the signing domain (d=).
func (s *DKIMSigner) Domain() string { return s.domain }

// Selector is the selector (s=).
func (s *DKIMSigner) Selector() string { return s.selector }

// Sign reads the whole message from r and returns the DKIM-Signature
// header field to prepend, with its trailing CRLF. It keeps nothing of the
// message but its header section.
func (s *DKIMSigner) Sign(r io.Reader) (string, error) {
	sg, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             dkimHeaderKeys,
	})
	if err != nil {
		return "", fmt.Errorf("relay: dkim: %w", err)
	}
	if _, err := io.Copy(sg, r); err != nil {
		_ = sg.Close()
		return "", fmt.Errorf("relay: dkim sign: %w", err)
	}
	if err := sg.Close(); err != nil {
		return "", fmt.Errorf("relay: dkim sign: %w", err)
	}
	return sg.Signature(), nil
}

// DKIMRecord returns the DNS TXT record value publishing pub at
// <selector>._domainkey.<domain> (RFC 6376 §3.6.1): the SubjectPublicKeyInfo
// for RSA, the raw 32-byte key for ed25519 (RFC 8463 §4.2).
func DKIMRecord(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("relay: dkim record: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("relay: dkim record: key type %T is not rsa or ed25519", pub)
}

// GenerateDKIMKey makes a new signing key, for `mailhook dkim keygen`. algo
// is "rsa" (bits: 0 means 2048; at least 1024, at most 4096) or "ed25519"
// (bits ignored). It returns the key as PKCS#8 PEM, for the file named by
// relay.dkim.private_key_file, and the TXT record value to publish. An RSA
// record is longer than 255 bytes: zone files must split it into several
// quoted strings (RFC 1035 §3.3.14, RFC 6376 §3.6.2.2).
func GenerateDKIMKey(algo string, bits int) (pemKey []byte, dnsTXT string, err error) {
	var key crypto.Signer
	switch strings.ToLower(algo) {
	case "rsa", "":
		if bits == 0 {
			bits = 2048
		}
		if bits < minRSABits || bits > 4096 {
			return nil, "", fmt.Errorf("relay: dkim rsa key size %d is outside [%d, 4096]", bits, minRSABits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, "", fmt.Errorf("relay: dkim keygen: %w", err)
		}
		key = k
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, "", fmt.Errorf("relay: dkim keygen: %w", err)
		}
		key = k
	default:
		return nil, "", fmt.Errorf("relay: dkim algorithm %q is not rsa or ed25519", algo)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("relay: dkim keygen: %w", err)
	}
	txt, err := DKIMRecord(key.Public())
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}
