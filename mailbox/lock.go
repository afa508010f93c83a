package mailbox

import (
	"context"
	"fmt"
)

// TryLock takes the folder's exclusive lock, held by a POP3 session for
// its length (RFC 1939 §8). It returns ErrLocked (wrapped) when another
// holder has it. The lock is in-process only.
func (s *Store) TryLock(ctx context.Context, user, folder string) (unlock func(), err error) {
	f, err := s.Folder(ctx, user, folder)
	if err != nil {
		return nil, err
	}
	k := watchKey{user, f.ID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[k]; held {
		return nil, fmt.Errorf("mailbox: %s/%s: %w", user, f.Name, ErrLocked)
	}
	s.locks[k] = struct{}{}
	var once bool
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !once {
			once = true
			delete(s.locks, k)
		}
	}, nil
}
