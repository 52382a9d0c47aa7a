package monitor

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
	"github.com/tidewatch/tidewatch/monitor/rules"
)

var update = flag.Bool("update", false, "rewrite the generated files under testdata")

const (
	catalogueDir = "../configs/rules"
	tracesDir    = "testdata/traces"
	traceJob     = "c5f03122124bfeae6dee193109f42302"
	traceJobName = "clicks-per-key"
	traceTM      = "127.0.0.1:38645-c5f031"
	traceHost    = "127.0.0.1"
	traceStep    = 15 * time.Second
)

var traceStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// seedEvents are the 27 events of the seed's monitor with their levels
// (SEED_EVENTS.md), and the early warning the catalogue adds.
var seedEvents = map[string]rules.Level{
	"JOB_MANAGER_HEAP_MEM_LOAD_TOO_HIGH":                rules.LevelFatal,
	"JOB_MANAGER_HEAP_MEM_LOAD_HIGH":                    rules.LevelWarn,
	"JOB_MANAGER_HEAP_MEM_LOAD_LOW":                     rules.LevelInfo,
	"JOB_MANAGER_CPU_LOAD_TOO_HIGH":                     rules.LevelWarn,
	"JOB_MANAGER_CPU_LOAD_HIGH":                         rules.LevelInfo,
	"JOB_MANAGER_CPU_LOAD_LOW":                          rules.LevelInfo,
	"JOB_MANAGER_GC_OLD_TOTAL_TIME_LONG":                rules.LevelWarn,
	"JOB_MANAGER_GC_OLD_COUNT_QUICKLY_INCREASE":         rules.LevelWarn,
	"JOB_MANAGER_FULL_RESTARTS_INCREASE":                rules.LevelWarn,
	"JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO":          rules.LevelFatal,
	"JOB_MANAGER_NUM_TASK_MANAGERS_DECREASE":            rules.LevelFatal,
	"JOB_MANAGER_FAILED_CHECKPOINT_INCREASE":            rules.LevelWarn,
	"TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH":               rules.LevelFatal,
	"TASK_MANAGER_HEAP_MEM_LOAD_HIGH":                   rules.LevelWarn,
	"TASK_MANAGER_HEAP_MEM_LOAD_LOW":                    rules.LevelInfo,
	"TASK_MANAGER_NON_HEAP_MEM_LOAD_TOO_HIGH":           rules.LevelFatal,
	"TASK_MANAGER_NON_HEAP_MEM_LOAD_HIGH":               rules.LevelWarn,
	"TASK_MANAGER_NON_HEAP_MEM_LOAD_LOW":                rules.LevelInfo,
	"TASK_MANAGER_CPU_LOAD_TOO_HIGH":                    rules.LevelWarn,
	"TASK_MANAGER_CPU_LOAD_HIGH":                        rules.LevelInfo,
	"TASK_MANAGER_CPU_LOAD_LOW":                         rules.LevelInfo,
	"TASK_MANAGER_OPERATOR_LATENCY_HIGH":                rules.LevelWarn,
	"TASK_MANAGER_OPERATOR_DATA_SKEW":                   rules.LevelWarn,
	"TASK_MANAGER_SOURCE_THROUGHPUT_GRADUALLY_DECREASE": rules.LevelWarn,
	"TASK_MANAGER_SINK_THROUGHPUT_GRADUALLY_DECREASE":   rules.LevelInfo,
	"TASK_MANAGER_GC_OLD_TOTAL_TIME_LONG":               rules.LevelWarn,
	"TASK_MANAGER_GC_OLD_COUNT_QUICKLY_INCREASE":        rules.LevelWarn,
	"HEAP_MEM_EXHAUSTION_PREDICTED":                     rules.LevelWarn,
}

func loadCatalogue(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.Load(catalogueDir)
	if err != nil {
		t.Fatalf("load the catalogue: %v", err)
	}
	return set
}

