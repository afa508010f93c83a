package pebbleq

// The in-memory index of every job: where it is (ready by kind and due
// time, leased by lease expiry, dead by death time) and how many jobs each
// message has left. It is rebuilt from the jobs at Open; the store holds
// only the jobs, so no index entry is ever written to disk, and Take finds
// due jobs without scanning the LSM's deleted keys.

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/google/btree"

	"github.com/mailhook/mailhook/deliver"
)

// entry is one job as the index knows it.
type entry struct {
	id    string
	msgID string
	kind  deliver.Kind
	next  int64 // NextAt, Unix ns
	until int64 // LeaseUntil, Unix ns, while leased
	dead  int64 // DeadAt, Unix ns, when dead
	lease string
	// job is the stored job while it is leased, so that settling it needs
	// no read and decode.
	job *deliver.Job
}

// item is an index key: a time and a job ID.
type item struct {
	t  int64
	id string
}

func cmpItem(a, b item) int { return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.id, b.id)) }

func lessItem(a, b item) bool { return cmpItem(a, b) < 0 }

func newTree() *btree.BTreeG[item] { return btree.NewG(32, lessItem) }

type index struct {
	jobs   map[string]*entry
	ready  map[deliver.Kind]*btree.BTreeG[item]
	leased *btree.BTreeG[item]
	dead   *btree.BTreeG[item]
	msgs   map[string]int // message ID -> jobs left
}

func newIndex() *index {
	x := &index{
		jobs:   map[string]*entry{},
		ready:  map[deliver.Kind]*btree.BTreeG[item]{},
		leased: newTree(),
		dead:   newTree(),
		msgs:   map[string]int{},
	}
	for _, k := range deliver.Kinds {
		x.ready[k] = newTree()
	}
	return x
}

// ns is t in Unix nanoseconds, 0 for the zero time.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func entryOf(j *deliver.Job) *entry {
	return &entry{id: j.ID, msgID: j.MsgID, kind: j.Kind, next: ns(j.NextAt), until: ns(j.LeaseUntil), dead: ns(j.DeadAt), lease: j.Lease}
}

// set copies j's state into e (listed nowhere while it changes).
func (e *entry) set(j *deliver.Job) {
	e.next, e.until, e.dead, e.lease = ns(j.NextAt), ns(j.LeaseUntil), ns(j.DeadAt), j.Lease
}

// tree returns the tree e is listed in and its key there.
func (x *index) tree(e *entry) (*btree.BTreeG[item], item) {
	switch {
	case e.dead != 0:
		return x.dead, item{e.dead, e.id}
	case e.lease != "":
		return x.leased, item{e.until, e.id}
	default:
		return x.ready[e.kind], item{e.next, e.id}
	}
}

func (x *index) list(e *entry) {
	t, k := x.tree(e)
	t.ReplaceOrInsert(k)
}

func (x *index) unlist(e *entry) {
	t, k := x.tree(e)
	t.Delete(k)
}

// add indexes a new job.
func (x *index) add(e *entry) {
	x.jobs[e.id] = e
	x.msgs[e.msgID]++
	x.list(e)
}

// update moves e to where j's state lists it.
func (x *index) update(e *entry, j *deliver.Job) {
	x.unlist(e)
	e.set(j)
	x.list(e)
}

// remove forgets a job and reports whether it was its message's last.
func (x *index) remove(e *entry) (last bool) {
	x.unlist(e)
	delete(x.jobs, e.id)
	x.msgs[e.msgID]--
	if x.msgs[e.msgID] > 0 {
		return false
	}
	delete(x.msgs, e.msgID)
	return true
}

// due returns up to n due job IDs of kinds at now, oldest NextAt first.
func (x *index) due(kinds []deliver.Kind, n int, now int64) []item {
	var out []item
	for _, k := range kinds {
		t := x.ready[k]
		if t == nil {
			continue
		}
		i := 0
		t.Ascend(func(it item) bool {
			if it.t > now || i >= n {
				return false
			}
			out = append(out, it)
			i++
			return true
		})
	}
	if len(kinds) > 1 {
		slices.SortFunc(out, cmpItem)
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// expired returns the leases that ended by now.
func (x *index) expired(now int64) []item {
	var out []item
	x.leased.Ascend(func(it item) bool {
		if it.t > now {
			return false
		}
		out = append(out, it)
		return true
	})
	return out
}
