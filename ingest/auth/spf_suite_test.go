package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/mailhook/mailhook/dns/dnstest"
	"github.com/mailhook/mailhook/internal/testenv"
)

// spfSuitePath returns the RFC 7208 test suite (open-spf.org, via pyspf)
// as the blitiri.com.ar/go/spf module ships it in its testdata/ (with its
// licence), so the test runs from a plain clone: the module cache holds it
// once `go mod download` has fetched the module.
func spfSuitePath(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "blitiri.com.ar/go/spf").Output()
	if err != nil {
		testenv.Missing(t, "go mod download blitiri.com.ar/go/spf: %v", err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download -json: %v (%s)", err, out)
	}
	return filepath.Join(m.Dir, "testdata", "rfc7208-tests.yml")
}

// Reasons for spfSuiteSkip. Every skipped case hinges on record-syntax
// strictness that blitiri.com.ar/go/spf documents as a deliberate choice
// (its own copy of this suite marks exactly these cases "skip", with these
// reasons); none is about DNS, the part we own, and fixing them would mean
// writing our own SPF record parser, which the brief rules out. For DMARC
// the difference is harmless: in all but the noted cases the library gives
// neutral or fail where the suite wants permerror, and none of those is a
// pass.
const (
	skipDomainSyntax = "library does not validate domain-spec syntax (RFC 7208 §7.1 toplabel, " +
		"charset); it looks the name up and finds nothing, so neutral/fail instead of permerror"
	skipSlashDomain = "library rejects ':' and '/' inside a domain-spec that the suite allows; " +
		"gives permerror instead of pass (conservative)"
	skipLateErrors = "library stops at the first matching term and does not syntax-check the " +
		"rest of the record (RFC 7208 §4.6 wants a permerror); the match it returns is the " +
		"domain's own explicit authorization"
	skipExp = "library ignores exp= entirely (explanations are only for rejection text, " +
		"which mailhook does not send), so exp syntax errors are not permerrors"
	skipCharset = "library does not enforce 7-bit ASCII / control characters in the record " +
		"(RFC 7208 §3.1, §4.6.1); the bad term does not match, so fail instead of permerror"
)

// spfSuiteSkip lists the suite cases we do not pass, each with its reason.
var spfSuiteSkip = map[string]string{
	"a-bad-domain":                 skipDomainSyntax,
	"a-bad-toplabel":               skipDomainSyntax,
	"a-null":                       skipDomainSyntax,
	"a-numeric":                    skipDomainSyntax,
	"a-numeric-toplabel":           skipDomainSyntax,
	"a-only-toplabel":              skipDomainSyntax,
	"a-only-toplabel-trailing-dot": skipDomainSyntax,
	"invalid-domain":               skipDomainSyntax,
	"mx-bad-domain":                skipDomainSyntax,
	"mx-bad-toplab":                skipDomainSyntax,
	"mx-null":                      skipDomainSyntax,
	"mx-numeric-top-label":         skipDomainSyntax,
	"redirect-syntax-error":        skipDomainSyntax,
	"redirect-empty-domain":        skipDomainSyntax,
	"a-colon-domain":               skipSlashDomain,
	"a-colon-domain-ip4mapped":     skipSlashDomain,
	"mx-colon-domain":              skipSlashDomain,
	"mx-colon-domain-ip4mapped":    skipSlashDomain,
	"detect-errors-anywhere":       skipLateErrors,
	"redirect-is-modifier":         skipLateErrors,
	"bare-ip6":                     skipLateErrors,
	"unknown-modifier-syntax":      skipLateErrors,
	"cidr4-032": "library accepts ip4:…/032 (a leading zero) as /32; the suite wants " +
		"permerror (RFC 7208 §5.6 ip4-cidr-length has no leading zeros); gives pass for an IP " +
		"the domain listed itself",
	"exp-empty-domain":    skipExp,
	"exp-only-macro-char": skipExp,
	"exp-syntax-error":    skipExp,
	"exp-twice":           skipExp,
	"control-char-policy": skipCharset,
	"non-ascii-policy":    skipCharset,
	"p-macro-multiple": "library does not implement the %{p} macro (RFC 7208 §7.3 says it " +
		"SHOULD NOT be used), so the exists: term does not match: neutral instead of pass/softfail",
}

