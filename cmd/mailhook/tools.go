package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailhook/mailhook/deliver/relay"
	"github.com/mailhook/mailhook/deliver/webhook"
)

func init() {
	register(command{name: "tls selfsigned", summary: "write a self-signed certificate and key for development", run: tlsSelfSigned})
	register(command{name: "user add", summary: "hash a password from stdin and print the user's YAML entry", run: userAdd})
	register(command{name: "webhook secret", summary: "print a new whsec_ webhook signing secret", run: webhookSecret})
	register(command{name: "webhook signing-key", summary: "print a new ed25519 whsk_ signing key and its whpk_ public key", run: webhookSigningKey})
}

func tlsSelfSigned(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, _ := newFlags("tls selfsigned", stderr)
	host := fs.String("host", "localhost", "host names and IPs, comma-separated")
	certOut := fs.String("cert", "cert.pem", "certificate file to write")
	keyOut := fs.String("key", "key.pem", "key file to write")
	days := fs.Int("days", 365, "validity in days")
	force := fs.Bool("force", false, "overwrite existing files")
	if _, err := parseFlags(fs, args); err != nil {
		return exitErr(stderr, err)
	}
	if err := refuseOverwrite(*force, *certOut, *keyOut); err != nil {
		return exitErr(stderr, err)
	}
	if err := writeSelfSigned(strings.Split(*host, ","), *certOut, *keyOut, time.Duration(*days)*24*time.Hour); err != nil {
		return exitErr(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\nset smtp.tls.cert_file and smtp.tls.key_file to use them\n", *certOut, *keyOut)
	return 0
}

// writeSelfSigned writes an ECDSA P-256 certificate for hosts and its key.
func writeSelfSigned(hosts []string, certFile, keyFile string, validFor time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return err
	}
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"mailhook development"}, CommonName: strings.TrimSpace(hosts[0])},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeKeyFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return writeKeyFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// refuseOverwrite says which of files exist unless force: the key tools
// never destroy a key silently (a second `dkim keygen` for another domain
// would replace the first domain's key, whose DNS record still names it).
func refuseOverwrite(force bool, files ...string) error {
	if force {
		return nil
	}
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			exist = append(exist, f)
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("%s already exists: not overwritten (choose another file, or give --force to replace it)", strings.Join(exist, " and "))
	}
	return nil
}

// writeKeyFile writes data to a new file at path, through a temporary file
// renamed into place, so a failed write leaves no half key.
func writeKeyFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func userAdd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, _ := newFlags("user add", stderr)
	var addrs multiFlag
	fs.Var(&addrs, "address", "an address of the user (repeat for several)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailhook user add NAME --address ADDR [--address ADDR...] < password\n\n"+
			"Reads the password (at least 8 characters) from the first line of stdin and prints the\n"+
			"mailbox.users entry with its bcrypt hash, for example:\n"+
			"  printf '%%s\\n' 'a long password' | mailhook user add carol --address carol@example.test\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitErr(stderr, err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mailhook user add NAME --address ADDR [--address ADDR...] < password")
		return 2
	}
	if len(addrs) == 0 {
		return exitErr(stderr, errors.New("user add: give at least one --address"))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return exitErr(stderr, err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		return exitErr(stderr, errors.New("user add: the password (read from stdin) must be at least 8 characters"))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), 12)
	if err != nil {
		return exitErr(stderr, err)
	}
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	fmt.Fprintf(stdout, "    - {name: %s, password_hash: %q, addresses: [%s]}\n", pos[0], hash, strings.Join(quoted, ", "))
	return 0
}

func webhookSecret(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, webhook.NewSecret())
	return 0
}

func webhookSigningKey(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	secret, public := webhook.NewSigningKey()
	fmt.Fprintf(stdout, "signing key (webhooks.NAME.signing_keys): %s\npublic key (give it to the receiver):    %s\n", secret, public)
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func init() {
	register(command{name: "dkim keygen", summary: "make a DKIM key for relay.dkim and print the DNS TXT record to publish", run: dkimKeygen})
}

func dkimKeygen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs, _ := newFlags("dkim keygen", stderr)
	algo := fs.String("algo", "rsa", "rsa or ed25519 (publish both for the widest support)")
	bits := fs.Int("bits", 2048, "RSA key size")
	out := fs.String("out", "", "private key file to write (mode 0600); default DOMAIN.SELECTOR.dkim.pem")
	domain := fs.String("domain", "", "the signing domain (d=), required")
	selector := fs.String("selector", "mailhook", "the selector (s=)")
	force := fs.Bool("force", false, "overwrite an existing key file")
	if _, err := parseFlags(fs, args); err != nil {
		return exitErr(stderr, err)
	}
	if *domain == "" {
		fmt.Fprintln(stderr, "usage: mailhook dkim keygen --domain D [--selector S] [--algo rsa|ed25519] [--out FILE] [--force]")
		return 2
	}
	if *out == "" {
		// One file per domain and selector by default, so keys for
		// several domains never share a name.
		*out = *domain + "." + *selector + ".dkim.pem"
	}
	if err := refuseOverwrite(*force, *out); err != nil {
		return exitErr(stderr, err)
	}
	key, txt, err := relay.GenerateDKIMKey(*algo, *bits)
	if err != nil {
		return exitErr(stderr, err)
	}
	if err := writeKeyFile(*out, key, 0o600); err != nil {
		return exitErr(stderr, err)
	}
	fmt.Fprintf(stdout, "wrote %s\n\nconfig:\n  relay:\n    dkim: {domain: %s, selector: %s, private_key_file: %s}\n\n", *out, *domain, *selector, *out)
	fmt.Fprintf(stdout, "publish this TXT record (split into quoted strings of at most 255 characters if your DNS host needs it):\n%s._domainkey.%s. IN TXT %q\n", *selector, *domain, txt)
	return 0
}
