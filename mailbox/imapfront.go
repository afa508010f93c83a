package mailbox

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
)

// Limits the front applies before imapserver sees a command.
const (
	// frontMaxLine is the longest command line taken: imapserver's own
	// limit is 50 KiB, past which it drops the connection.
	frontMaxLine = 48 << 10
	// frontMaxDepth bounds nested parentheses in a command line.
	frontMaxDepth = 64
	// frontMaxLiteral is imapserver's limit for literals outside APPEND.
	frontMaxLiteral = 4096
	// frontMaxPreAuthLiteral bounds a literal before login (dovecot
	// answers a bigger one with BYE at once).
	frontMaxPreAuthLiteral = 8 << 10
	// frontMaxBad is how many unknown commands a client may send before
	// login before it is disconnected (a guard against cross-protocol
	// requests, which imapserver applies from the first one).
	frontMaxBad = 10
)

// knownCommands are the commands imapserver parses (and "UID" prefixes).
var knownCommands = map[string]bool{
	"NOOP": true, "CHECK": true, "LOGOUT": true, "CAPABILITY": true, "STARTTLS": true,
	"AUTHENTICATE": true, "UNAUTHENTICATE": true, "LOGIN": true, "ENABLE": true,
	"CREATE": true, "DELETE": true, "RENAME": true, "SUBSCRIBE": true, "UNSUBSCRIBE": true,
	"STATUS": true, "LIST": true, "LSUB": true, "NAMESPACE": true, "IDLE": true,
	"SELECT": true, "EXAMINE": true, "CLOSE": true, "UNSELECT": true, "APPEND": true,
	"FETCH": true, "EXPUNGE": true, "STORE": true, "COPY": true, "MOVE": true,
	"SEARCH": true, "UID": true,
}

// mailboxCommands take mailbox names, which imapserver decodes from
// modified UTF-7 (RFC 3501 §5.1.3) while parsing: a name that is not
// valid mUTF-7 makes it fail the command as a syntax error (SELECT) or as
// a server error, dropping the connection (LIST).
var mailboxCommands = map[string]bool{
	"SELECT": true, "EXAMINE": true, "CREATE": true, "DELETE": true, "RENAME": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "STATUS": true, "LIST": true, "LSUB": true,
	"APPEND": true, "COPY": true, "MOVE": true, "UID COPY": true, "UID MOVE": true,
}

var (
	// errFrontClosed ends a connection the front said BYE to.
	errFrontClosed = errors.New("mailbox: imap: connection closed by the front")
	// errHandedOver ends the clear-text part of a connection after
	// STARTTLS: the rest is a new imapserver connection.
	errHandedOver = errors.New("mailbox: imap: connection continues over TLS")
)

// frontConn sits between the client and imapserver. It reads the client's
// commands line by line (literals included) and passes them on, except
// what imapserver gets wrong, which it answers itself:
//
//   - ID (RFC 2971), which imapserver does not know;
//   - unknown commands before login get BAD and the connection stays,
//     up to frontMaxBad of them (imapserver says BYE at the first);
//   - a literal too big for the command: BYE at once before login (as
//     dovecot), NO [TOOBIG] after, instead of imapserver waiting for a
//     literal the client will never send;
//   - an over-long line or too deep nesting: BAD, not a dropped
//     connection;
//   - mailbox names that are not valid modified UTF-7: no such mailbox;
//   - STARTTLS (see startTLS), so that all of the above holds over TLS;
//   - ID in the capability lists imapserver writes (see withID).
//
// Synchronizing literals are acknowledged here ("+") and passed on as
// non-synchronizing (LITERAL+, RFC 7888), so the front always knows where
// the literal bytes are.
type frontConn struct {
	net.Conn // the client's connection, or the TLS over it after STARTTLS
	br       *bufio.Reader

	// sess is the session, set by newSession, read here for the login
	// state: both run on imapserver's reading goroutine.
	sess *imapSession
	// maxAppend is the largest APPEND literal taken.
	maxAppend int64
	// tlsConfig, when set, makes the front answer STARTTLS and hand the
	// connection, then TLS, to toTLS (the implicit-TLS server).
	tlsConfig *tls.Config
	toTLS     func(net.Conn) bool
	// afterTLS: this connection continues one after STARTTLS (a new
	// imapserver connection, not a new client).
	afterTLS bool
	// handedOver: after STARTTLS, this (clear-text) frontConn no longer
	// owns the client's connection: imapserver's old Conn may still
	// close it, set deadlines or say BYE, which must not reach the client.
	handedOver atomic.Bool

	wmu sync.Mutex // writes: ours and imapserver's
	// Under wmu: swallow drops imapserver's greeting after STARTTLS
	// (RFC 3501 §6.2.1: the server sends none); capTag is the tag of the
	// command whose response gets ID in its capability list ("*": the
	// greeting; "": none).
	swallow bool
	capTag  string

	out     []byte // bytes for imapserver
	litLeft int64  // literal bytes still to pass on (or drop)
	cont    bool   // the next line continues the current command
	forward bool   // the current command goes to imapserver
	tag     string
	name    string
	bad     int
	// answered: the front has answered the current command already.
	answered bool
}

