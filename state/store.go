package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// BackendKind names the backend a key group lives on.
type BackendKind uint8

const (
	// Heap keeps a key group's entries as typed values in Go maps.
	Heap BackendKind = iota + 1
	// Pebble keeps a key group's entries serialized in the worker's PebbleDB.
	Pebble
)

func (k BackendKind) String() string {
	switch k {
	case Heap:
		return "heap"
	case Pebble:
		return "pebble"
	}
	return fmt.Sprintf("BackendKind(%d)", uint8(k))
}

// Errors of a Store, wrapped with the operation and key group.
var (
	ErrKeyGroupOutOfRange = errors.New("state: key group outside the store's range")
	ErrNoPebble           = errors.New("state: store has no Pebble database")
	ErrClosed             = errors.New("state: store is closed")
)

// DefaultWriteBufferSize is the default bound of a Store's Pebble write
// buffer, in (approximate) bytes.
const DefaultWriteBufferSize = 32 << 20

// StoreOptions configure a Store. The zero value of every field but Range
// is a safe default.
type StoreOptions struct {
	// Range is the key groups of the subtask.
	Range KeyGroupRange
	// Backend is where every key group starts: Heap (the default) or Pebble.
	Backend BackendKind
	// DB is the worker's Pebble store. Without it the store is heap-only and
	// migrating to Pebble fails with ErrNoPebble.
	DB *PebbleDB
	// StateIDs allocates the key prefixes of the store's states in DB; it is
	// shared by every Store on DB and required with DB.
	StateIDs *StateIDAllocator
	// Clock is the time that TTLs are measured in; time.Now by default.
	Clock func() time.Time
	// WriteBufferSize bounds the Pebble write buffer, in bytes
	// (DefaultWriteBufferSize by default). A larger buffer absorbs more
	// read-modify-write traffic in memory; flushing a full one stalls the
	// task for longer.
	WriteBufferSize int
}

// Validate reports the first invalid field.
func (o StoreOptions) Validate() error {
	r := o.Range
	switch {
	case r.Start < 0 || r.End < r.Start || r.End >= MaxMaxParallelism:
		return fmt.Errorf("state: StoreOptions.Range %s is not a key group range within [0-%d]", r, MaxMaxParallelism-1)
	case o.Backend != 0 && o.Backend != Heap && o.Backend != Pebble:
		return fmt.Errorf("state: StoreOptions.Backend %s is not heap or pebble", o.Backend)
	case o.Backend == Pebble && o.DB == nil:
		return fmt.Errorf("state: StoreOptions.Backend is pebble but StoreOptions.DB is nil: %w", ErrNoPebble)
	case o.DB != nil && o.StateIDs == nil:
		return errors.New("state: StoreOptions.StateIDs is required with a DB: stores sharing a DB need distinct state ids")
	case o.WriteBufferSize < 0:
		return fmt.Errorf("state: StoreOptions.WriteBufferSize %d is negative", o.WriteBufferSize)
	}
	return nil
}

// Store holds the keyed states of one subtask: every state registered with
// it, for every key group of the subtask's range. Each key group lives on
// one backend, heap or Pebble, chosen per key group and changed by
// MigrateKeyGroup; a state's reads and writes go to the backend of the key
// group they address.
//
// A Store and its states belong to one task goroutine and are not safe for
// concurrent use. Several Stores may share one PebbleDB.
type Store struct {
	r      KeyGroupRange
	route  []BackendKind // by key group - r.Start
	heap   *heapBackend
	pebble *pebbleBackend // nil without a PebbleDB
	ids    *StateIDAllocator
	clock  func() time.Time

	states []keyedState // in registration order
	names  map[string]keyedState

	key    []byte    // scratch: the key of the operation in progress
	sorter keySorter // scratch: heap entries in canonical order
	closed bool
}

// NewStore returns an empty store for the key groups of opts.Range.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Backend == 0 {
		opts.Backend = Heap
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.WriteBufferSize == 0 {
		opts.WriteBufferSize = DefaultWriteBufferSize
	}
	s := &Store{
		r:     opts.Range,
		route: make([]BackendKind, opts.Range.Len()),
		ids:   opts.StateIDs,
		clock: opts.Clock,
		names: map[string]keyedState{},
	}
	for i := range s.route {
		s.route[i] = opts.Backend
	}
	s.heap = &heapBackend{st: s}
	if opts.DB != nil {
		s.pebble = newPebbleBackend(s, opts.DB.DB(), opts.WriteBufferSize)
	}
	return s, nil
}

