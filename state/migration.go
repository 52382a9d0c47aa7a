package state

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

// DefaultStepEntries is the default entry budget of one migration step.
const DefaultStepEntries = 4096

// MigrationOptions configure a Migration.
type MigrationOptions struct {
	// StepEntries bounds the work of one step: a step moves whole key groups
	// while their entries fit the budget (a Pebble key group's size is
	// estimated: its size when it was last loaded). A key group larger than
	// the budget moves alone. DefaultStepEntries if zero.
	StepEntries int
}

// MigrationStats describe a migration so far.
type MigrationStats struct {
	To BackendKind
	// KeyGroups counts the key groups moved; Skipped those already on To.
	KeyGroups, Skipped int
	// Entries counts the entries moved.
	Entries int
	// Steps counts the steps that moved something; Duration is their total
	// time, MaxStep the longest (the longest the caller was held up).
	Steps    int
	Duration time.Duration
	MaxStep  time.Duration
	// Moved is every key group moved, in order.
	Moved []MovedKeyGroup
	// Backends is the backend of every key group of the store, indexed by
	// key group - Range.Start, when the stats were taken.
	Backends []BackendKind
}

// Migration moves a list of key groups of a Store to one backend, a slice
// of key groups per Step. The task goroutine drives it between records, so
// that processing goes on during the migration and no record sees a
// half-moved key group (each key group moves atomically, see
// MigrateKeyGroup).
type Migration struct {
	st    *Store
	kgs   []int
	to    BackendKind
	next  int
	opts  MigrationOptions
	stats MigrationStats
}

// NewMigration prepares the migration of key groups kgs to backend to.
func (s *Store) NewMigration(kgs []int, to BackendKind, opts MigrationOptions) (*Migration, error) {
	if opts.StepEntries < 0 {
		return nil, fmt.Errorf("state: MigrationOptions.StepEntries %d is negative", opts.StepEntries)
	}
	if opts.StepEntries == 0 {
		opts.StepEntries = DefaultStepEntries
	}
	switch {
	case s.closed:
		return nil, ErrClosed
	case to != Heap && to != Pebble:
		return nil, fmt.Errorf("state: migrate to %s: not a backend", to)
	case to == Pebble && s.pebble == nil:
		return nil, fmt.Errorf("state: migrate to pebble: %w", ErrNoPebble)
	}
	for _, kg := range kgs {
		if _, err := s.index(kg); err != nil {
			return nil, fmt.Errorf("state: migrate to %s: %w", to, err)
		}
	}
	return &Migration{st: s, kgs: slices.Clone(kgs), to: to, opts: opts, stats: MigrationStats{To: to}}, nil
}

// KeyGroupsIn lists the key groups of r, for NewMigration.
func KeyGroupsIn(r KeyGroupRange) []int {
	kgs := make([]int, 0, r.Len())
	for kg := r.Start; kg <= r.End; kg++ {
		kgs = append(kgs, kg)
	}
	return kgs
}

// Done reports whether every key group has moved.
func (m *Migration) Done() bool { return m.next == len(m.kgs) }

// Step moves the next slice of key groups. After an error the migration
// can be stepped again: it resumes with the key group that failed.
func (m *Migration) Step() error {
	// Let the Go scheduler run what waits for this goroutine's P first: a
	// task goroutine that has not blocked for a while owes the GC's
	// fractional mark worker its share of the P, and the worker takes it in
	// one piece (several milliseconds on two cores) when it gets the P. Paid
	// here, that time falls between steps instead of inside one.
	runtime.Gosched()
	start := time.Now()
	moved, groups, budget := 0, 0, m.opts.StepEntries
	s := m.st
	for m.next < len(m.kgs) {
		kg := m.kgs[m.next]
		i, err := s.index(kg)
		if err != nil {
			return err
		}
		if s.route[i] == m.to {
			m.next++
			m.stats.Skipped++
			continue
		}
		if moved > 0 && moved+s.entriesEstimate(i) > budget {
			break
		}
		mk, err := s.MigrateKeyGroup(kg, m.to)
		if err != nil {
			m.account(start, groups)
			return err
		}
		m.next++
		groups++
		moved += mk.Entries
		m.stats.KeyGroups++
		m.stats.Entries += mk.Entries
		m.stats.Moved = append(m.stats.Moved, mk)
		if moved >= budget {
			break
		}
	}
	m.account(start, groups)
	return nil
}

// account records a step that moved groups key groups.
func (m *Migration) account(start time.Time, groups int) {
	if groups == 0 {
		return // only skipped key groups, or a failure
	}
	d := time.Since(start)
	m.stats.Steps++
	m.stats.Duration += d
	m.stats.MaxStep = max(m.stats.MaxStep, d)
}

// entriesEstimate estimates the entries of key group i: exact on the heap,
// the count when it was last loaded on Pebble.
func (s *Store) entriesEstimate(i int) int {
	if s.route[i] == Pebble {
		return s.pebble.loaded[i]
	}
	n := 0
	for _, ks := range s.states {
		n += ks.heapLen(i)
	}
	return n
}

// Stats returns the migration's figures so far.
func (m *Migration) Stats() MigrationStats {
	st := m.stats
	st.Moved = slices.Clone(st.Moved)
	st.Backends = slices.Clone(m.st.route)
	return st
}

// Migrate moves key groups kgs to backend to, a step at a time, calling
// between (if not nil) after every step but the last: the caller processes
// records there. An error of between stops the migration and is returned.
func (s *Store) Migrate(kgs []int, to BackendKind, opts MigrationOptions, between func() error) (MigrationStats, error) {
	m, err := s.NewMigration(kgs, to, opts)
	if err != nil {
		return MigrationStats{}, err
	}
	for !m.Done() {
		if err := m.Step(); err != nil {
			return m.Stats(), err
		}
		if between != nil && !m.Done() {
			if err := between(); err != nil {
				return m.Stats(), err
			}
		}
	}
	return m.Stats(), nil
}