func newFrontConn(c net.Conn, maxAppend int64) *frontConn {
	return &frontConn{Conn: c, br: bufio.NewReaderSize(c, 4096), maxAppend: maxAppend, capTag: "*"}
}

// Write passes on imapserver's responses (and ours), adding ID to
// capability lists.
func (f *frontConn) Write(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.handedOver.Load() {
		return 0, net.ErrClosed
	}
	out := b
	if f.swallow {
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			return len(b), nil
		}
		f.swallow, out = false, out[i+1:]
	}
	if f.capTag != "" {
		out = f.withID(out)
	}
	if len(out) == 0 {
		return len(b), nil
	}
	if _, err := f.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// withID adds ID (RFC 2971 §2, which the front answers) to the capability
// lists of the response to the command tagged f.capTag: the untagged
// CAPABILITY response and the CAPABILITY response code (the greeting's,
// LOGIN's and AUTHENTICATE's), until that command's tagged response.
// Only those commands are watched: their responses carry no literal, so
// every line here is a response line, never message data. Called under
// wmu.
func (f *frontConn) withID(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
		}
		b = b[len(line):]
		switch {
		case !bytes.HasSuffix(line, []byte("\r\n")):
		case bytes.HasPrefix(line, []byte("* CAPABILITY ")):
			line = slices.Concat(line[:len(line)-2], []byte(" ID\r\n"))
		case bytes.HasPrefix(line, []byte(f.capTag+" ")) || f.capTag == "*":
			if i := bytes.Index(line, []byte(" [CAPABILITY ")); i >= 0 {
				if j := bytes.IndexByte(line[i:], ']'); j >= 0 {
					line = slices.Concat(line[:i+j], []byte(" ID"), line[i+j:])
				}
			}
			f.capTag = ""
		}
		out = append(out, line...)
	}
	return out
}

// watchCaps makes withID watch the response to the command tagged tag.
func (f *frontConn) watchCaps(tag string) {
	f.wmu.Lock()
	f.capTag = tag
	f.wmu.Unlock()
}

// Close, SetDeadline, SetReadDeadline and SetWriteDeadline do nothing
// once the connection is handed over (see handedOver).
func (f *frontConn) Close() error {
	if f.handedOver.Load() {
		return nil
	}
	return f.Conn.Close()
}

func (f *frontConn) SetDeadline(t time.Time) error {
	if f.handedOver.Load() {
		return nil
	}
	return f.Conn.SetDeadline(t)
}

func (f *frontConn) SetReadDeadline(t time.Time) error {
	if f.handedOver.Load() {
		return nil
	}
	return f.Conn.SetReadDeadline(t)
}

func (f *frontConn) SetWriteDeadline(t time.Time) error {
	if f.handedOver.Load() {
		return nil
	}
	return f.Conn.SetWriteDeadline(t)
}

func (f *frontConn) reply(s string) error {
	_, err := f.Write([]byte(s))
	return err
}

func (f *frontConn) authenticated() bool { return f.sess != nil && f.sess.user != "" }

func (f *frontConn) Read(p []byte) (int, error) {
	for {
		switch {
		case len(f.out) > 0:
			n := copy(p, f.out)
			f.out = f.out[n:]
			return n, nil
		case f.handedOver.Load():
			return 0, io.EOF
		case f.litLeft > 0 && f.forward:
			n, err := f.br.Read(p[:min(int64(len(p)), f.litLeft)])
			f.litLeft -= int64(n)
			return n, err
		case f.litLeft > 0:
			n, err := io.CopyN(io.Discard, f.br, f.litLeft)
			f.litLeft -= n
			if err != nil {
				return 0, err
			}
		default:
			if err := f.next(); err != nil {
				switch {
				case errors.Is(err, errFrontClosed):
					f.Conn.Close() // after BYE (RFC 3501 §7.1.5)
				case errors.Is(err, errHandedOver):
					return 0, io.EOF // imapserver ends this Conn quietly
				}
				return 0, err
			}
		}
	}
}

