package state

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
)

// pebbleBackend keeps a Store's Pebble key groups: serialized entries in the
// worker's PebbleDB, under the store's state ids, with a write buffer in
// front.
//
// The write buffer holds, per key group, the latest stored value (or the
// absence) of every key written or read since the key group was last
// flushed. A read-modify-write of a buffered key touches no Pebble
// structure; a miss reads Pebble once and keeps the value. The buffer is
// written to Pebble in batches, each key group's keys sorted, some key
// groups at a time when it outgrows its bound. Scans of a key group
// (snapshot, migration, map iteration) merge its buffered changes into
// what they read from Pebble, so they need not flush it.
//
// (Pebble's own indexed batch as the buffer measured 280,000
// read-modify-writes per second on one core here, and a DB.Get alone about
// 2µs: every Get builds a merging iterator over batch, memtables and
// levels.)
//
// A buffered key is one allocation, key and value inline when they fit, in
// a map keyed by the key's hash: a hit costs a hash, one map probe and one
// pointer dereference.
type pebbleBackend struct {
	st     *Store
	db     *pebble.DB
	groups []map[uint64]*pendingWrite // by key group index; nil until used
	gbytes []int                      // approximate bytes of each group
	gkeys  []int                      // keys in each group
	loaded []int                      // entries of each group when it was last loaded
	bytes  int
	limit  int

	// The entry last looked up: a read-modify-write finds it again without
	// hashing.
	last  *pendingWrite
	lastI int

	flushes   uint64
	cursor    int   // the key group maybeFlush flushes first
	flushList []int // scratch of the flushes
	sorter    keySorter
	dirty     []*pendingWrite // scratch of flush
	scan0     scanScratch     // scratch of scanRange
	scanning  bool            // scan0 is in use
}

// scanScratch is the scratch space of a scanRange.
type scanScratch struct {
	sorter keySorter
	ws     []*pendingWrite
}

// pendingWrite is one buffered key: the key, and its latest value as
// Pebble stores it, or its absence.
type pendingWrite struct {
	next   *pendingWrite // another key with the same hash
	kv     []byte        // the key, then the value; in inline while they fit
	klen   int32
	del    bool // the key has no value
	dirty  bool // Pebble is behind: write (or delete) the key at flush
	inline [40]byte
}

func (w *pendingWrite) key() []byte { return w.kv[:w.klen] }

// val is the stored value, with the rest of the buffer as its capacity:
// append to val()[:0] and hand the result to pebbleBackend.set.
func (w *pendingWrite) val() []byte { return w.kv[w.klen:] }

// pendingOverhead approximates the memory of a buffered key besides its
// key and value bytes: map slot and pendingWrite.
const pendingOverhead = 96

func newPebbleBackend(st *Store, db *pebble.DB, limit int) *pebbleBackend {
	n := st.r.Len()
	return &pebbleBackend{st: st, db: db, groups: make([]map[uint64]*pendingWrite, n), gbytes: make([]int, n), gkeys: make([]int, n), loaded: make([]int, n), limit: limit}
}

// find returns the buffered entry of key in key group i and key's hash.
func (p *pebbleBackend) find(i int, key []byte) (*pendingWrite, uint64) {
	if w := p.last; w != nil && p.lastI == i && bytes.Equal(w.key(), key) {
		return w, 0
	}
	h := xxhash.Sum64(key)
	for w := p.groups[i][h]; w != nil; w = w.next {
		if bytes.Equal(w.key(), key) {
			p.last, p.lastI = w, i
			return w, h
		}
	}
	return nil, h
}

// load returns the buffered entry of key in key group i, reading key's
// value from Pebble if it is not buffered yet. The caller may change it
// with set or remove; it stays valid until the next call into the backend.
func (p *pebbleBackend) load(i int, key []byte) (*pendingWrite, error) {
	if err := p.maybeFlush(); err != nil {
		return nil, err
	}
	w, h := p.find(i, key)
	if w != nil {
		return w, nil
	}
	v, closer, err := p.db.Get(key)
	switch {
	case err == nil:
		w = p.insert(i, h, key, v)
		err = closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		w, err = p.insert(i, h, key, nil), nil
		w.del = true
	}
	return w, err
}

// slot is load for a blind write: it does not read Pebble, so the entry
// it returns when key was not buffered is marked absent.
func (p *pebbleBackend) slot(i int, key []byte) (*pendingWrite, error) {
	if err := p.maybeFlush(); err != nil {
		return nil, err
	}
	w, h := p.find(i, key)
	if w == nil {
		w = p.insert(i, h, key, nil)
		w.del = true
	}
	return w, nil
}