// Range is the key groups the store holds.
func (s *Store) Range() KeyGroupRange { return s.r }

// Backend returns the backend key group kg lives on.
func (s *Store) Backend(kg int) (BackendKind, error) {
	i, err := s.index(kg)
	if err != nil {
		return 0, err
	}
	return s.route[i], nil
}

// StoreStats describe a store's key groups and Pebble write buffer.
type StoreStats struct {
	// Backends is the backend of every key group, indexed by key group -
	// Range.Start.
	Backends []BackendKind
	// HeapKeyGroups and PebbleKeyGroups count the key groups on each backend.
	HeapKeyGroups, PebbleKeyGroups int
	// HeapEntries counts the heap backend's entries, expired ones included
	// (they are dropped lazily).
	HeapEntries int
	// BufferedKeys and BufferedBytes are the Pebble write buffer's keys
	// (written or cached) and its approximate size; Flushes counts its
	// flushes.
	BufferedKeys, BufferedBytes int
	Flushes                     uint64
}

// Stats returns the store's current figures.
func (s *Store) Stats() StoreStats {
	st := StoreStats{Backends: slices.Clone(s.route)}
	for i, b := range s.route {
		if b == Heap {
			st.HeapKeyGroups++
			for _, ks := range s.states {
				st.HeapEntries += ks.heapLen(i)
			}
		} else {
			st.PebbleKeyGroups++
		}
	}
	if p := s.pebble; p != nil {
		for _, n := range p.gkeys {
			st.BufferedKeys += n
		}
		st.BufferedBytes, st.Flushes = p.bytes, p.flushes
	}
	return st
}

// Flush writes the Pebble write buffer to Pebble and empties it. Reads,
// snapshots and migrations see buffered writes without it; Flush is for
// callers that read the PebbleDB directly, or want the buffer's memory back.
func (s *Store) Flush() error {
	if s.closed {
		return ErrClosed
	}
	if s.pebble == nil {
		return nil
	}
	if err := s.pebble.flushAll(); err != nil {
		return fmt.Errorf("state: flush write buffer: %w", err)
	}
	return nil
}