func TestCatalogueHasTheSeedEvents(t *testing.T) {
	set := loadCatalogue(t)
	if got, want := len(set.Rules), len(seedEvents); got != want {
		t.Errorf("catalogue has %d rules, want %d", got, want)
	}
	for name, level := range seedEvents {
		r := set.Rule(name)
		if r == nil {
			t.Errorf("%s: not in the catalogue", name)
			continue
		}
		if r.Level != level {
			t.Errorf("%s: level %s, want %s", name, r.Level, level)
		}
		wantScope := rules.ScopeTaskManager
		if strings.HasPrefix(name, "JOB_MANAGER_") {
			wantScope = rules.ScopeJobManager
		}
		if r.Scope != wantScope {
			t.Errorf("%s: scope %s, want %s", name, r.Scope, wantScope)
		}
	}
	// heap pressure on a worker moves state to Pebble
	for _, name := range []string{"TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", "HEAP_MEM_EXHAUSTION_PREDICTED"} {
		if a := set.Rule(name).Action; a == nil || a.Type != rules.ActionMigrateToPebble || a.DryRun {
			t.Errorf("%s: action %+v, want migrate-to-pebble", name, a)
		}
	}
}

// TestCatalogueTraces replays, for every rule of the catalogue, a trace
// that shows its pattern in otherwise healthy metrics and expects exactly
// that rule to fire, once, at its level; and a healthy trace of every
// metric the catalogue reads, which must raise nothing.
func TestCatalogueTraces(t *testing.T) {
	set := loadCatalogue(t)
	writeOrCheckTraces(t)
	for _, r := range set.Rules {
		t.Run(r.Name, func(t *testing.T) {
			res := replayFile(t, set, filepath.Join(tracesDir, r.Name+".jsonl"))
			fs := res.Firings()
			if len(fs) != 1 || fs[0].Rule != r.Name {
				t.Fatalf("fired %v, want exactly %s once", firedNames(fs), r.Name)
			}
			f := fs[0]
			if f.Level != seedEvents[r.Name] {
				t.Errorf("level %s, want %s", f.Level, seedEvents[r.Name])
			}
			if f.JobID != traceJob || f.JobName != traceJobName || f.Fields["jobID"] != traceJob {
				t.Errorf("firing names job %q (%q), fields %v", f.JobID, f.JobName, f.Fields)
			}
			if len(f.Samples) == 0 {
				t.Error("firing has no samples")
			}
			for _, s := range f.Samples {
				if !slices.Contains(r.Metrics, s.MetricsName) {
					t.Errorf("sample of %s, the rule reads %v", s.MetricsName, r.Metrics)
				}
			}
		})
	}
	t.Run("healthy", func(t *testing.T) {
		res := replayFile(t, set, filepath.Join(tracesDir, "healthy.csv"))
		if fs := res.Firings(); len(fs) != 0 {
			t.Errorf("a healthy job fired %v", firedNames(fs))
		}
		if res.Stats.ConditionErrors != 0 {
			t.Errorf("condition errors: %+v", res.Stats)
		}
	})
}

func replayFile(t *testing.T, set *rules.Set, path string) ReplayResult {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ReplayTrace(context.Background(), set, f, TraceFormatOf(path), path, DefaultEvalOptions(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events == 0 {
		t.Fatalf("%s: empty trace", path)
	}
	return res
}

func firedNames(fs []Firing) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule+"("+string(f.Level)+")")
	}
	return out
}

