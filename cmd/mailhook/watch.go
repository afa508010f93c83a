package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchConfig reports changes of the config file, debounced: editors write
// files in several steps (or replace them by rename), so the directory is
// watched and a burst of events gives one signal after it settles.
func (a *app) watchConfig(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("not watching the config file; SIGHUP still reloads", "error", err)
		return out
	}
	path, _ := filepath.Abs(a.path)
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		a.log.Warn("not watching the config file; SIGHUP still reloads", "error", err)
		return out
	}
	go func() {
		defer func() { recover() }()
		defer w.Close()
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Name == path && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					timer = time.After(300 * time.Millisecond)
				}
			case <-w.Errors:
			case <-timer:
				timer = nil
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
