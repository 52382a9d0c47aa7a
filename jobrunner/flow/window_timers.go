package flow

import (
	"cmp"
	"slices"
	"strings"
)

// Timer flags: a fire timer emits the window's result, a cleanup timer
// purges its state. With no allowed lateness both fall on End-1 and share
// one entry, fire first.
const (
	timerFire uint8 = 1 << iota
	timerCleanup
)

type timerEntry struct {
	w     window
	key   string
	kg    int32
	flags uint8
}

type timerBucket struct {
	ts      int64
	entries []timerEntry
}

// sort puts entries in (start, end, key group, key) order: deterministic
// output that does not depend on arrival order or on which key groups an
// operator owns (a key's group is fixed by the max parallelism). Key group
// before key keeps most comparisons on integers, and makes firing visit one
// key group's state after another, which is kinder to the cache.
func (b *timerBucket) sort() {
	slices.SortFunc(b.entries, func(x, y timerEntry) int {
		if c := cmp.Compare(x.w.Start, y.w.Start); c != 0 {
			return c
		}
		if c := cmp.Compare(x.w.End, y.w.End); c != 0 {
			return c
		}
		if c := cmp.Compare(x.kg, y.kg); c != 0 {
			return c
		}
		if c := strings.Compare(x.key, y.key); c != 0 {
			return c
		}
		// A fire entry before a cleanup entry of the same window.
		return cmp.Compare(x.flags&timerCleanup, y.flags&timerCleanup)
	})
}

// timerService is the event-time timers of one operator: a bucket of
// entries per timestamp and a min-heap of the timestamps. Registering costs a
// map lookup (none when the timestamp is the last one used, the common case
// of many keys in one window); a watermark pops only the buckets due.
// Timers are not deleted: an entry whose window state is gone is skipped
// when it fires.
type timerService struct {
	heap    []int64
	buckets map[int64]*timerBucket
	last    *timerBucket
	pool    []*timerBucket
}

const maxPooledBuckets = 64

func (t *timerService) init() {
	t.buckets = map[int64]*timerBucket{}
}

func (t *timerService) register(ts int64, e timerEntry) {
	b := t.last
	if b == nil || b.ts != ts {
		b = t.buckets[ts]
		if b == nil {
			b = reuse(&t.pool)
			b.ts = ts
			t.buckets[ts] = b
			t.push(ts)
		}
		t.last = b
	}
	b.entries = append(b.entries, e)
}

// due reports whether a bucket at or before wm is queued.
func (t *timerService) due(wm int64) bool { return len(t.heap) > 0 && t.heap[0] <= wm }

// pop removes and returns the earliest bucket.
func (t *timerService) pop() *timerBucket {
	ts := t.heap[0]
	n := len(t.heap) - 1
	t.heap[0] = t.heap[n]
	t.heap = t.heap[:n]
	t.down(0)
	b := t.buckets[ts]
	delete(t.buckets, ts)
	if t.last == b {
		t.last = nil
	}
	return b
}

// release returns a fired bucket for reuse, dropping its key strings.
func (t *timerService) release(b *timerBucket) {
	clear(b.entries)
	b.entries = b.entries[:0]
	if len(t.pool) < maxPooledBuckets {
		t.pool = append(t.pool, b)
	}
}

// len is the number of queued entries, for tests.
func (t *timerService) len() int {
	n := 0
	for _, b := range t.buckets {
		n += len(b.entries)
	}
	return n
}

func (t *timerService) push(ts int64) {
	t.heap = append(t.heap, ts)
	i := len(t.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if t.heap[p] <= t.heap[i] {
			break
		}
		t.heap[p], t.heap[i] = t.heap[i], t.heap[p]
		i = p
	}
}

func (t *timerService) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.heap[r] < t.heap[l] {
			m = r
		}
		if t.heap[i] <= t.heap[m] {
			return
		}
		t.heap[i], t.heap[m] = t.heap[m], t.heap[i]
		i = m
	}
}

// reuse pops an item from a free list, or returns a new one.
func reuse[T any](free *[]*T) *T {
	if n := len(*free); n > 0 {
		x := (*free)[n-1]
		*free = (*free)[:n-1]
		return x
	}
	return new(T)
}