// The traces are generated here and committed under testdata/traces; -update
// rewrites them, and without it the test fails if they no longer match.
func writeOrCheckTraces(t *testing.T) {
	t.Helper()
	files := map[string][]byte{}
	for _, sc := range scenarios() {
		files[sc.rule+".jsonl"] = encodeTrace(t, TraceJSONL, sc.events())
	}
	files["healthy.csv"] = encodeTrace(t, TraceCSV, healthyTrace(120))
	if *update {
		if err := os.MkdirAll(tracesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(tracesDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(tracesDir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s is missing or stale; run go test ./monitor -run TestCatalogueTraces -update", name)
		}
	}
}

func encodeTrace(t *testing.T, format TraceFormat, evs []Event) []byte {
	t.Helper()
	var b bytes.Buffer
	tw, err := NewTraceWriter(&b, format)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := tw.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// jitter is a deterministic value in [-1, 1] for round i of series seed.
func jitter(i, seed int) float64 {
	x := uint64(i)*0x9E3779B97F4A7C15 + uint64(seed)*0xBF58476D1CE4E5B9
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x%20001)/10000 - 1
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// healthyValue is a healthy job's value of a metric at round i.
func healthyValue(name string, i, seed int) float64 {
	j := jitter(i, seed)
	switch name {
	case MetricHeapLoad: // a GC sawtooth between 40% and 53%
		return round4(0.40 + 0.03*float64(i%5) + 0.005*j)
	case MetricNonHeapLoad:
		return round4(0.08 + 0.005*j)
	case MetricCPULoad:
		return round4(0.30 + 0.05*j)
	case MetricGCPauseMsPerSec:
		return round4(1.5 + 0.5*j)
	case MetricGCCyclesPerSecond:
		return round4(0.3 + 0.05*j)
	case MetricRestarts, MetricCheckpointsFailedInc:
		return 0
	case MetricRunningJobs, MetricTaskManagers, MetricUp:
		return 1
	case MetricLatencyP99:
		return round4(0.02 + 0.005*j)
	case MetricRecordsInSkew:
		return round4(10 + 3*j)
	case MetricSourceRecordsPerSec:
		return round4(1000 + 15*j)
	case MetricSinkRecordsPerSec:
		return round4(950 + 15*j)
	}
	panic("no healthy value for " + name)
}

type seriesDef struct {
	scope rules.Scope
	name  string
	key   string
}

// healthySeries are the series the catalogue reads, in trace order.
var healthySeries = []seriesDef{
	{rules.ScopeJobManager, MetricUp, ""},
	{rules.ScopeJobManager, MetricHeapLoad, ""},
	{rules.ScopeJobManager, MetricCPULoad, ""},
	{rules.ScopeJobManager, MetricGCPauseMsPerSec, ""},
	{rules.ScopeJobManager, MetricGCCyclesPerSecond, ""},
	{rules.ScopeJobManager, MetricRestarts, ""},
	{rules.ScopeJobManager, MetricRunningJobs, ""},
	{rules.ScopeJobManager, MetricTaskManagers, ""},
	{rules.ScopeJobManager, MetricCheckpointsFailedInc, ""},
	{rules.ScopeTaskManager, MetricHeapLoad, ""},
	{rules.ScopeTaskManager, MetricNonHeapLoad, ""},
	{rules.ScopeTaskManager, MetricCPULoad, ""},
	{rules.ScopeTaskManager, MetricGCPauseMsPerSec, ""},
	{rules.ScopeTaskManager, MetricGCCyclesPerSecond, ""},
	{rules.ScopeTaskManager, MetricLatencyP99, ""},
	{rules.ScopeTaskManager, MetricRecordsInSkew, "window"},
	{rules.ScopeTaskManager, MetricSourceRecordsPerSec, ""},
	{rules.ScopeTaskManager, MetricSinkRecordsPerSec, ""},
}

func (s seriesDef) seed() int {
	h := 0
	for _, c := range string(s.scope) + s.name + s.key {
		h = h*31 + int(c)
	}
	return h & 0xffff
}

func traceEvent(s seriesDef, i int, v float64) Event {
	tm := ""
	if s.scope == rules.ScopeTaskManager {
		tm = traceTM
	}
	return Event{Scope: s.scope, Event: cep.Event{Time: traceStart.Add(time.Duration(i) * traceStep), JobID: traceJob,
		TMID: tm, Hostname: traceHost, MetricsName: s.name, MetricsKey: s.key, MetricsValue: v,
		Labels: map[string]any{LabelJobName: traceJobName}}}
}

func healthyTrace(rounds int) []Event {
	var out []Event
	for i := range rounds {
		for _, s := range healthySeries {
			out = append(out, traceEvent(s, i, healthyValue(s.name, i, s.seed())))
		}
	}
	return out
}

// scenario is one rule's trace: the rule's metric on the rule's scope
// follows anomaly (ok false: no sample that round, as when a job master is
// down); the same metric on the other scope, where there is one, stays
// healthy.
type scenario struct {
	rule    string
	scope   rules.Scope
	metric  string
	key     string
	rounds  int
	anomaly func(i int, healthy float64) (float64, bool)
}

func (sc scenario) events() []Event {
	own := seriesDef{sc.scope, sc.metric, sc.key}
	var other *seriesDef
	for _, s := range healthySeries {
		if s.name == sc.metric && s.key == sc.key && s.scope != sc.scope {
			other = &s
		}
	}
	var out []Event
	for i := range sc.rounds {
		if v, ok := sc.anomaly(i, healthyValue(sc.metric, i, own.seed())); ok {
			out = append(out, traceEvent(own, i, round4(v)))
		}
		if other != nil {
			out = append(out, traceEvent(*other, i, healthyValue(sc.metric, i, other.seed())))
		}
	}
	return out
}

// between returns v in rounds [from, to), healthy otherwise.
func between(from, to int, v func(i int) float64) func(int, float64) (float64, bool) {
	return func(i int, h float64) (float64, bool) {
		if i >= from && i < to {
			return v(i), true
		}
		return h, true
	}
}

func cycle(vs ...float64) func(int) float64 { return func(i int) float64 { return vs[i%len(vs)] } }

func scenarios() []scenario {
	var out []scenario
	for _, p := range []struct {
		prefix string
		scope  rules.Scope
	}{{"JOB_MANAGER_", rules.ScopeJobManager}, {"TASK_MANAGER_", rules.ScopeTaskManager}} {
		add := func(name, metric string, rounds int, f func(int, float64) (float64, bool)) {
			out = append(out, scenario{rule: p.prefix + name, scope: p.scope, metric: metric, rounds: rounds, anomaly: f})
		}
		add("HEAP_MEM_LOAD_TOO_HIGH", MetricHeapLoad, 24, between(8, 16, cycle(0.87, 0.88, 0.86)))
		add("HEAP_MEM_LOAD_HIGH", MetricHeapLoad, 26, between(8, 22, cycle(0.77, 0.79, 0.78, 0.80, 0.78, 0.79)))
		add("HEAP_MEM_LOAD_LOW", MetricHeapLoad, 48, between(4, 48, cycle(0.07, 0.08, 0.06)))
		add("CPU_LOAD_TOO_HIGH", MetricCPULoad, 18, between(6, 12, cycle(0.93, 0.97, 0.95, 0.94)))
		add("CPU_LOAD_HIGH", MetricCPULoad, 22, between(6, 16, cycle(0.74, 0.76, 0.78, 0.75, 0.77)))
		add("CPU_LOAD_LOW", MetricCPULoad, 48, between(4, 48, cycle(0.02, 0.025, 0.03)))
		add("GC_OLD_TOTAL_TIME_LONG", MetricGCPauseMsPerSec, 16, between(6, 12, cycle(30, 33, 36, 39)))
		add("GC_OLD_COUNT_QUICKLY_INCREASE", MetricGCCyclesPerSecond, 16, between(8, 12, cycle(3.4, 2.9, 2.5, 3.1)))
	}
	jm := func(name, metric string, rounds int, f func(int, float64) (float64, bool)) {
		out = append(out, scenario{rule: "JOB_MANAGER_" + name, scope: rules.ScopeJobManager, metric: metric, rounds: rounds, anomaly: f})
	}
	jm("FULL_RESTARTS_INCREASE", MetricRestarts, 20, func(i int, _ float64) (float64, bool) {
		switch {
		case i < 8:
			return 0, true
		case i < 10:
			return 0, false // the job master is down, then comes back
		}
		return 1, true
	})
	jm("NUM_RUNNING_JOBS_BECOME_ZERO", MetricRunningJobs, 14, between(8, 14, cycle(0)))
	jm("NUM_TASK_MANAGERS_DECREASE", MetricTaskManagers, 14, func(i int, _ float64) (float64, bool) {
		if i < 8 {
			return 2, true
		}
		return 1, true
	})
	jm("FAILED_CHECKPOINT_INCREASE", MetricCheckpointsFailedInc, 24, func(i int, _ float64) (float64, bool) {
		switch i {
		case 8:
			return 1, true
		case 16:
			return 2, true
		}
		return 0, true
	})
	tm := func(name, metric, key string, rounds int, f func(int, float64) (float64, bool)) {
		out = append(out, scenario{rule: name, scope: rules.ScopeTaskManager, metric: metric, key: key, rounds: rounds, anomaly: f})
	}
	tm("TASK_MANAGER_NON_HEAP_MEM_LOAD_TOO_HIGH", MetricNonHeapLoad, "", 16, between(6, 12, cycle(0.55, 0.56, 0.57)))
	tm("TASK_MANAGER_NON_HEAP_MEM_LOAD_HIGH", MetricNonHeapLoad, "", 20, between(6, 16, cycle(0.40, 0.41, 0.42, 0.43)))
	tm("TASK_MANAGER_NON_HEAP_MEM_LOAD_LOW", MetricNonHeapLoad, "", 48, between(4, 48, cycle(0.010, 0.012, 0.014)))
	tm("TASK_MANAGER_OPERATOR_LATENCY_HIGH", MetricLatencyP99, "", 16, between(6, 12, cycle(1.5, 1.7, 1.9, 2.1)))
	tm("TASK_MANAGER_OPERATOR_DATA_SKEW", MetricRecordsInSkew, "window", 20, between(6, 16, cycle(60, 62, 64, 66)))
	tm("TASK_MANAGER_SOURCE_THROUGHPUT_GRADUALLY_DECREASE", MetricSourceRecordsPerSec, "", 20,
		between(8, 20, func(i int) float64 {
			if i <= 12 {
				return []float64{950, 880, 800, 720, 650}[i-8]
			}
			return 650 + 5*float64(i%3)
		}))
	tm("TASK_MANAGER_SINK_THROUGHPUT_GRADUALLY_DECREASE", MetricSinkRecordsPerSec, "", 20,
		between(8, 20, func(i int) float64 {
			if i <= 12 {
				return []float64{900, 830, 760, 700, 640}[i-8]
			}
			return 640 + 5*float64(i%3)
		}))
	// a heap that climbs two points a scrape from 55%: the soft limit in
	// under three minutes at that pace, while still far from 85%
	tm("HEAP_MEM_EXHAUSTION_PREDICTED", MetricHeapLoad, "", 20,
		between(6, 16, func(i int) float64 { return 0.55 + 0.02*float64(i-6) + 0.004*float64(i%2*2-1) }))
	return out
}

// TestCatalogueNearMisses replays, for the thresholds of the catalogue,
// metrics that come close to a rule's pattern without completing it: none
// may fire.
func TestCatalogueNearMisses(t *testing.T) {
	set := loadCatalogue(t)
	cases := []scenario{
		{rule: "three high heap samples", scope: rules.ScopeTaskManager, metric: MetricHeapLoad, rounds: 16, anomaly: between(6, 9, cycle(0.88))},
		{rule: "ten samples in the high band", scope: rules.ScopeJobManager, metric: MetricHeapLoad, rounds: 20, anomaly: between(6, 16, cycle(0.78, 0.79))},
		{rule: "a high band that averages low", scope: rules.ScopeTaskManager, metric: MetricHeapLoad, rounds: 26, anomaly: between(6, 20, cycle(0.71, 0.72, 0.71, 0.76))},
		{rule: "39 low heap samples", scope: rules.ScopeTaskManager, metric: MetricHeapLoad, rounds: 48, anomaly: between(4, 43, cycle(0.05))},
		{rule: "a low heap interrupted", scope: rules.ScopeJobManager, metric: MetricHeapLoad, rounds: 60, anomaly: between(4, 60, func(i int) float64 {
			if i == 30 {
				return 0.2
			}
			return 0.05
		})},
		{rule: "three busy CPU samples", scope: rules.ScopeJobManager, metric: MetricCPULoad, rounds: 16, anomaly: between(6, 9, cycle(0.99))},
		{rule: "seven fairly busy CPU samples", scope: rules.ScopeTaskManager, metric: MetricCPULoad, rounds: 16, anomaly: between(6, 13, cycle(0.8))},
		{rule: "GC pauses just under 20 ms/s", scope: rules.ScopeTaskManager, metric: MetricGCPauseMsPerSec, rounds: 16, anomaly: between(4, 16, cycle(19.5))},
		{rule: "GC rate only doubling", scope: rules.ScopeJobManager, metric: MetricGCCyclesPerSecond, rounds: 16, anomaly: between(6, 12, func(i int) float64 {
			if i == 6 {
				return 1.2
			}
			return 2.4
		})},
		{rule: "GC rate tripling for one scrape", scope: rules.ScopeTaskManager, metric: MetricGCCyclesPerSecond, rounds: 16, anomaly: between(6, 7, cycle(3))},
		{rule: "restarts unchanged over a gap", scope: rules.ScopeJobManager, metric: MetricRestarts, rounds: 16, anomaly: func(i int, _ float64) (float64, bool) { return 2, i < 6 || i > 8 }},
		{rule: "one failed checkpoint", scope: rules.ScopeJobManager, metric: MetricCheckpointsFailedInc, rounds: 40, anomaly: between(6, 7, cycle(3))},
		{rule: "failed checkpoints eleven minutes apart", scope: rules.ScopeJobManager, metric: MetricCheckpointsFailedInc, rounds: 60, anomaly: func(i int, _ float64) (float64, bool) {
			if i == 6 || i == 50 {
				return 1, true
			}
			return 0, true
		}},
		{rule: "three high latency samples", scope: rules.ScopeTaskManager, metric: MetricLatencyP99, rounds: 16, anomaly: between(6, 9, cycle(3))},
		{rule: "seven skewed samples", scope: rules.ScopeTaskManager, metric: MetricRecordsInSkew, key: "window", rounds: 16, anomaly: between(6, 13, cycle(70))},
		{rule: "five decreases of 20% in all", scope: rules.ScopeTaskManager, metric: MetricSourceRecordsPerSec, rounds: 16, anomaly: between(6, 16, func(i int) float64 {
			if i <= 10 {
				return []float64{980, 950, 900, 850, 800}[i-6]
			}
			return 800
		})},
		{rule: "a deep drop with a recovery in between", scope: rules.ScopeTaskManager, metric: MetricSinkRecordsPerSec, rounds: 16, anomaly: between(6, 16, func(i int) float64 {
			if i <= 11 {
				return []float64{900, 800, 820, 700, 600, 500}[i-6]
			}
			return 500
		})},
		{rule: "a slow heap climb", scope: rules.ScopeTaskManager, metric: MetricHeapLoad, rounds: 24, anomaly: between(6, 24, func(i int) float64 { return 0.55 + 0.004*float64(i-6) })},
	}
	for _, sc := range cases {
		t.Run(sc.rule, func(t *testing.T) {
			rp, err := NewReplayer(set, DefaultEvalOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range sc.events() {
				rp.Feed(context.Background(), ev)
			}
			if fs := rp.Finish(context.Background(), time.Time{}).Firings(); len(fs) != 0 {
				t.Errorf("fired %v", firedNames(fs))
			}
		})
	}
}