// spfCase is one test of the suite.
type spfCase struct {
	Description string
	Spec        yaml.Node
	Helo        string
	Host        string
	MailFrom    string `yaml:"mailfrom"`
	Result      yaml.Node
}

type spfScenario struct {
	Description string
	Tests       map[string]spfCase
	ZoneData    map[string][]yaml.Node `yaml:"zonedata"`
}

// TestSPFSuite runs every case of the RFC 7208 suite through CheckSPF, our
// Resolver, and a real DNS server on loopback serving the case's zone.
func TestSPFSuite(t *testing.T) {
	f, err := os.Open(spfSuitePath(t))
	if err != nil {
		t.Fatalf("open suite: %v", err)
	}
	defer f.Close()
	var scenarios []spfScenario
	dec := yaml.NewDecoder(f)
	for {
		var s spfScenario
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode suite: %v", err)
		}
		scenarios = append(scenarios, s)
	}
	if len(scenarios) == 0 {
		t.Fatal("empty suite")
	}

	var total, passed, skipped atomic.Int64
	seenSkip := map[string]bool{}
	for _, sc := range scenarios {
		names := make([]string, 0, len(sc.Tests))
		for n := range sc.Tests {
			names = append(names, n)
			if _, ok := spfSuiteSkip[n]; ok {
				seenSkip[n] = true
			}
		}
		sort.Strings(names)
		t.Run(sc.Description, func(t *testing.T) {
			t.Parallel()
			srv := dnstest.Start(t, "")
			loadSPFZone(t, srv, sc.ZoneData)
			v, err := NewVerifier(Options{
				Resolver:      srv.Addr(),
				AuthServID:    "mx.test",
				LookupTimeout: 400 * time.Millisecond,
				CacheSize:     -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				tc := sc.Tests[name]
				total.Add(1)
				want := nodeStrings(&tc.Result)
				got := v.CheckSPF(context.Background(), net.ParseIP(tc.Host), tc.Helo, tc.MailFrom)
				if why, ok := spfSuiteSkip[name]; ok {
					// Still run: a skipped case that starts passing (a
					// library upgrade) must leave the list.
					if slices.Contains(want, string(got.Result)) {
						t.Errorf("%s: on the skip-list but passes now; remove it", name)
						continue
					}
					skipped.Add(1)
					t.Logf("%s: skipped (got %s, want %v): %s", name, got.Result, want, why)
					continue
				}
				if !slices.Contains(want, string(got.Result)) {
					t.Errorf("%s: CheckSPF(%s, helo %q, from %q) = %s, want %v (spec %s)",
						name, tc.Host, tc.Helo, tc.MailFrom, got.Result, want, strings.Join(nodeStrings(&tc.Spec), ","))
					continue
				}
				passed.Add(1)
			}
		})
	}
	t.Cleanup(func() {
		t.Logf("RFC 7208 suite: %d cases, %d passed, %d skipped, %d failed",
			total.Load(), passed.Load(), skipped.Load(), total.Load()-passed.Load()-skipped.Load())
		for n := range spfSuiteSkip {
			if !seenSkip[n] {
				t.Errorf("skip-list entry %q names no case in the suite", n)
			}
		}
	})
}

