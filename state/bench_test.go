package state

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// benchStore returns a store over key groups [0-127] on backend b with a
// ValueState[int64] holding n keys, and the keys with their key groups.
func benchStore(b *testing.B, backend BackendKind, n int, opts StoreOptions) (*Store, *ValueState[int64], []string, []int) {
	b.Helper()
	db, err := OpenPebble(filepath.Join(b.TempDir(), "pebble"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	opts.Range = KeyGroupRange{Start: 0, End: DefaultMaxParallelism - 1}
	opts.Backend, opts.DB, opts.StateIDs = backend, db, &StateIDAllocator{}
	st, err := NewStore(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := st.Close(); err != nil {
			b.Error(err)
		}
	})
	v, err := NewValueState(st, "count", Int64Serializer{}, StateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	keys, kgs := make([]string, n), make([]int, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08d", i)
		kgs[i] = KeyGroup(keys[i], DefaultMaxParallelism)
		if err := v.Update(kgs[i], nil, keys[i], int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Flush(); err != nil {
		b.Fatal(err)
	}
	return st, v, keys, kgs
}

// BenchmarkMigrate500k moves 500,000 entries over 128 key groups from the
// heap to Pebble and back while a producer on the same goroutine keeps
// updating keys: 2,000 read-modify-writes between two migration steps.
//
// ms/migration is the time of one full direction (its steps, not the
// producer's batches); max-stall-ms the longest step, the longest the
// producer waited. On a shared machine the wall time of a step includes
// time the OS gave to other processes: max-stall-cpu-ms is the CPU time
// the longest step (by CPU) used on the task's thread. max-call-ms is the
// longest Step call including the yield before its work, where the Go
// scheduler runs what it owes others on this goroutine's P (the GC's mark
// worker): time the producer would lose to the GC with or without a
// migration.
func BenchmarkMigrate500k(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 500_000
	const updatesPerStep = 2000
	st, v, keys, kgs := benchStore(b, Heap, n, StoreOptions{})
	all := KeyGroupsIn(st.Range())
	rng := rand.New(rand.NewPCG(1, 2))
	produce := func() {
		for range updatesPerStep {
			j := rng.IntN(n)
			c, _, err := v.Value(kgs[j], nil, keys[j])
			if err == nil {
				err = v.Update(kgs[j], nil, keys[j], c+1)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	var total, maxStall, maxCPU, maxCall time.Duration
	var migrations, entries, steps int
	b.ResetTimer()
	for range b.N {
		for _, to := range []BackendKind{Pebble, Heap} {
			m, err := st.NewMigration(all, to, MigrationOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for !m.Done() {
				c0, _ := threadCPUTime()
				w0 := time.Now()
				if err := m.Step(); err != nil {
					b.Fatal(err)
				}
				maxCall = max(maxCall, time.Since(w0))
				c1, _ := threadCPUTime()
				maxCPU = max(maxCPU, c1-c0)
				produce()
			}
			ms := m.Stats()
			if ms.KeyGroups != len(all) || ms.Entries != n {
				b.Fatalf("moved %d key groups, %d entries to %s", ms.KeyGroups, ms.Entries, to)
			}
			total += ms.Duration
			maxStall = max(maxStall, ms.MaxStep)
			migrations++
			entries += ms.Entries
			steps += ms.Steps
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(migrations), "ms/migration")
	b.ReportMetric(float64(maxStall.Microseconds())/1e3, "max-stall-ms")
	b.ReportMetric(float64(maxCall.Microseconds())/1e3, "max-call-ms")
	if _, ok := threadCPUTime(); ok {
		b.ReportMetric(float64(maxCPU.Microseconds())/1e3, "max-stall-cpu-ms")
	}
	b.ReportMetric(float64(steps)/float64(migrations), "steps/migration")
}

// BenchmarkPebbleKeyedUpdate measures read-modify-writes (Value, then
// Update) of a ValueState[int64] with 100,000 keys over 128 key groups on
// the Pebble backend, at random keys. One op is 1,000,000 updates, so that
// -benchtime 3x measures something. In "buffered" the keys fit the default
// write buffer, which a first pass over all keys fills (the steady state of
// a task whose keys fit it); in "4MiB-buffer" they do not, so most updates
// read Pebble and the buffer flushes often.
func BenchmarkPebbleKeyedUpdate(b *testing.B) {
	const n = 100_000
	const perOp = 1_000_000
	for _, c := range []struct {
		name string
		buf  int
	}{{"buffered", 0}, {"4MiB-buffer", 4 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			st, v, keys, kgs := benchStore(b, Pebble, n, StoreOptions{WriteBufferSize: c.buf})
			rmw := func(j int) {
				c, _, err := v.Value(kgs[j], nil, keys[j])
				if err == nil {
					err = v.Update(kgs[j], nil, keys[j], c+1)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			for j := range n {
				rmw(j)
			}
			idx := make([]int32, perOp)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range idx {
				idx[i] = int32(rng.IntN(n))
			}
			flushes := st.Stats().Flushes
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for _, j := range idx {
					rmw(int(j))
				}
			}
			b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "updates/s")
			b.ReportMetric(float64(st.Stats().Flushes-flushes)/float64(b.N), "flushes/op")
		})
	}
}

// BenchmarkCheckpoint500k snapshots all 128 key groups of 500,000 entries
// on each backend.
func BenchmarkCheckpoint500k(b *testing.B) {
	for _, backend := range []BackendKind{Heap, Pebble} {
		b.Run(backend.String(), func(b *testing.B) {
			st, _, _, _ := benchStore(b, backend, 500_000, StoreOptions{})
			var size int64
			b.ResetTimer()
			for range b.N {
				w := &countingWriter{}
				for kg := range DefaultMaxParallelism {
					if err := st.SnapshotKeyGroup(kg, w); err != nil {
						b.Fatal(err)
					}
				}
				size = w.n
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/checkpoint")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
