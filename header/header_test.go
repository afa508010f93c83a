package header

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func read(t testing.TB, s string) *Header {
	t.Helper()
	h, err := Read(bufio.NewReader(strings.NewReader(s)), 0)
	if err != nil {
		t.Fatalf("Read(%q): %v", s, err)
	}
	return h
}

func names(h *Header) []string {
	out := []string{}
	for _, f := range h.Fields {
		out = append(out, f.Name+"="+f.Value)
	}
	return out
}

func TestReadRule(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		fields   []string
		end      End
		body     string
	}{
		{"plain", "A: 1\r\nB: 2\r\n\r\nbody\r\n", []string{"A=1", "B=2"}, EndBlank, "body\r\n"},
		{"folded", "A: 1\r\n\t2\r\n  3\r\n\r\n", []string{"A=1\t2  3"}, EndBlank, ""},
		{"obs space before colon", "Subject  : x\r\n\r\n", []string{"Subject=x"}, EndBlank, ""},
		{"line without colon ends", "A: 1\r\nnot a field\r\nB: 2\r\n\r\n", []string{"A=1"}, EndLine, "not a field\r\nB: 2\r\n\r\n"},
		{"name with space ends", "A: 1\r\nBad Name: 2\r\nB: 3\r\n\r\n", []string{"A=1"}, EndLine, "Bad Name: 2\r\nB: 3\r\n\r\n"},
		{"8-bit name ends", "A: 1\r\nN\xe9: 2\r\n\r\n", []string{"A=1"}, EndLine, "N\xe9: 2\r\n\r\n"},
		{"control in name ends", "A: 1\r\nN\x01: 2\r\n\r\n", []string{"A=1"}, EndLine, "N\x01: 2\r\n\r\n"},
		{"first line folded ends", " A: 1\r\nB: 2\r\n\r\n", []string{}, EndLine, " A: 1\r\nB: 2\r\n\r\n"},
		{"whitespace-only line ends", "A: 1\r\n \r\nB: 2\r\n\r\n", []string{"A=1"}, EndLine, " \r\nB: 2\r\n\r\n"},
		{"mbox From_ line ends", "From x@y Mon\r\nFrom: a@b\r\n\r\n", []string{}, EndLine, "From x@y Mon\r\nFrom: a@b\r\n\r\n"},
		{"eof in header", "A: 1\r\nB: 2", []string{"A=1", "B=2"}, EndEOF, ""},
		{"LF line ends", "A: 1\nB: 2\n\nbody", []string{"A=1", "B=2"}, EndBlank, "body"},
		{"empty name", ": x\r\n\r\n", []string{}, EndLine, ": x\r\n\r\n"},
		{"control in value kept", "A: mx\x00\x01\r\n\r\n", []string{"A=mx\x00\x01"}, EndBlank, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := read(t, tc.in)
			if got := names(h); !reflect.DeepEqual(got, tc.fields) {
				t.Errorf("fields = %q, want %q", got, tc.fields)
			}
			if h.End != tc.end {
				t.Errorf("End = %d, want %d", h.End, tc.end)
			}
			if got := tc.in[h.BodyOffset:]; got != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
			var buf bytes.Buffer
			if err := h.Write(&buf, nil); err != nil {
				t.Fatal(err)
			}
			// The rewritten copy reads back to the same fields, ended by
			// an empty line.
			again := read(t, buf.String()+tc.in[h.BodyOffset:])
			if !reflect.DeepEqual(names(again), names(h)) || again.End != EndBlank {
				t.Errorf("copy reads as %q end %d, want %q end blank", names(again), again.End, names(h))
			}
		})
	}
}

func TestReadTooBig(t *testing.T) {
	in := "A: " + strings.Repeat("x", 2000) + "\r\n\r\n"
	_, err := Read(bufio.NewReaderSize(strings.NewReader(in), 16), 1000)
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("Read = %v, want ErrTooBig", err)
	}
	in = strings.Repeat("A: 1\r\n", MaxFields+1) + "\r\n"
	if _, err := Read(bufio.NewReader(strings.NewReader(in)), 0); !errors.Is(err, ErrTooBig) {
		t.Fatalf("Read(many fields) = %v, want ErrTooBig", err)
	}
	in = "A: " + strings.Repeat("x", 900) + "\r\n\r\n"
	if _, err := Read(bufio.NewReaderSize(strings.NewReader(in), 16), 1000); err != nil {
		t.Fatalf("Read(within limit) = %v", err)
	}
}