// insert buffers key, with hash h, and value val.
func (p *pebbleBackend) insert(i int, h uint64, key, val []byte) *pendingWrite {
	w := &pendingWrite{klen: int32(len(key))}
	if n := len(key) + len(val); n <= len(w.inline) {
		w.kv = w.inline[:n]
	} else {
		w.kv = make([]byte, n)
	}
	copy(w.kv[copy(w.kv, key):], val)
	g := p.groups[i]
	if g == nil {
		g = map[uint64]*pendingWrite{}
		p.groups[i] = g
	}
	w.next = g[h]
	g[h] = w
	p.gkeys[i]++
	p.account(i, pendingOverhead+p.heapCap(w))
	p.last, p.lastI = w, i
	return w
}

// heapCap is the bytes of w's key and value outside w itself.
func (p *pebbleBackend) heapCap(w *pendingWrite) int {
	if cap(w.kv) == len(w.inline) && &w.kv[:1][0] == &w.inline[0] {
		return 0
	}
	return cap(w.kv)
}

func (p *pebbleBackend) account(i, n int) {
	p.gbytes[i] += n
	p.bytes += n
}

// set makes v the value of w, an entry of key group i. v is normally
// w.val()[:0] with the value appended, which is then in place already.
func (p *pebbleBackend) set(i int, w *pendingWrite, v []byte) {
	w.del, w.dirty = false, true
	k := int(w.klen)
	if len(v) <= cap(w.kv)-k && (len(v) == 0 || &v[0] == &w.kv[:k+1][k]) {
		w.kv = w.kv[:k+len(v)]
		return
	}
	before := p.heapCap(w)
	kv := make([]byte, k+len(v), k+len(v)+len(v)/2) // room for lists to grow
	copy(kv, w.key())
	copy(kv[k:], v)
	w.kv = kv
	p.account(i, p.heapCap(w)-before)
}

// remove marks w, an entry of key group i, absent: a deletion to write at
// flush.
func (p *pebbleBackend) remove(w *pendingWrite) {
	w.kv, w.del, w.dirty = w.kv[:w.klen], true, true
}

// maybeFlush flushes part of the buffer if it has outgrown its bound: key
// groups in turn until a sixteenth of the bound is free, so that the task
// is held up by a bounded flush rather than one of the whole buffer.
func (p *pebbleBackend) maybeFlush() error {
	if p.bytes <= p.limit {
		return nil
	}
	free := p.bytes - (p.limit - p.limit/16)
	gs := p.flushList[:0]
	for range p.groups {
		i := p.cursor
		p.cursor = (p.cursor + 1) % len(p.groups)
		if p.gbytes[i] == 0 {
			continue
		}
		gs = append(gs, i)
		if free -= p.gbytes[i]; free <= 0 {
			break
		}
	}
	p.flushList = gs
	return p.flush(gs)
}

// flushAll writes every buffered change to Pebble and empties the buffer.
func (p *pebbleBackend) flushAll() error {
	if p.bytes == 0 {
		return nil
	}
	gs := p.flushList[:0]
	for i := range p.groups {
		if p.gbytes[i] != 0 {
			gs = append(gs, i)
		}
	}
	p.flushList = gs
	return p.flush(gs)
}

// flush writes the changes buffered for key groups gs in one batch, each
// key group's keys in order, and then empties their buffers.
func (p *pebbleBackend) flush(gs []int) error {
	b := p.db.NewBatch()
	defer b.Close()
	for _, i := range gs {
		ws, s := p.dirty[:0], &p.sorter
		s.reset()
		for _, w := range p.groups[i] {
			for ; w != nil; w = w.next {
				if w.dirty {
					s.end(s.startBytes(w.key()), int(w.klen), 0, len(ws))
					ws = append(ws, w)
				}
			}
		}
		s.sort()
		for e := range s.sorted {
			w := ws[e.ref]
			var err error
			if w.del {
				err = b.Delete(w.key(), nil)
			} else {
				err = b.Set(w.key(), w.val(), nil)
			}
			if err != nil {
				return err
			}
		}
		clear(ws)
		p.dirty = ws[:0]
	}
	if !b.Empty() {
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		p.flushes++
	}
	for _, i := range gs {
		p.discardGroup(i)
	}
	return nil
}

// discardGroup drops key group i's buffer without writing it.
func (p *pebbleBackend) discardGroup(i int) {
	if g := p.groups[i]; len(g) > 0 {
		if len(g) > 4096 { // a big map's memory is not worth keeping
			p.groups[i] = nil
		} else {
			clear(g)
		}
	}
	p.bytes -= p.gbytes[i]
	p.gbytes[i], p.gkeys[i] = 0, 0
	if p.lastI == i {
		p.last = nil
	}
}

func (p *pebbleBackend) discardAll() {
	for i := range p.groups {
		p.discardGroup(i)
	}
}

func (p *pebbleBackend) scan(ks keyedState, kg int, now int64, fn entryFunc) error {
	b := ks.base()
	lo, hi := KeyGroupBounds(b.id, kg)
	return p.scanRange(b, kg-p.st.r.Start, lo, hi, now, func(k []byte, ts int64, enc []byte) error {
		return fn(k[len(lo):], ts, enc)
	})
}