// Close drops every entry of the store, from the heap and from Pebble, and
// releases its state ids. It is idempotent; the store and its states are
// unusable afterwards.
func (s *Store) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.route = nil
	var err error
	for _, ks := range s.states {
		ks.dropAllHeap()
	}
	if p := s.pebble; p != nil {
		p.discardAll()
		b := p.db.NewBatch()
		for _, ks := range s.states {
			lo, _ := KeyGroupBounds(ks.base().id, s.r.Start)
			_, hi := KeyGroupBounds(ks.base().id, s.r.End)
			err = errors.Join(err, b.DeleteRange(lo, hi, nil))
		}
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		err = errors.Join(err, b.Close())
		if err == nil { // ids whose keys may survive are not reused
			for _, ks := range s.states {
				s.ids.Release(ks.base().id)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("state: close store %s: delete its pebble keys: %w", s.r, err)
	}
	return nil
}

// index is kg's index into the store's per-key-group slices.
func (s *Store) index(kg int) (int, error) {
	i := kg - s.r.Start
	if uint(i) >= uint(len(s.route)) {
		return 0, s.rangeErr(kg)
	}
	return i, nil
}

func (s *Store) rangeErr(kg int) error {
	if s.closed {
		return ErrClosed
	}
	return fmt.Errorf("state: key group %d outside %s: %w", kg, s.r, ErrKeyGroupOutOfRange)
}

func (s *Store) backend(b BackendKind) backend {
	if b == Heap {
		return s.heap
	}
	return s.pebble
}

// nowMillis is the clock's time, in the unit of entry timestamps.
func (s *Store) nowMillis() int64 { return s.clock().UnixMilli() }

// StateOptions configure one state.
type StateOptions struct {
	// TTL, if positive, makes an entry expire TTL after its last write:
	// reads no longer see it, and snapshots and migrations drop it. The
	// resolution is a millisecond.
	TTL time.Duration
}

// maxStateNameLen bounds state names, which snapshots carry.
const maxStateNameLen = 1 << 10

// register adds a state named name to the store. newState builds it from
// its base.
func (s *Store) register(name string, k kind, opts StateOptions, newState func(b stateBase) keyedState) error {
	switch {
	case s.closed:
		return ErrClosed
	case name == "":
		return errors.New("state: a state needs a name")
	case len(name) > maxStateNameLen:
		return fmt.Errorf("state: state name %.20q... is longer than %d bytes", name, maxStateNameLen)
	case opts.TTL < 0:
		return fmt.Errorf("state: state %q: TTL %v is negative", name, opts.TTL)
	case opts.TTL > 0 && opts.TTL < time.Millisecond:
		return fmt.Errorf("state: state %q: TTL %v is below the resolution of 1ms", name, opts.TTL)
	}
	if _, ok := s.names[name]; ok {
		return fmt.Errorf("state: state %q is already registered", name)
	}
	b := stateBase{st: s, name: name, kind: k, ttl: opts.TTL.Milliseconds()}
	if s.pebble != nil {
		id, err := s.ids.Next()
		if err != nil {
			return fmt.Errorf("state: register state %q: %w", name, err)
		}
		b.id = id
	}
	ks := newState(b)
	s.states = append(s.states, ks)
	s.names[name] = ks
	return nil
}

// sortedStates is the store's states in snapshot order (by name).
func (s *Store) sortedStates() []keyedState {
	ss := slices.Clone(s.states)
	slices.SortFunc(ss, func(a, b keyedState) int { return strings.Compare(a.base().name, b.base().name) })
	return ss
}

// kind is the kind of a state, as snapshots record it.
type kind uint8

const (
	kindValue kind = iota + 1
	kindList
	kindMap
	kindReducing
	kindAggregating
)

func (k kind) String() string {
	switch k {
	case kindValue:
		return "value"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	case kindReducing:
		return "reducing"
	case kindAggregating:
		return "aggregating"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// stateBase is what every state has: its store, name, kind, Pebble key
// prefix and TTL.
type stateBase struct {
	st   *Store
	name string
	kind kind
	id   StateID
	ttl  int64 // milliseconds; 0: entries never expire
}

func (b *stateBase) base() *stateBase { return b }

// now is the timestamp of a write, and the time reads check expiry at: the
// clock's time if the state has a TTL (0, without reading the clock, if not).
func (b *stateBase) now() int64 {
	if b.ttl == 0 {
		return 0
	}
	return b.st.nowMillis()
}

// live reports whether an entry written at ts is visible at now.
func (b *stateBase) live(ts, now int64) bool { return b.ttl == 0 || ts+b.ttl > now }

// pebbleKey puts the Pebble key of the state's entry key in kg into the
// store's scratch key; entry appends the entry key.
func (b *stateBase) pebbleKey(kg int) []byte {
	return appendStatePrefix(b.st.key[:0], b.id, kg)
}

// storedValue splits a value as the Pebble backend stores it into its
// timestamp and encoding: states with a TTL prefix the encoding with the
// time of the write (8 bytes, big-endian).
func (b *stateBase) storedValue(v []byte) (ts int64, enc []byte, err error) {
	if b.ttl == 0 {
		return 0, v, nil
	}
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("state: state %q: pebble value of %d bytes has no timestamp", b.name, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

// appendStoredHeader appends what precedes the encoding of an entry
// written at ts in its stored form.
func (b *stateBase) appendStoredHeader(dst []byte, ts int64) []byte {
	if b.ttl == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(dst, uint64(ts))
}

// readable returns the encoding in a buffered Pebble entry if the entry
// exists and has not expired at now. An expired entry is deleted.
func (b *stateBase) readable(w *pendingWrite, now int64) ([]byte, bool, error) {
	if w.del {
		return nil, false, nil
	}
	ts, enc, err := b.storedValue(w.val())
	if err != nil {
		return nil, false, err
	}
	if !b.live(ts, now) {
		b.st.pebble.remove(w)
		return nil, false, nil
	}
	return enc, true, nil
}

func (b *stateBase) errorf(op string, kg int, err error) error {
	return fmt.Errorf("state: %s state %q, key group %d: %w", op, b.name, kg, err)
}

// keyedState is a registered state as the Store sees it for whole key
// groups. i is a key group's index in the store's range.
type keyedState interface {
	base() *stateBase
	// heapLen is the number of the state's heap entries in key group i.
	heapLen(i int) int
	// heapScan calls fn for every live heap entry of key group i in
	// canonical form and order (see snapshot.go).
	heapScan(i int, now int64, fn entryFunc) error
	// heapLoader returns a loader that builds the heap entries of key group
	// i from canonical entries; nothing changes until install.
	heapLoader(i int) heapLoader
	// dropHeap deletes the heap entries of key group i; dropAllHeap all.
	dropHeap(i int)
	dropAllHeap()
	// validate checks that a canonical entry decodes.
	validate(key, val []byte) error
}

// entryFunc receives one entry in canonical form: its entry key (namespace,
// key and, for map states, user key), the time of its last write (0 for
// states without a TTL) and its encoded value. key and val are valid only
// during the call.
type entryFunc func(key []byte, ts int64, val []byte) error

// heapLoader builds one state's heap entries of one key group.
type heapLoader interface {
	add(key []byte, ts int64, val []byte) error
	install()
}

// backend is one place a Store keeps key groups: what the Store needs to
// move, snapshot and restore a whole key group. Reads and writes of single
// entries go through the states, which keep typed values on the heap and
// serialized ones in Pebble.
type backend interface {
	// scan calls fn for every live entry of state ks in key group kg, in
	// canonical form and order.
	scan(ks keyedState, kg int, now int64, fn entryFunc) error
	// newLoader starts replacing the content of key group kg. With restore,
	// entries are untrusted (validated) and the key group's current entries
	// go; without, the key group must be empty on this backend.
	newLoader(kg int, restore bool) (groupLoader, error)
	// drop deletes every entry of key group kg.
	drop(kg int) error
}

// groupLoader stages the entries of one key group; commit makes them the
// key group's content at once, abort discards them.
type groupLoader interface {
	add(ks keyedState, key []byte, ts int64, val []byte) error
	commit() error
	abort()
}

// MovedKeyGroup describes the migration of one key group.
type MovedKeyGroup struct {
	KeyGroup int
	From, To BackendKind
	// Entries is the number of live entries moved (map states count each
	// user key); expired entries are dropped, not moved.
	Entries  int
	Duration time.Duration
}

// MigrateKeyGroup moves every entry of key group kg, of every state, to
// backend to. It is atomic for the caller: on success all reads and writes
// of kg go to the new backend and see the same state; on error nothing has
// changed. Moving a key group to the backend it is on does nothing.
//
// Heap to Pebble writes one batch of the key group's entries (sorted, which
// is what makes the memtable insertion fast) and drops the maps; Pebble to
// heap reads the key group's range, decodes it into maps and deletes the
// range.
func (s *Store) MigrateKeyGroup(kg int, to BackendKind) (MovedKeyGroup, error) {
	start := time.Now()
	i, err := s.index(kg)
	if err != nil {
		return MovedKeyGroup{}, err
	}
	if to != Heap && to != Pebble {
		return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to %s: not a backend", kg, to)
	}
	if to == Pebble && s.pebble == nil {
		return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to pebble: %w", kg, ErrNoPebble)
	}
	m := MovedKeyGroup{KeyGroup: kg, From: s.route[i], To: to}
	if m.From == to {
		return m, nil
	}
	from, dst := s.backend(m.From), s.backend(to)
	ld, err := dst.newLoader(kg, false)
	if err != nil {
		return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to %s: %w", kg, to, err)
	}
	now := s.nowMillis()
	for _, ks := range s.states {
		err = from.scan(ks, kg, now, func(key []byte, ts int64, val []byte) error {
			m.Entries++
			return ld.add(ks, key, ts, val)
		})
		if err != nil {
			ld.abort()
			return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to %s: state %q: %w", kg, to, ks.base().name, err)
		}
	}
	if err := ld.commit(); err != nil {
		return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to %s: %w", kg, to, err)
	}
	if err := from.drop(kg); err != nil {
		_ = dst.drop(kg) // dropping from the heap cannot fail, and dst is the heap here
		return MovedKeyGroup{}, fmt.Errorf("state: migrate key group %d to %s: delete from %s: %w", kg, to, m.From, err)
	}
	s.route[i] = to
	m.Duration = time.Since(start)
	return m, nil
}
