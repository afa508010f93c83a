package mailbox

import (
	"context"
)

// Watch returns a Watcher signalled on each change of the folder.
// Close it when done.
func (s *Store) Watch(ctx context.Context, user, folder string) (*Watcher, error) {
	f, err := s.Folder(ctx, user, folder)
	if err != nil {
		return nil, err
	}
	c := make(chan struct{}, 1)
	w := &Watcher{C: c, c: c, s: s, key: watchKey{user, f.ID}}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.watchers[w.key]
	if m == nil {
		m = make(map[*Watcher]struct{})
		s.watchers[w.key] = m
	}
	m[w] = struct{}{}
	return w, nil
}

func (s *Store) notify(k watchKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers[k] {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}