// scanRange calls fn with the Pebble key, timestamp and encoding of every
// live entry of state b in [lo, hi), a range within key group i, in key
// order: Pebble's entries merged with the buffered changes, which need not
// be flushed first. fn may read states (MapState.Range hands the entries to
// the caller), but not change state b in [lo, hi).
func (p *pebbleBackend) scanRange(b *stateBase, i int, lo, hi []byte, now int64, fn func(k []byte, ts int64, enc []byte) error) (err error) {
	sc := &p.scan0
	if p.scanning { // a scan within a scan: fresh scratch
		sc = &scanScratch{}
	} else {
		p.scanning = true
		defer func() { p.scanning = false }()
	}
	// The buffered changes in [lo, hi), sorted. (Clean entries are what
	// Pebble holds.) The entries stay valid if fn's reads flush them.
	ws, s := sc.ws[:0], &sc.sorter
	s.reset()
	for _, w := range p.groups[i] {
		for ; w != nil; w = w.next {
			if k := w.key(); w.dirty && bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				s.end(s.startBytes(k), len(k), 0, len(ws))
				ws = append(ws, w)
			}
		}
	}
	s.sort()
	defer func() {
		clear(ws)
		sc.ws = ws[:0]
	}()
	emit := func(k, v []byte) error {
		ts, enc, err := b.storedValue(v)
		if err != nil || !b.live(ts, now) {
			return err
		}
		return fn(k, ts, enc)
	}

	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	valid, j := it.First(), 0
	for valid || j < len(s.order) {
		var w *pendingWrite
		c := 1 // > 0: Pebble's next key comes first
		if j < len(s.order) {
			w, c = ws[s.ents[s.order[j].idx].ref], -1
			if valid {
				c = bytes.Compare(w.key(), it.Key())
			}
		}
		if c <= 0 { // a buffered change comes first, or supersedes Pebble's entry
			if c == 0 {
				valid = it.Next()
			}
			j++
			if !w.del {
				if err := emit(w.key(), w.val()); err != nil {
					return err
				}
			}
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := emit(it.Key(), v); err != nil {
			return err
		}
		valid = it.Next()
	}
	return it.Error()
}

func (p *pebbleBackend) newLoader(kg int, restore bool) (groupLoader, error) {
	l := &pebbleLoader{p: p, kg: kg, b: p.db.NewBatch(), restore: restore}
	if restore {
		// Delete what the key group holds, key by key: usually nothing. (A
		// range deletion per restore would be simpler, but Pebble fragments
		// all of a memtable's range deletions again at the first read after
		// each one: many restores, each followed by reads, go quadratic.)
		// Buffered changes are discarded at commit.
		for _, ks := range p.st.states {
			lo, hi := KeyGroupBounds(ks.base().id, kg)
			if err := p.deleteRange(l.b, lo, hi); err != nil {
				l.abort()
				return nil, err
			}
		}
	}
	return l, nil
}

// deleteRange adds to b a deletion of every key Pebble holds in [lo, hi).
func (p *pebbleBackend) deleteRange(b *pebble.Batch, lo, hi []byte) (err error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for valid := it.First(); valid; valid = it.Next() {
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
	}
	return it.Error()
}

func (p *pebbleBackend) drop(kg int) error {
	p.discardGroup(kg - p.st.r.Start)
	b := p.db.NewBatch()
	defer b.Close()
	for _, ks := range p.st.states {
		lo, hi := KeyGroupBounds(ks.base().id, kg)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// pebbleLoader stages a key group's entries in one batch; Pebble applies
// a batch atomically.
type pebbleLoader struct {
	p       *pebbleBackend
	kg      int
	b       *pebble.Batch
	restore bool
	n       int
}

func (l *pebbleLoader) add(ks keyedState, key []byte, ts int64, val []byte) error {
	if l.restore {
		if err := ks.validate(key, val); err != nil {
			return err
		}
	}
	b := ks.base()
	hdr := 0
	if b.ttl != 0 {
		hdr = 8
	}
	op := l.b.SetDeferred(4+len(key), hdr+len(val))
	binary.BigEndian.PutUint16(op.Key, uint16(b.id))
	binary.BigEndian.PutUint16(op.Key[2:], uint16(l.kg))
	copy(op.Key[4:], key)
	if hdr != 0 {
		binary.BigEndian.PutUint64(op.Value, uint64(ts))
	}
	copy(op.Value[hdr:], val)
	l.n++
	return op.Finish()
}

func (l *pebbleLoader) commit() error {
	defer l.b.Close()
	if err := l.b.Commit(pebble.NoSync); err != nil {
		return err
	}
	// The buffer holds the key group's old content (restore) or nothing.
	i := l.kg - l.p.st.r.Start
	l.p.discardGroup(i)
	l.p.loaded[i] = l.n
	return nil
}

func (l *pebbleLoader) abort() { l.b.Close() }

var _ backend = (*pebbleBackend)(nil)
