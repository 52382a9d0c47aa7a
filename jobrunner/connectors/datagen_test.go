package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

func TestDatagenConfigValidate(t *testing.T) {
	b, err := os.ReadFile("testdata/datagen_configs.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name   string
		Config DatagenConfig
		Field  string
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			err := tc.Config.Validate()
			if tc.Field == "" {
				if err != nil {
					t.Fatalf("valid config rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.Field+":") {
				t.Fatalf("error %v, want ErrInvalidConfig naming %s", err, tc.Field)
			}
		})
	}
}

// openDatagen opens subtask index of par.
func openDatagen(t *testing.T, cfg DatagenConfig, index, par int, state []byte) flow.Source {
	t.Helper()
	f, err := NewDatagenSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := f(index, par, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Record n is the same whatever the parallelism: subtask i of p produces
// exactly the records n ≡ i (mod p) of a single subtask's sequence.
func TestDatagenSplitsAreDeterministic(t *testing.T) {
	for _, cfg := range []DatagenConfig{
		{Count: 1000, Keys: 17, Seed: 3, StartTime: 1000, Disorder: 20},
		{Count: 1000, Keys: 50, KeySkew: 1.5, Seed: 4, StartTime: 1000, Values: ValueDist{Dist: DistNormal, Mean: 10, Stddev: 3}},
		{Count: 999, Keys: 5, Seed: 5, StartTime: 1000, Values: ValueDist{Dist: DistExponential, Mean: 2}},
	} {
		all, eof := readN(t, openDatagen(t, cfg, 0, 1, nil), -1, 64)
		if !eof || int64(len(all)) != cfg.Count {
			t.Fatalf("one subtask: %d records (eof %v), want %d", len(all), eof, cfg.Count)
		}
		const par = 3
		got := make([]rec, cfg.Count)
		n := 0
		for i := 0; i < par; i++ {
			part, _ := readN(t, openDatagen(t, cfg, i, par, nil), -1, 10)
			for k, r := range part {
				got[i+k*par] = r
				n++
			}
		}
		if n != int(cfg.Count) || !reflect.DeepEqual(got, all) {
			t.Fatalf("%d records from %d subtasks differ from one subtask's", n, par)
		}
	}
}

func TestDatagenReplaysFromSnapshot(t *testing.T) {
	cfg := DatagenConfig{Count: 500, Keys: 9, Seed: 11, StartTime: 5000, Disorder: 7}
	src := openDatagen(t, cfg, 1, 2, nil)
	readN(t, src, 40, 16)
	st, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	rest, eof := readN(t, src, -1, 16)
	replay, eof2 := readN(t, openDatagen(t, cfg, 1, 2, st), -1, 7)
	if !eof || !eof2 || len(rest) != 250-40 || !reflect.DeepEqual(rest, replay) {
		t.Fatalf("replay of %d records differs from the %d read after the snapshot", len(replay), len(rest))
	}

	f, _ := NewDatagenSource(cfg)
	for _, bad := range []struct {
		index, par int
		state      string
	}{
		{0, 2, string(st)}, // another subtask's position
		{1, 3, string(st)}, // another parallelism
		{1, 2, `{"next":`},
	} {
		if _, err := f(bad.index, bad.par, []byte(bad.state)); !errors.Is(err, ErrBadState) {
			t.Errorf("restore of %s into %d/%d: %v, want ErrBadState", bad.state, bad.index, bad.par, err)
		}
	}
}

// A zero StartTime is resolved once, and kept in the state.
func TestDatagenStartTimeKeptInState(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	cfg := DatagenConfig{Count: 10, now: func() time.Time { return now }}
	src := openDatagen(t, cfg, 0, 1, nil)
	first, _ := readN(t, src, 3, 3)
	if first[0].Time != now.UnixMilli() {
		t.Fatalf("record 0 at %d, want the wall clock %d", first[0].Time, now.UnixMilli())
	}
	st, _ := src.Snapshot()
	later := cfg
	later.now = func() time.Time { return now.Add(time.Hour) }
	next, _ := readN(t, openDatagen(t, later, 0, 1, st), 1, 1)
	if next[0].Time != now.UnixMilli()+3 {
		t.Fatalf("restored record 3 at %d, want %d", next[0].Time, now.UnixMilli()+3)
	}
}

func TestDatagenDistributions(t *testing.T) {
	const n = 20000
	stats := func(cfg DatagenConfig) (mean float64, lo, hi float64, keys map[string]int, maxLag int64) {
		cfg.Count, cfg.StartTime = n, 1_000_000
		recs, _ := readN(t, openDatagen(t, cfg, 0, 1, nil), -1, 512)
		keys = map[string]int{}
		lo, hi = math.Inf(1), math.Inf(-1)
		for i, r := range recs {
			v := r.Row[1].Float()
			mean += v / n
			lo, hi = min(lo, v), max(hi, v)
			keys[r.Row[0].S]++
			if r.Row[2].Int() != r.Time {
				t.Fatalf("ts field %d differs from record time %d", r.Row[2].Int(), r.Time)
			}
			base := cfg.StartTime + int64(i)
			if cfg.Rate > 0 {
				base = cfg.StartTime + int64(float64(i)*1000/cfg.Rate)
			}
			if r.Time > base {
				t.Fatalf("record %d at %d, after its place %d", i, r.Time, base)
			}
			maxLag = max(maxLag, base-r.Time)
		}
		return
	}
	t.Run("uniform", func(t *testing.T) {
		mean, lo, hi, keys, lag := stats(DatagenConfig{Keys: 10, Values: ValueDist{Min: 10, Max: 20}, Disorder: 50})
		if lo < 10 || hi >= 20 || math.Abs(mean-15) > 0.2 {
			t.Errorf("values in [%v, %v] with mean %v, want [10, 20) around 15", lo, hi, mean)
		}
		if len(keys) != 10 || keys["k0"] < n/10*8/10 || keys["k9"] < n/10*8/10 {
			t.Errorf("keys %v are not uniform over k0..k9", keys)
		}
		if lag > 50 || lag < 40 {
			t.Errorf("largest disorder %d ms, want close to and at most 50", lag)
		}
	})
	t.Run("normal", func(t *testing.T) {
		mean, _, _, _, lag := stats(DatagenConfig{Values: ValueDist{Dist: DistNormal, Mean: -4, Stddev: 2}})
		if math.Abs(mean+4) > 0.1 || lag != 0 {
			t.Errorf("mean %v (want about -4), disorder %d (want 0)", mean, lag)
		}
	})
	t.Run("exponential", func(t *testing.T) {
		mean, lo, _, _, _ := stats(DatagenConfig{Values: ValueDist{Dist: DistExponential, Mean: 3}})
		if math.Abs(mean-3) > 0.15 || lo < 0 {
			t.Errorf("mean %v (want about 3), min %v", mean, lo)
		}
	})
	t.Run("zipf", func(t *testing.T) {
		_, _, _, keys, _ := stats(DatagenConfig{Keys: 100, KeySkew: 1.5, Rate: 1e9})
		if keys["k0"] < keys["k1"] || keys["k1"] < keys["k5"] || keys["k0"] < n/3 {
			t.Errorf("keys not Zipf-skewed towards k0: k0 %d, k1 %d, k5 %d", keys["k0"], keys["k1"], keys["k5"])
		}
		for k := range keys {
			var i int
			if _, err := fmtSscan(k, &i); err != nil || i < 0 || i >= 100 {
				t.Fatalf("key %q outside k0..k99", k)
			}
		}
	})
}

// With a rate, a subtask emits only what the (injected) clock says is due:
// rate/p per second, the first record at once.
func TestDatagenPacing(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	src := openDatagen(t, DatagenConfig{Rate: 100, StartTime: 1, now: clock}, 1, 2, nil)
	ctx := context.Background()
	buf := make([]flow.Record, 0, 512)
	count := func() int {
		recs, err := src.Read(ctx, buf[:0], 512)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d records at the start, want 1", n)
	}
	if n := count(); n != 0 { // waits at most ~50ms of real time
		t.Fatalf("%d records before any time passed, want 0", n)
	}
	advance(time.Second)
	if n := count(); n != 50 {
		t.Fatalf("%d records after 1s at 100/s over 2 subtasks, want 50", n)
	}
	advance(100 * time.Millisecond)
	if n := count(); n != 5 {
		t.Fatalf("%d records after 100ms more, want 5", n)
	}
}

func TestDatagenReadDoesNotAllocate(t *testing.T) {
	for name, cfg := range map[string]DatagenConfig{
		"uniform": {Keys: 1000, Seed: 1, StartTime: 1},
		"zipf":    {Keys: 1000, KeySkew: 1.1, Seed: 1, StartTime: 1, Values: ValueDist{Dist: DistNormal}},
	} {
		src := openDatagen(t, cfg, 0, 2, nil)
		buf := make([]flow.Record, 0, 256)
		ctx := context.Background()
		src.Read(ctx, buf, 256) // sizes the row buffer
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := src.Read(ctx, buf[:0], 256); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Read, want 0", name, allocs)
		}
	}
}

func BenchmarkDatagen(b *testing.B) {
	for name, cfg := range map[string]DatagenConfig{
		"uniform": {Keys: 10000, StartTime: 1},
		"zipf":    {Keys: 10000, KeySkew: 1.2, StartTime: 1},
	} {
		b.Run(name, func(b *testing.B) {
			f, _ := NewDatagenSource(cfg)
			src, _ := f(0, 1, nil)
			buf := make([]flow.Record, 0, 512)
			ctx := context.Background()
			n := 0
			start := time.Now()
			for b.Loop() {
				recs, _ := src.Read(ctx, buf[:0], 512)
				n += len(recs)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
		})
	}
}
