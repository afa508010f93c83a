package mailbox

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrAuthFailed means the user name or the password is wrong. It does not
// say which.
var ErrAuthFailed = errors.New("mailbox: authentication failed")

// User is one mailbox user, as configured under mailbox.users.
type User struct {
	// Name is the login name and the store's user key.
	Name string
	// PasswordHash is a bcrypt hash ("$2a$…", "$2b$…", "$2y$…") or an
	// argon2id PHC string ("$argon2id$v=19$m=…,t=…,p=…$salt$hash").
	PasswordHash string
	// Addresses are the mail addresses delivered to the user's INBOX.
	Addresses []string
	// QuotaBytes is the user's quota; 0 means no limit.
	QuotaBytes int64
}

// userSet is one immutable generation of the configured users.
type userSet struct {
	byName map[string]*User
	byAddr map[string]*User

	// dummy is compared against when the user is unknown, so that the
	// answer takes as long as for a known user with a wrong password. It
	// is made on first use with the cost of the configured hashes.
	dummyCost int
	dummyOnce sync.Once
	dummy     []byte
}

func (s *userSet) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte("mailhook dummy password"), s.dummyCost)
	})
	return s.dummy
}

// Users is the set of configured users. The set can be replaced at run
// time (configuration reload) with Replace; readers never block.
type Users struct {
	p atomic.Pointer[userSet]
}

// hashSlots bounds the password hashes computed at once, process-wide:
// bcrypt and argon2id are made to be expensive, and a flood of logins
// must not take every CPU (or, with argon2id, all memory).
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// NewUsers validates list and returns the set.
func NewUsers(list []User) (*Users, error) {
	u := &Users{}
	if err := u.Replace(list); err != nil {
		return nil, err
	}
	return u, nil
}

// Replace swaps in a new user list atomically after validating it: names
// unique, hashes of a known scheme, each address owned by one user.
func (u *Users) Replace(list []User) error {
	set := &userSet{byName: map[string]*User{}, byAddr: map[string]*User{}, dummyCost: 12}
	var problems []string
	for i := range list {
		usr := list[i]
		usr.Addresses = append([]string(nil), usr.Addresses...)
		if err := checkUser(usr.Name); err != nil || strings.ContainsAny(usr.Name, " \t") {
			problems = append(problems, fmt.Sprintf("users[%d]: invalid name %q", i, usr.Name))
			continue
		}
		if _, dup := set.byName[usr.Name]; dup {
			problems = append(problems, fmt.Sprintf("users[%d]: duplicate name %q", i, usr.Name))
		}
		if !knownHash(usr.PasswordHash) {
			problems = append(problems, fmt.Sprintf("users[%d] (%s): password_hash is neither bcrypt nor argon2id", i, usr.Name))
		}
		if c, err := bcrypt.Cost([]byte(usr.PasswordHash)); err == nil && i == 0 {
			set.dummyCost = c
		}
		set.byName[usr.Name] = &usr
		for _, a := range usr.Addresses {
			k, ok := addrKey(a)
			if !ok {
				problems = append(problems, fmt.Sprintf("users[%d] (%s): invalid address %q", i, usr.Name, a))
				continue
			}
			if o := set.byAddr[k]; o != nil && o.Name != usr.Name {
				problems = append(problems, fmt.Sprintf("users[%d] (%s): address %q already belongs to %s", i, usr.Name, a, o.Name))
			}
			set.byAddr[k] = &usr
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("mailbox: users: %s", strings.Join(problems, "; "))
	}
	u.p.Store(set)
	return nil
}

func (u *Users) set() *userSet {
	if s := u.p.Load(); s != nil {
		return s
	}
	return &userSet{}
}

// addrKey folds an address for lookup: the domain is case-insensitive
// (RFC 5321 §2.4); we fold the local part too, as every mailbox provider
// does.
func addrKey(a string) (string, bool) {
	a = strings.TrimSpace(strings.Trim(strings.TrimSpace(a), "<>"))
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return "", false
	}
	return strings.ToLower(a), true
}

// Get returns the user with the given login name.
func (u *Users) Get(name string) (User, bool) {
	usr := u.set().byName[name]
	if usr == nil {
		return User{}, false
	}
	return *usr, true
}