// next reads one line of a command and decides what becomes of it.
func (f *frontConn) next() error {
	var line []byte
	for {
		chunk, err := f.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > frontMaxLine {
			return f.longLine(line, err == nil)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 && errors.Is(err, io.EOF) {
			f.out = line
			return nil
		}
		return err
	}
	first := !f.cont
	if first {
		f.startCommand(line)
	}
	n, nonSync, at, isLit := trailingLiteral(line)
	if first && f.forward {
		if resp := f.check(line, isLit); resp != "" {
			f.forward, f.answered = false, true
			if err := f.reply(resp); err != nil {
				return err
			}
			if isLit && !nonSync {
				return nil // without "+" the client sends no literal
			}
		}
	}
	f.cont = isLit
	if isLit {
		limit := int64(frontMaxLiteral)
		if f.name == "APPEND" {
			limit = f.maxAppend
		}
		if !f.authenticated() {
			limit = min(limit, frontMaxPreAuthLiteral)
		}
		if n > limit {
			if !f.authenticated() || nonSync || !first {
				// The literal is on its way (or part of the command is
				// with imapserver already): nothing to resynchronize on.
				_ = f.reply("* BYE Literal size too large\r\n")
				return errFrontClosed
			}
			// A synchronizing literal on the command's first line: the
			// client waits for "+", which it does not get.
			f.cont = false
			return f.reply(f.tag + " NO [TOOBIG] Literal size too large\r\n")
		}
		if !nonSync {
			if err := f.reply("+ OK\r\n"); err != nil {
				return err
			}
			// {n} → {n+}: imapserver must not ask again.
			line = append(line[:at], []byte(fmt.Sprintf("{%d+}\r\n", n))...)
		}
		f.litLeft = n
	}
	switch {
	case f.forward:
		if first {
			switch f.name {
			case "CAPABILITY", "LOGIN", "AUTHENTICATE":
				f.watchCaps(f.tag)
			}
		}
		f.out = line
		return nil
	case !isLit:
		return f.finish()
	}
	return nil
}

// startCommand reads the tag and name of a new command and decides
// whether it goes to imapserver.
func (f *frontConn) startCommand(line []byte) {
	fields := strings.Fields(strings.TrimRight(string(line), "\r\n"))
	f.tag, f.name, f.forward, f.answered = "*", "", true, false
	if len(fields) == 0 {
		return
	}
	f.tag = fields[0]
	if len(fields) < 2 {
		return // a SASL response, DONE, or garbage: imapserver's
	}
	f.name = strings.ToUpper(fields[1])
	if f.name == "UID" && len(fields) > 2 {
		f.name = "UID " + strings.ToUpper(fields[2])
	}
	switch {
	case f.name == "ID":
		f.forward = false
	case f.name == "STARTTLS" && len(fields) == 2 && f.tlsConfig != nil && !f.authenticated():
		f.forward = false
	case !knownCommands[strings.SplitN(f.name, " ", 2)[0]] && !f.authenticated():
		f.forward = false
	}
}

// check returns the answer to a command the front refuses after reading
// its first line, or "".
func (f *frontConn) check(line []byte, isLit bool) string {
	if depth := nesting(line); depth > frontMaxDepth {
		return f.tag + " BAD Too deep nesting\r\n"
	}
	if !isLit && mailboxCommands[f.name] && hasBadMUTF7(line) {
		// No mailbox can have such a name: imapserver only stores
		// decoded names.
		switch f.name {
		case "LIST", "LSUB":
			return f.tag + " OK " + f.name + " completed\r\n"
		case "CREATE", "RENAME":
			return f.tag + " NO [CANNOT] Invalid mailbox name\r\n"
		case "APPEND", "COPY", "MOVE", "UID COPY", "UID MOVE":
			return f.tag + " NO [TRYCREATE] No such mailbox\r\n"
		}
		return f.tag + " NO [NONEXISTENT] No such mailbox\r\n"
	}
	return ""
}

// finish answers a command the front kept from imapserver.
func (f *frontConn) finish() error {
	switch {
	case f.answered:
		return nil
	case f.name == "ID":
		// RFC 2971 §3.1: the server's ID (nothing identifying beyond
		// the product).
		return f.reply("* ID (\"name\" \"mailhook\")\r\n" + f.tag + " OK ID completed\r\n")
	case f.name == "STARTTLS":
		return f.startTLS()
	case f.forward:
		return nil
	}
	f.bad++
	if f.bad > frontMaxBad {
		_ = f.reply("* BYE Too many invalid commands\r\n")
		return errFrontClosed
	}
	return f.reply(f.tag + " BAD Unknown command\r\n")
}

// startTLS answers STARTTLS (RFC 3501 §6.2.1) and hands the connection,
// now TLS, to toTLS as a new imapserver connection, with a new frontConn
// in front of it. imapserver would do the TLS itself, over the front,
// which would then see only ciphertext and could no longer guard the
// session; this way the front reads the clear text on both sides of
// STARTTLS. The implicit-TLS server takes passwords and offers no
// STARTTLS, which is right for a connection that has done it. The old
// imapserver Conn reads end of file and ends without a word.
func (f *frontConn) startTLS() error {
	if err := f.reply(f.tag + " OK Begin TLS negotiation now\r\n"); err != nil {
		return err
	}
	conn := f.Conn
	if n := f.br.Buffered(); n > 0 {
		// What the client sent after the command line is the start of
		// its handshake (as imapserver does it: never commands).
		early, _ := f.br.Peek(n)
		conn = &prefixedConn{Conn: conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)}
	}
	next := newFrontConn(tls.Server(conn, f.tlsConfig), f.maxAppend)
	next.afterTLS, next.swallow, next.capTag = true, true, ""
	f.handedOver.Store(true)
	if !f.toTLS(next) {
		conn.Close() // the server is closing
	}
	return errHandedOver
}