// loadSPFZone serves one scenario's zonedata the way the suite's drivers
// do: records of type SPF are served as TXT unless the name has TXT (or
// "TXT: NONE"); TIMEOUT makes every type the name has no records for time
// out; CNAMELOOP points the name at itself.
func loadSPFZone(t *testing.T, srv *dnstest.Server, zone map[string][]yaml.Node) {
	t.Helper()
	for name, recs := range zone {
		fqdn := dns.Fqdn(name)
		var spfTXT [][]string
		hasTXT, noTXT, timeout := false, false, false
		present := map[uint16]bool{}
		for _, n := range recs {
			if n.Kind == yaml.ScalarNode {
				switch n.Value {
				case "TIMEOUT":
					timeout = true
				case "SERVFAIL":
					srv.ServFail(fqdn)
				default:
					t.Fatalf("%s: unknown zone item %q", name, n.Value)
				}
				continue
			}
			if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
				t.Fatalf("%s: unexpected zone item %v", name, n.Kind)
			}
			typ, val := n.Content[0].Value, n.Content[1]
			// The module's copy of the suite writes "TIMEOUT: true" where
			// the original has a bare TIMEOUT, and "CNAMELOOP: true" where
			// the original has the name's CNAME to itself.
			switch typ {
			case "TIMEOUT":
				timeout = true
				continue
			case "CNAMELOOP":
				typ, val = "CNAME", &yaml.Node{Kind: yaml.ScalarNode, Value: fqdn}
			}
			hdr := func(rt uint16) dns.RR_Header {
				present[rt] = true
				return dns.RR_Header{Name: fqdn, Rrtype: rt, Class: dns.ClassINET, Ttl: 60}
			}
			switch typ {
			case "A":
				for _, s := range nodeStrings(val) {
					srv.AddRR(&dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(s).To4()})
				}
			case "AAAA":
				for _, s := range nodeStrings(val) {
					srv.AddRR(&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP(s)})
				}
			case "MX":
				v := nodeStrings(val)
				var pref uint16
				for _, c := range v[0] {
					pref = pref*10 + uint16(c-'0')
				}
				srv.AddRR(&dns.MX{Hdr: hdr(dns.TypeMX), Preference: pref, Mx: dns.Fqdn(v[1])})
			case "PTR":
				for _, s := range nodeStrings(val) {
					srv.AddRR(&dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: dns.Fqdn(s)})
				}
			case "CNAME":
				srv.AddRR(&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(val.Value)})
			case "TXT":
				if val.Kind == yaml.ScalarNode && val.Value == "NONE" {
					noTXT = true
					continue
				}
				hasTXT = true
				present[dns.TypeTXT] = true
				srv.AddTXTStrings(fqdn, 60, rawStrings(nodeStrings(val))...)
			case "SPF":
				if val.Kind == yaml.ScalarNode && val.Value == "NONE" {
					continue
				}
				spfTXT = append(spfTXT, rawStrings(nodeStrings(val)))
			default:
				t.Fatalf("%s: unknown record type %q", name, typ)
			}
		}
		if !hasTXT && !noTXT {
			for _, strs := range spfTXT {
				present[dns.TypeTXT] = true
				srv.AddTXTStrings(fqdn, 60, strs...)
			}
		}
		if timeout {
			var types []uint16
			for _, rt := range []uint16{dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypePTR} {
				if !present[rt] && !present[dns.TypeCNAME] {
					types = append(types, rt)
				}
			}
			srv.Timeout(fqdn, types...)
		}
	}
}

// nodeStrings reads a scalar or a sequence of scalars.
func nodeStrings(n *yaml.Node) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, c.Value)
		}
		return out
	}
	return nil
}

// rawStrings undoes YAML's decoding of "\xNN" escapes into code points: the
// suite means raw bytes (its NOTICE says so), so strings made only of code
// points below 256 are turned back into those bytes.
func rawStrings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		b := make([]byte, 0, len(s))
		latin1 := true
		for _, r := range s {
			if r > 0xff {
				latin1 = false
				break
			}
			b = append(b, byte(r))
		}
		if latin1 {
			out[i] = string(b)
		} else {
			out[i] = s
		}
	}
	return out
}
