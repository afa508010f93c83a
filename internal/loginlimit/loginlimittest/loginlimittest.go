// Package loginlimittest holds what the IMAP and POP3 tests of the
// login limiter share: a flood of wrong passwords from one address must
// not queue a right one from another.
package loginlimittest

import (
	"net"
	"testing"

	"github.com/mailhook/mailhook/internal/testenv"
)

// Loopback addresses other than 127.0.0.1 (Linux routes all of 127/8 to
// lo), for the local end of test connections: the attacker and the user
// come from different client addresses.
var (
	AttackerIP = net.IPv4(127, 0, 0, 2)
	UserIP     = net.IPv4(127, 0, 0, 3)
)

// FloodCost is the bcrypt cost of the flood tests: hashes long enough
// that what surrounds a check (scheduling, the session's own work) is
// short beside one, so that the count of guesses checked during the good
// login measures its place in the queue; lower under the race detector,
// which makes bcrypt ~20 times slower.
func FloodCost() int {
	if testenv.Race {
		return 6
	}
	return 8
}

// CheckNotQueued fails t when more than attackers/4 guesses were checked
// while the good login waited and ran. It waits for at most the hashes in
// progress, and the attacker's one slot runs meanwhile (a few guesses);
// queued behind the flood it would see about attackers. The bound leaves
// room for a loaded machine, where the round trip around the check is
// long beside one hash.
func CheckNotQueued(t testing.TB, during int64, attackers int) {
	t.Helper()
	if during > int64(attackers/4) {
		t.Errorf("%d guesses were checked while the good login waited and ran, want at most %d", during, attackers/4)
	}
	t.Logf("guesses checked during the good login: %d", during)
}