// prefixedConn reads r, then the connection.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// longLine answers a command line longer than frontMaxLine with BAD and
// drops the rest of it (dovecot does the same).
func (f *frontConn) longLine(first []byte, ended bool) error {
	tag := "*"
	if !f.cont {
		if i := bytes.IndexByte(first, ' '); i > 0 {
			tag = string(first[:i])
		}
	} else {
		_ = f.reply("* BYE Command line too long\r\n")
		return errFrontClosed
	}
	for !ended {
		_, err := f.br.ReadSlice('\n')
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	f.cont = false
	return f.reply(tag + " BAD Command line too long\r\n")
}

// trailingLiteral finds a literal announcement ({n}, {n+}, ~{n}) at the
// end of a line: its size, whether it is non-synchronizing, and where it
// starts.
func trailingLiteral(line []byte) (n int64, nonSync bool, at int, ok bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false, 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false, 0, false
	}
	num := l[open+1 : len(l)-1]
	if len(num) > 0 && (num[len(num)-1] == '+' || num[len(num)-1] == '-') {
		nonSync = true
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false, 0, false
	}
	return n, nonSync, open, true
}

// nesting returns the deepest parenthesis nesting of a line outside
// quoted strings.
func nesting(line []byte) int {
	depth, deepest, quoted := 0, 0, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '(':
			depth++
			deepest = max(deepest, depth)
		case !quoted && c == ')':
			depth--
		}
	}
	return deepest
}

// hasBadMUTF7 reports whether an argument of the line (an atom or a
// quoted string) is not valid modified UTF-7 (RFC 3501 §5.1.3).
func hasBadMUTF7(line []byte) bool {
	s := string(bytes.TrimRight(line, "\r\n"))
	for i := 0; i < len(s); {
		switch s[i] {
		case ' ', '(', ')':
			i++
		case '"':
			var q string
			q, i = unquote(s, i)
			if !validMUTF7(q) {
				return true
			}
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
				j++
			}
			if !validMUTF7(s[i:j]) {
				return true
			}
			i = j
		}
	}
	return false
}

var mutf7Encoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// validMUTF7 reports whether s is valid modified UTF-7: every "&" starts
// "&-" or a modified-base64 run of UTF-16 ended by "-".
func validMUTF7(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return false
		}
		enc := s[i+1 : i+1+end]
		i += end + 1
		if enc == "" {
			continue // "&-" is "&"
		}
		b, err := mutf7Encoding.DecodeString(enc)
		if err != nil || len(b)%2 != 0 {
			return false
		}
		u := make([]uint16, len(b)/2)
		for k := range u {
			u[k] = uint16(b[2*k])<<8 | uint16(b[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == '\uFFFD' {
				return false
			}
		}
	}
	return true
}
