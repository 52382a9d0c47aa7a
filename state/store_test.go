package state

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// smallStore is a heap store over key groups [0-7] with a ValueState whose
// key group kg holds perKG entries.
func smallStore(t *testing.T, perKG int) (*harness, *Store, *ValueState[int64]) {
	t.Helper()
	h := newHarness(t, Heap)
	st, err := NewStore(StoreOptions{Range: KeyGroupRange{Start: 0, End: 7}, DB: h.db, StateIDs: h.ids, Clock: h.clock.Now})
	h.must(err)
	t.Cleanup(func() { st.Close() })
	v, err := NewValueState(st, "v", Int64Serializer{}, StateOptions{})
	h.must(err)
	for kg := range 8 {
		for j := range perKG {
			h.must(v.Update(kg, nil, fmt.Sprint(j), int64(j)))
		}
	}
	return h, st, v
}

func TestMigrationSteps(t *testing.T) {
	h, st, v := smallStore(t, 10)
	h.must(v.Clear(7, nil, "0")) // key group 7 has 9 entries
	if _, err := st.MigrateKeyGroup(3, Pebble); err != nil {
		t.Fatal(err)
	}
	m, err := st.NewMigration(KeyGroupsIn(st.Range()), Pebble, MigrationOptions{StepEntries: 25})
	h.must(err)
	var perStep [][]int
	for !m.Done() {
		before := len(m.Stats().Moved)
		h.must(m.Step())
		var kgs []int
		for _, mk := range m.Stats().Moved[before:] {
			kgs = append(kgs, mk.KeyGroup)
		}
		perStep = append(perStep, kgs)
	}
	// Two key groups of 10 fit 25 entries; key group 3 is already there.
	want := [][]int{{0, 1}, {2, 4}, {5, 6}, {7}}
	if fmt.Sprint(perStep) != fmt.Sprint(want) {
		t.Fatalf("steps moved %v, want %v", perStep, want)
	}
	s := m.Stats()
	if s.KeyGroups != 7 || s.Skipped != 1 || s.Entries != 69 || s.Steps != 4 || s.To != Pebble {
		t.Fatalf("stats %+v", s)
	}
	if s.MaxStep <= 0 || s.Duration < s.MaxStep {
		t.Fatalf("durations: total %v, max step %v", s.Duration, s.MaxStep)
	}
	if !slices.Equal(s.Backends, slices.Repeat([]BackendKind{Pebble}, 8)) {
		t.Fatalf("backends %v", s.Backends)
	}
	if mk := s.Moved[len(s.Moved)-1]; mk.KeyGroup != 7 || mk.From != Heap || mk.To != Pebble || mk.Entries != 9 {
		t.Fatalf("last move %+v", mk)
	}
	h.must(m.Step()) // a done migration steps to nothing
	if m.Stats().Steps != 4 {
		t.Fatal("a step after the end counted")
	}

	// Back, with Store.Migrate: Pebble key groups are sized by their last
	// load, so the steps are the same.
	calls := 0
	s, err = st.Migrate([]int{0, 1, 2, 3, 4, 5, 6, 7}, Heap, MigrationOptions{StepEntries: 25}, func() error { calls++; return nil })
	h.must(err)
	if s.Steps != 4 || calls != 3 || s.Entries != 79 {
		t.Fatalf("back to heap: %d steps, %d calls between, %d entries", s.Steps, calls, s.Entries)
	}
	got, ok, err := v.Value(7, nil, "5")
	wantValue(t, "value after two migrations", got, ok, err, 5, true)

	// An error between steps stops the migration.
	stop := errors.New("stop")
	s, err = st.Migrate(KeyGroupsIn(st.Range()), Pebble, MigrationOptions{StepEntries: 1}, func() error { return stop })
	if !errors.Is(err, stop) || s.KeyGroups != 1 {
		t.Fatalf("migration with a failing callback: %d key groups, %v", s.KeyGroups, err)
	}
	if b, _ := st.Backend(0); b != Pebble {
		t.Fatal("key group 0 not moved")
	}
	if b, _ := st.Backend(1); b != Heap {
		t.Fatal("key group 1 moved after the callback failed")
	}
}

func TestMigrationDropsExpiredEntries(t *testing.T) {
	h := newHarness(t, Heap)
	h.must(h.s.ttlValue.Update(40, nil, "old", "o"))
	h.clock.Advance(50 * time.Second)
	h.must(h.s.ttlValue.Update(40, nil, "new", "n"))
	h.clock.Advance(20 * time.Second)
	mk, err := h.st.MigrateKeyGroup(40, Pebble)
	h.must(err)
	if mk.Entries != 1 {
		t.Fatalf("moved %d entries, want 1 (one expired)", mk.Entries)
	}
	mk, err = h.st.MigrateKeyGroup(40, Heap)
	h.must(err)
	if mk.Entries != 1 {
		t.Fatalf("moved %d entries back, want 1", mk.Entries)
	}
}