func TestReadAuthor(t *testing.T) {
	for _, tc := range []struct {
		name, hdr string
		exact     bool
		domains   []string
		shown     string
	}{
		{"plain", "From: CEO <ceo@bank.test>\r\n", true, []string{"bank.test"}, "ceo@bank.test"},
		{"upper case domain, trailing dot", "From: ceo@BANK.test.\r\n", false, []string{"bank.test"}, "ceo@BANK.test."},
		{"no from", "Subject: x\r\n", false, nil, ""},
		{"trailing semicolon", "From: ceo@bank.test;\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"empty then real", "From:\r\nFrom: CEO <ceo@bank.test>\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"null address after", "From: <ceo@bank.test>, <>\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"invalid utf-8 name", "From: \"C\xff\xfeO\" <ceo@bank.test>\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"invalid utf-8 atom name", "From: C\xffO <ceo@bank.test>\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"encoded word address", "From: =?utf-8?q?ceo=40bank=2Etest?=\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"two addresses", "From: a@evil.test, ceo@bank.test\r\n", false, []string{"evil.test", "bank.test"}, "a@evil.test"},
		{"address as name", "From: ceo@bank.test <a@evil.test>\r\n", false, []string{"bank.test", "evil.test"}, "ceo@bank.test"},
		{"group (RFC 6854)", "From: G: ceo@bank.test;\r\n", true, []string{"bank.test"}, "ceo@bank.test"},
		{"two fields same address", "From: ceo@bank.test\r\nFrom: ceo@bank.test\r\n", false, []string{"bank.test"}, "ceo@bank.test"},
		{"no domain", "From: undisclosed\r\n", false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := read(t, tc.hdr+"\r\n")
			a := ReadAuthor(h)
			if a.Exact != tc.exact || !reflect.DeepEqual(a.Domains, tc.domains) {
				t.Errorf("ReadAuthor = exact %v domains %q, want %v %q (%+v)", a.Exact, a.Domains, tc.exact, tc.domains, a)
			}
			m, _ := a.Shown()
			if tc.shown != "" && m.Address != tc.shown {
				t.Errorf("Shown = %q, want %q", m.Address, tc.shown)
			}
			if m.Address != "" && m.Domain != "" && !containsStr(a.Domains, m.Domain) {
				t.Errorf("Shown %q has a domain not among %q", m.Address, a.Domains)
			}
		})
	}
}

func TestReadAuthorTricks(t *testing.T) {
	for _, tc := range []struct {
		from    string
		exact   bool
		domains []string
	}{
		{"ceo@bank.test (x) <a@evil.test>", false, []string{"bank.test", "evil.test"}},
		{"ceo@bank.test <a@evil.test>", false, []string{"bank.test", "evil.test"}},
		{"<ceo@bank.test> a@evil.test", false, []string{"bank.test", "evil.test"}},
		{"ceo@bank.test\x01", false, []string{"bank.test"}},
		{"<<ceo@bank.test>", false, []string{"bank.test"}},
		{"\"ceo@bank.test\"@evil.test", false, []string{"evil.test", "bank.test"}},
		{"ceo@bank.test@evil.test", false, []string{"bank.test", "evil.test"}},
		{"a@evil.test (ceo@bank.test)", true, []string{"evil.test"}},
	} {
		h := read(t, "From: "+tc.from+"\r\n\r\n")
		a := ReadAuthor(h)
		if a.Exact != tc.exact || !reflect.DeepEqual(a.Domains, tc.domains) {
			t.Errorf("ReadAuthor(%q) = exact %v domains %q, want %v %q", tc.from, a.Exact, a.Domains, tc.exact, tc.domains)
		}
	}
}

// FuzzRead: Read never fails on an in-memory input, and the header it
// writes back reads as the same fields, ended by an empty line.
func FuzzRead(f *testing.F) {
	for _, s := range []string{"A: 1\r\n\r\nb", "A: 1\r\n x\r\nno\r\n", " a\r\n", "From: a@b\n\nc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Read(bufio.NewReader(strings.NewReader(in)), 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if h.BodyOffset > int64(len(in)) {
			t.Fatalf("BodyOffset %d past the input (%d)", h.BodyOffset, len(in))
		}
		var buf bytes.Buffer
		if err := h.Write(&buf, nil); err != nil {
			t.Fatal(err)
		}
		again := read(t, buf.String()+in[h.BodyOffset:])
		if !reflect.DeepEqual(names(again), names(h)) || again.End != EndBlank {
			t.Fatalf("copy reads as %q end %d, want %q", names(again), again.End, names(h))
		}
		_ = ReadAuthor(h)
	})
}

func BenchmarkRead(b *testing.B) {
	msg := "Received: from a.example (a.example [192.0.2.1])\r\n\tby mx.example.test (mailhook) with ESMTPS id x; Sun, 29 Nov 2026 04:00:00 +0000\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=sel;\r\n\th=from:to:subject:date; bh=abc; b=def\r\n" +
		"From: Alice <alice@example.test>\r\nTo: support@example.test\r\nSubject: Hello\r\n" +
		"Date: Sun, 29 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nbody\r\n"
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		h, _ := Read(bufio.NewReader(strings.NewReader(msg)), 0)
		_ = ReadAuthor(h)
	}
}