// Lookup returns the user owning address. A plus-address reaches the base
// user: support+tag@example.test → support@example.test.
func (u *Users) Lookup(address string) (User, bool) {
	k, ok := addrKey(address)
	if !ok {
		return User{}, false
	}
	set := u.set()
	if usr := set.byAddr[k]; usr != nil {
		return *usr, true
	}
	at := strings.LastIndexByte(k, '@')
	if plus := strings.IndexByte(k[:at], '+'); plus > 0 {
		if usr := set.byAddr[k[:plus]+k[at:]]; usr != nil {
			return *usr, true
		}
	}
	return User{}, false
}

// Quota returns the user's QuotaBytes (0 for an unknown user); it fits
// Options.Quota.
func (u *Users) Quota(name string) int64 {
	usr, _ := u.Get(name)
	return usr.QuotaBytes
}

// Names returns the configured login names.
func (u *Users) Names() []string {
	set := u.set()
	out := make([]string, 0, len(set.byName))
	for n := range set.byName {
		out = append(out, n)
	}
	return out
}

// byLogin finds the user for a login name: a user name or exactly one of
// the user's addresses (no plus-address: each login name must map to one
// throttling key).
func (u *Users) byLogin(name string) (User, bool) {
	set := u.set()
	if usr := set.byName[name]; usr != nil {
		return *usr, true
	}
	if k, ok := addrKey(name); ok {
		if usr := set.byAddr[k]; usr != nil {
			return *usr, true
		}
	}
	return User{}, false
}

// Canonical returns the login name behind name (a user name or address),
// or name itself, lower-cased, when it names no user. Login throttling
// keys on it, so that one account is one key however it is spelled.
func (u *Users) Canonical(name string) string {
	if usr, ok := u.byLogin(name); ok {
		return usr.Name
	}
	return strings.ToLower(name)
}

// Authenticate checks a login. name is a login name or one of the user's
// addresses. It returns the user's login name, or an error wrapping
// ErrAuthFailed. An unknown name costs as much as a wrong password.
func (u *Users) Authenticate(name, password string) (string, error) {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	usr, ok := u.byLogin(name)
	if !ok {
		bcrypt.CompareHashAndPassword(u.set().dummyHash(), []byte(password))
		return "", fmt.Errorf("mailbox: user %q: %w", name, ErrAuthFailed)
	}
	if err := CheckPassword(usr.PasswordHash, password); err != nil {
		return "", fmt.Errorf("mailbox: user %q: %w", name, err)
	}
	return usr.Name, nil
}

// HashPassword hashes pw with bcrypt at cost 12, for `mailhook user add`.
func HashPassword(pw string) (string, error) {
	if len(pw) > 72 {
		// bcrypt ignores bytes after 72; refuse rather than truncate silently.
		return "", errors.New("mailbox: password longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 12)
	if err != nil {
		return "", fmt.Errorf("mailbox: hash password: %w", err)
	}
	return string(h), nil
}

func knownHash(h string) bool {
	if strings.HasPrefix(h, "$argon2id$") {
		_, err := parseArgon2id(h)
		return err == nil
	}
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}

// CheckPassword compares password with a bcrypt or argon2id hash in
// constant time. It returns ErrAuthFailed (wrapped) on mismatch.
func CheckPassword(hash, password string) error {
	if strings.HasPrefix(hash, "$argon2id$") {
		p, err := parseArgon2id(hash)
		if err != nil {
			return fmt.Errorf("mailbox: %v: %w", err, ErrAuthFailed)
		}
		got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		if subtle.ConstantTimeCompare(got, p.key) != 1 {
			return ErrAuthFailed
		}
		return nil
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		return ErrAuthFailed
	}
	return nil
}

type argon2Params struct {
	memory    uint32
	time      uint32
	threads   uint8
	salt, key []byte
}

// parseArgon2id reads "$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>"
// (the PHC string format; base64 without padding).
func parseArgon2id(h string) (argon2Params, error) {
	var p argon2Params
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return p, errors.New("malformed argon2id hash")
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, errors.New("malformed argon2id parameters")
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return p, errors.New("argon2id parallelism too large")
			}
			p.threads = uint8(n)
		}
	}
	// Bound the work one login may cost (memory in KiB): at most 256 MiB,
	// 10 passes, 16 lanes; OWASP's recommendations sit far below.
	if p.memory == 0 || p.memory > 256<<10 || p.time == 0 || p.time > 10 || p.threads == 0 || p.threads > 16 {
		return p, errors.New("argon2id parameters out of range")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return p, errors.New("malformed argon2id salt")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 128 {
		return p, errors.New("malformed argon2id hash value")
	}
	return p, nil
}