func TestMigrationErrors(t *testing.T) {
	heapOnly, err := NewStore(StoreOptions{Range: KeyGroupRange{Start: 0, End: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := heapOnly.MigrateKeyGroup(1, Pebble); !errors.Is(err, ErrNoPebble) {
		t.Fatalf("MigrateKeyGroup without a DB: %v", err)
	}
	if _, err := heapOnly.NewMigration([]int{1}, Pebble, MigrationOptions{}); !errors.Is(err, ErrNoPebble) {
		t.Fatalf("NewMigration without a DB: %v", err)
	}
	if mk, err := heapOnly.MigrateKeyGroup(1, Heap); err != nil || mk.Entries != 0 || mk.From != Heap {
		t.Fatalf("migration to where it is: %+v, %v", mk, err)
	}
	if _, err := heapOnly.MigrateKeyGroup(1, BackendKind(9)); err == nil {
		t.Fatal("migration to an unknown backend")
	}
	if _, err := heapOnly.NewMigration([]int{1, 4}, Heap, MigrationOptions{}); !errors.Is(err, ErrKeyGroupOutOfRange) {
		t.Fatalf("NewMigration with key group 4 of [0-3]: %v", err)
	}
	if _, err := heapOnly.NewMigration([]int{1}, Heap, MigrationOptions{StepEntries: -1}); err == nil || !strings.Contains(err.Error(), "StepEntries") {
		t.Fatalf("negative StepEntries: %v", err)
	}
}

func TestStoreOptionsValidate(t *testing.T) {
	db := &PebbleDB{}
	cases := []struct {
		opts  StoreOptions
		field string
	}{
		{StoreOptions{Range: KeyGroupRange{Start: -1, End: 3}}, "Range"},
		{StoreOptions{Range: KeyGroupRange{Start: 4, End: 3}}, "Range"},
		{StoreOptions{Range: KeyGroupRange{Start: 0, End: MaxMaxParallelism}}, "Range"},
		{StoreOptions{Backend: 7}, "Backend"},
		{StoreOptions{Backend: Pebble}, "DB"},
		{StoreOptions{DB: db}, "StateIDs"},
		{StoreOptions{WriteBufferSize: -1}, "WriteBufferSize"},
	}
	for _, c := range cases {
		err := c.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), "StoreOptions."+c.field) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.opts, err, c.field)
		}
		if _, err := NewStore(c.opts); err == nil {
			t.Errorf("NewStore(%+v) succeeded", c.opts)
		}
	}
	if err := (StoreOptions{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

func TestRegisterErrors(t *testing.T) {
	st, err := NewStore(StoreOptions{Range: KeyGroupRange{Start: 0, End: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewValueState(st, "a", Int64Serializer{}, StateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"duplicate":          second(NewValueState(st, "a", Int64Serializer{}, StateOptions{})),
		"empty name":         second(NewValueState(st, "", Int64Serializer{}, StateOptions{})),
		"long name":          second(NewValueState(st, strings.Repeat("n", maxStateNameLen+1), Int64Serializer{}, StateOptions{})),
		"nil serializer":     second(NewValueState[int64](st, "b", nil, StateOptions{})),
		"nil map serializer": second(NewMapState[string, int64](st, "c", StringSerializer{}, nil, StateOptions{})),
		"nil reduce":         second(NewReducingState(st, "d", nil, Int64Serializer{}, StateOptions{})),
		"nil aggregate":      second(NewAggregatingState[float64, avgAcc, float64](st, "e", nil, avgSerializer{}, StateOptions{})),
		"negative TTL":       second(NewListState(st, "f", Int64Serializer{}, StateOptions{TTL: -time.Second})),
		"TTL below 1ms":      second(NewListState(st, "g", Int64Serializer{}, StateOptions{TTL: time.Microsecond})),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestCloseDropsEverything(t *testing.T) {
	h := newHarness(t, Pebble)
	fill(t, h.s, 40, 5)
	h.must(h.st.Flush())
	if _, err := h.st.MigrateKeyGroup(41, Heap); err != nil {
		t.Fatal(err)
	}
	fill(t, h.s, 41, 5)
	fill(t, h.s, 42, 5) // buffered only
	h.must(h.st.Close())
	h.must(h.st.Close())
	it, err := h.db.DB().NewIter(&pebble.IterOptions{})
	h.must(err)
	for it.First(); it.Valid(); it.Next() {
		t.Fatalf("key %x survived Close", it.Key())
	}
	h.must(it.Close())
	if err := h.s.value.Update(40, nil, "k", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
	if err := h.st.SnapshotKeyGroup(40, &bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("snapshot after Close: %v", err)
	}
	if _, err := h.st.NewMigration(nil, Heap, MigrationOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("migration after Close: %v", err)
	}
	// Its ids are free again.
	if id, err := h.ids.Next(); err != nil || id > 9 {
		t.Fatalf("next id after Close = %d, %v; want one of the store's", id, err)
	}
}

func TestStoresSharingADB(t *testing.T) {
	h := newHarness(t, Pebble)
	other, os := h.newStore(Pebble)
	h.must(h.s.value.Update(40, nil, "k", 1))
	h.must(os.value.Update(40, nil, "k", 2))
	h.must(h.st.Flush())
	h.must(other.Flush())
	got, ok, err := h.s.value.Value(40, nil, "k")
	wantValue(t, "first store", got, ok, err, 1, true)
	got, ok, err = os.value.Value(40, nil, "k")
	wantValue(t, "second store", got, ok, err, 2, true)
	h.must(other.Close())
	got, ok, err = h.s.value.Value(40, nil, "k")
	wantValue(t, "first store after the second closed", got, ok, err, 1, true)
}

func TestWriteBufferBound(t *testing.T) {
	db, err := OpenPebble(filepath.Join(t.TempDir(), "pebble"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const limit = 16 << 10
	st, err := NewStore(StoreOptions{Range: KeyGroupRange{Start: 0, End: 15}, Backend: Pebble, DB: db, StateIDs: &StateIDAllocator{}, WriteBufferSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := NewReducingState(st, "sum", func(a, b int64) int64 { return a + b }, Int64Serializer{}, StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	long, err := NewListState(st, "list", StringSerializer{}, StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for j := range 2000 {
			if err := sum.Add(j%16, nil, fmt.Sprint(j), int64(round)); err != nil {
				t.Fatal(err)
			}
			if s := st.Stats(); s.BufferedBytes > limit+pendingOverhead+64 {
				t.Fatalf("buffer at %d bytes, bound %d", s.BufferedBytes, limit)
			}
		}
		if err := long.Add(3, nil, "l", strings.Repeat("x", 100)); err != nil { // grows past the inline space
			t.Fatal(err)
		}
	}
	if s := st.Stats(); s.Flushes == 0 {
		t.Fatal("the buffer never flushed")
	}
	for j := range 2000 {
		got, ok, err := sum.Get(j%16, nil, fmt.Sprint(j))
		wantValue(t, "sum", got, ok, err, 3, true)
	}
	l, err := long.Get(3, nil, "l")
	if err != nil || len(l) != 3 {
		t.Fatalf("list = %d elements, %v", len(l), err)
	}
}

func TestStateIDAllocator(t *testing.T) {
	var a StateIDAllocator
	seen := map[StateID]bool{}
	for range 1<<16 - 1 {
		id, err := a.Next()
		if err != nil || id == 0 || seen[id] {
			t.Fatalf("Next = %d, %v", id, err)
		}
		seen[id] = true
	}
	if _, err := a.Next(); !errors.Is(err, ErrStateIDsExhausted) {
		t.Fatalf("Next with every id in use: %v", err)
	}
	a.Release(77)
	if id, err := a.Next(); err != nil || id != 77 {
		t.Fatalf("Next after Release(77) = %d, %v", id, err)
	}
}

// A MapState.Range callback may read states, even when the reads flush the
// write buffer under the scan, and may range over another map.
func TestRangeCallbackMayRead(t *testing.T) {
	for _, b := range []BackendKind{Heap, Pebble} {
		t.Run(b.String(), func(t *testing.T) {
			db, err := OpenPebble(filepath.Join(t.TempDir(), "pebble"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := NewStore(StoreOptions{Range: KeyGroupRange{Start: 0, End: 1}, Backend: b, DB: db, StateIDs: &StateIDAllocator{}, WriteBufferSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			m, err := NewMapState(st, "m", Int64Serializer{}, Int64Serializer{}, StateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValueState(st, "v", Int64Serializer{}, StateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for uk := range int64(20) {
				if err := m.Put(1, nil, "a", uk, uk*10); err != nil {
					t.Fatal(err)
				}
				if err := m.Put(1, nil, "b", uk, -uk); err != nil {
					t.Fatal(err)
				}
			}
			if err := v.Update(1, nil, "x", 5); err != nil {
				t.Fatal(err)
			}
			if err := m.Remove(1, nil, "a", 3); err != nil { // buffered when Range starts
				t.Fatal(err)
			}
			got := map[int64]int64{}
			inner := 0
			err = m.Range(1, nil, "a", func(uk, uv int64) bool {
				if _, _, err := v.Value(1, nil, "x"); err != nil { // flushes: the buffer is over its bound
					t.Fatal(err)
				}
				if _, _, err := m.Get(1, nil, "a", uk); err != nil {
					t.Fatal(err)
				}
				if err := m.Range(1, nil, "b", func(int64, int64) bool { inner++; return true }); err != nil {
					t.Fatal(err)
				}
				got[uk] = uv
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 19 || got[19] != 190 || inner != 19*20 {
				t.Fatalf("Range saw %d entries (%v), inner ranges %d", len(got), got, inner)
			}
			if _, ok := got[3]; ok {
				t.Fatal("Range saw a removed user key")
			}
		})
	}
}
