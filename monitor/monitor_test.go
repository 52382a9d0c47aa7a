package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// fakeJobMaster serves a job master's /metrics, /jobmanager/metrics and
// /taskmanagers from its fields, or from a list of recorded bodies.
type fakeJobMaster struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	recorded [][]byte // served in turn, the last one repeatedly
	served   int
	status   int
	heap     float64 // heap in use, bytes
	limit    float64
	cpu      float64
	failed   float64 // checkpoints failed, counter
	restarts float64
	running  int
	window   []float64 // records-in counters of the window subtasks
	source   float64
	sink     float64
	buckets  []float64 // cumulative latency counts at le 0.01, 0.1, 1, 10
	latSum   float64
	tmGets   int
}

func newFakeJobMaster(t *testing.T) *fakeJobMaster {
	f := &fakeJobMaster{t: t, status: http.StatusOK, limit: 1 << 30, heap: 300 << 20, cpu: 0.3, running: 1,
		window: []float64{0, 0}, buckets: make([]float64, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.status != http.StatusOK {
			w.WriteHeader(f.status)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if len(f.recorded) > 0 {
			w.Write(f.recorded[min(f.served, len(f.recorded)-1)])
			f.served++
			return
		}
		fmt.Fprint(w, f.text())
	})
	mux.HandleFunc("GET /jobmanager/metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if got := r.URL.Query().Get("get"); got != "numRunningJobs,numRegisteredTaskManagers" {
			t.Errorf("jobmanager metrics get=%q", got)
		}
		fmt.Fprintf(w, `[{"id":"numRunningJobs","value":"%d"},{"id":"numRegisteredTaskManagers","value":"1"}]`, f.running)
	})
	mux.HandleFunc("GET /taskmanagers", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tmGets++
		fmt.Fprint(w, `{"taskmanagers":[{"id":"127.0.0.1:38645-a5bc3e","slotsNumber":1}]}`)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJobMaster) set(fn func(f *fakeJobMaster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// text is the job master's /metrics for the fields, as the job master
// writes them (docs/REST.md, "Job master metrics").
func (f *fakeJobMaster) text() string {
	var b strings.Builder
	l := `{job_id="j1",job_name="demo"}`
	g := func(name string, v float64) { fmt.Fprintf(&b, "# TYPE %s gauge\n%s%s %g\n", name, name, l, v) }
	c := func(name string, v float64) { fmt.Fprintf(&b, "# TYPE %s counter\n%s%s %g\n", name, name, l, v) }
	g("tidewatch_process_heap_inuse_bytes", f.heap)
	g("tidewatch_process_memory_limit_bytes", f.limit)
	g("tidewatch_process_nonheap_bytes", 40<<20)
	g("tidewatch_process_resident_memory_bytes", f.heap+40<<20)
	g("tidewatch_process_cpu_load_ratio", f.cpu)
	c("tidewatch_process_gc_cycles_total", 10)
	c("tidewatch_process_gc_pause_seconds_total", 0.01)
	g("tidewatch_job_restarts", f.restarts)
	c("tidewatch_job_checkpoints_failed_total", f.failed)
	c("tidewatch_job_source_records_emitted_total", f.source)
	fmt.Fprintln(&b, "# TYPE tidewatch_job_operator_records_in_total counter")
	for i, v := range f.window {
		fmt.Fprintf(&b, "tidewatch_job_operator_records_in_total{job_id=\"j1\",job_name=\"demo\",operator=\"window\",subtask=\"%d\"} %g\n", i, v)
	}
	fmt.Fprintf(&b, "tidewatch_job_operator_records_in_total{job_id=\"j1\",job_name=\"demo\",operator=\"sink\",subtask=\"0\"} %g\n", f.sink)
	fmt.Fprintln(&b, "# TYPE tidewatch_job_end_to_end_latency_seconds histogram")
	for i, le := range []string{"0.01", "0.1", "1", "10"} {
		fmt.Fprintf(&b, "tidewatch_job_end_to_end_latency_seconds_bucket{job_id=\"j1\",job_name=\"demo\",le=\"%s\"} %g\n", le, f.buckets[i])
	}
	fmt.Fprintf(&b, "tidewatch_job_end_to_end_latency_seconds_bucket{job_id=\"j1\",job_name=\"demo\",le=\"+Inf\"} %g\n", f.buckets[3])
	fmt.Fprintf(&b, "tidewatch_job_end_to_end_latency_seconds_sum%s %g\n", l, f.latSum)
	fmt.Fprintf(&b, "tidewatch_job_end_to_end_latency_seconds_count%s %g\n", l, f.buckets[3])
	return b.String()
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeActor records the actions it is asked for.
type fakeActor struct {
	mu   sync.Mutex
	reqs []ActionRequest
	err  error
}

func (a *fakeActor) Act(_ context.Context, req ActionRequest) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reqs = append(a.reqs, req)
	return a.err
}

func (a *fakeActor) requests() []ActionRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ActionRequest(nil), a.reqs...)
}

const testRules = `
rules:
  - name: HEAP_HIGH
    level: FATAL
    scope: taskmanager
    metrics: [heap_load]
    within: 1m
    resolveAfter: 45s
    pattern:
      - name: e1
        where: metricsValue >= 0.85
        times: 2
        consecutive: true
    output: [e1.jobID as jobID, e1.metricsValue as load]
    action: {type: migrate-to-pebble, cooldown: 1h}
  - name: CPU_HIGH
    level: INFO
    scope: jobmanager
    metrics: [cpu_load]
    pattern:
      - name: e1
        where: metricsValue >= 0.9
    action: {type: rescale, params: {factor: 2}, dryRun: true}
`

type harness struct {
	m       *Monitor
	jm      *fakeJobMaster
	clock   *clock
	sink    *Recorder
	actor   *fakeActor
	reg     *prometheus.Registry
	rules   string
	mu      sync.Mutex
	targets []Target
	facts   []Fact
}

func newHarness(t *testing.T, ruleText string, tune func(*Options)) *harness {
	t.Helper()
	h := &harness{jm: newFakeJobMaster(t), clock: &clock{t: traceStart}, sink: &Recorder{}, actor: &fakeActor{},
		reg: prometheus.NewRegistry()}
	h.rules = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(h.rules, []byte(ruleText), 0o644); err != nil {
		t.Fatal(err)
	}
	h.targets = []Target{{JobID: "j1", JobName: "demo", Endpoint: h.jm.srv.URL}}
	opts := DefaultOptions()
	opts.Rules = []string{h.rules}
	opts.ReloadInterval = 0
	if tune != nil {
		tune(&opts)
	}
	m, err := New(opts, Deps{
		Targets: func(context.Context) ([]Target, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return append([]Target(nil), h.targets...), nil
		},
		Facts: func(_ context.Context, ts []Target) ([]Fact, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.facts, nil
		},
		Sink: h.sink, Actor: h.actor, Registerer: h.reg, Now: h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(func() { m.Stop(context.Background()) })
	return h
}

// step runs one cycle at the clock's time and moves the clock on.
func (h *harness) step() {
	h.m.cycle(context.Background())
	h.m.actWG.Wait()
	h.clock.Add(15 * time.Second)
}

func TestScrapeRecordedJobMaster(t *testing.T) {
	h := newHarness(t, testRules, nil)
	for _, f := range []string{"metrics-1.txt", "metrics-2.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata/jobmaster", f))
		if err != nil {
			t.Fatal(err)
		}
		h.jm.recorded = append(h.jm.recorded, b)
	}
	h.m.cycle(context.Background())
	h.clock.Add(3 * time.Second) // the recordings are 3 s apart
	h.m.cycle(context.Background())

	tm := `{scope="taskmanager",tm="127.0.0.1:38645-a5bc3e"}`
	last := func(series string) float64 {
		t.Helper()
		s := h.m.History("j1", series, time.Time{})
		if len(s) == 0 {
			t.Fatalf("no history of %s; series: %v", series, h.m.Series("j1"))
		}
		return s[len(s)-1].Value
	}
	near := func(series string, want float64) {
		t.Helper()
		if got := last(series); math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	near("heap_load", 2.946312e+06/2.68435456e+08)
	near("heap_load"+tm, 2.946312e+06/2.68435456e+08)
	near("nonheap_load"+tm, 4.174924e+07/2.68435456e+08)
	near("cpu_load", 0.013328008010132814)
	near("up", 1)
	near("running_jobs", 1)
	near("task_managers", 1)
	near("restarts", 0)
	near("checkpoints_failed_increase", 0)
	near("source_records_per_second"+tm, (1810.0-1207)/3)
	near("sink_records_per_second"+tm, (100.0-50)/3)
	near(`records_in_per_second{scope="taskmanager",tm="127.0.0.1:38645-a5bc3e",key="window"}`, (1810.0-1207)/3)
	if got := h.m.History("j1", `records_in_skew{scope="taskmanager",key="window"}`, time.Time{}); len(got) != 0 {
		t.Errorf("skew of one subtask: %v", got)
	}
	if got := last("latency_p99_seconds" + tm); got <= 0 || got > 0.0005 {
		t.Errorf("p99 latency %v, want within the first bucket (0, 0.5ms]", got)
	}
	if got := last("gc_cycles_per_second" + tm); got < 0 {
		t.Errorf("GC rate %v", got)
	}
	// the worker's id is asked once per endpoint
	if h.jm.tmGets != 1 {
		t.Errorf("GET /taskmanagers %d times, want 1", h.jm.tmGets)
	}
	if got := counterValue(t, h.m.met.scrapes.WithLabelValues("ok")); got != 2 {
		t.Errorf("scrapes ok = %v", got)
	}
	if len(h.sink.Notices()) != 0 {
		t.Errorf("a healthy job fired: %+v", h.sink.Notices())
	}
}

// TestMonitorAdoptsFiringsOfPreviousRun: after a daemon restart the
// notifier still holds the alerts the previous run raised. An adopted
// firing whose condition still holds matches again and is neither fired
// nor acted on a second time; one whose condition ended while the daemon
// was down resolves after its rule's resolveAfter; one whose rule is gone
// resolves at once.
func TestMonitorAdoptsFiringsOfPreviousRun(t *testing.T) {
	h := newHarness(t, testRules, nil)
	tm := "127.0.0.1:38645-a5bc3e"
	heap := Firing{Key: "HEAP_HIGH/j1/" + tm + "/", Rule: "HEAP_HIGH", JobID: "j1", TMID: tm, Level: rules.LevelFatal}
	cpu := Firing{Key: "CPU_HIGH/j1/", Rule: "CPU_HIGH", JobID: "j1", Level: rules.LevelInfo}
	gone := Firing{Key: "DISK_FULL/j1/", Rule: "DISK_FULL", JobID: "j1", Level: rules.LevelWarn}
	if n := h.m.Adopt(context.Background(), []Firing{heap, cpu, gone}); n != 2 {
		t.Fatalf("adopted %d firings, want 2", n)
	}
	res := h.sink.Resolutions()
	if len(res) != 1 || res[0].Key != gone.Key || res[0].Reason != ResolvedRuleChanged {
		t.Fatalf("resolutions after adopting: %+v", res)
	}
	if got := len(h.m.Active()); got != 2 {
		t.Fatalf("%d active firings, want the 2 adopted", got)
	}

	// The heap is still high: HEAP_HIGH matches again under the same key.
	h.jm.set(func(f *fakeJobMaster) { f.heap = 0.9 * f.limit })
	for range 4 {
		h.step()
	}
	if fs := h.sink.Firings(); len(fs) != 0 {
		t.Fatalf("an adopted firing fired again: %+v", fs)
	}
	if reqs := h.actor.requests(); len(reqs) != 0 {
		t.Fatalf("an adopted firing acted again: %+v", reqs)
	}
	// The heap falls: HEAP_HIGH resolves 45s after its last match; CPU_HIGH,
	// which never matched again, 10 minutes after the adoption.
	h.jm.set(func(f *fakeJobMaster) { f.heap = 0.5 * f.limit })
	for range 4 {
		h.step()
	}
	res = h.sink.Resolutions()
	if len(res) != 2 || res[1].Key != heap.Key || res[1].Reason != ResolvedQuiet {
		t.Fatalf("resolutions: %+v", res)
	}
	for range 33 {
		h.step()
	}
	res = h.sink.Resolutions()
	if len(res) != 3 || res[2].Key != cpu.Key || res[2].Reason != ResolvedQuiet || !res[2].At.Equal(traceStart.Add(10*time.Minute)) {
		t.Fatalf("resolutions: %+v", res)
	}
	if len(h.sink.Firings()) != 0 || len(h.m.Active()) != 0 {
		t.Errorf("firings %+v, active %+v", h.sink.Firings(), h.m.Active())
	}
}

func TestMonitorFiresActsAndResolves(t *testing.T) {
	h := newHarness(t, testRules, nil)
	h.step() // healthy
	h.jm.set(func(f *fakeJobMaster) { f.heap, f.cpu = 0.9*f.limit, 0.95 })
	h.step()
	if n := len(h.sink.Firings()); n != 1 || h.sink.Firings()[0].Rule != "CPU_HIGH" {
		t.Fatalf("after one high sample: %+v", h.sink.Firings())
	}
	h.step()
	fs := h.sink.Firings()
	if len(fs) != 2 || fs[1].Rule != "HEAP_HIGH" {
		t.Fatalf("firings %+v", fs)
	}
	f := fs[1]
	if f.Level != rules.LevelFatal || f.JobID != "j1" || f.JobName != "demo" || f.TMID != "127.0.0.1:38645-a5bc3e" ||
		f.Fields["load"] != 0.9 || len(f.Samples) != 2 || f.Action == nil || f.Key != "HEAP_HIGH/j1/127.0.0.1:38645-a5bc3e/" {
		t.Errorf("firing %+v", f)
	}
	reqs := h.actor.requests()
	if len(reqs) != 1 || reqs[0].Action.Type != rules.ActionMigrateToPebble || reqs[0].Target.Endpoint != h.jm.srv.URL {
		t.Fatalf("actions %+v", reqs)
	}
	if got := counterValue(t, h.m.met.actions.WithLabelValues("rescale", "dry-run")); got != 1 {
		t.Errorf("dry-run rescale counted %v times", got)
	}
	// still high: no new firing, no new action
	h.step()
	h.step()
	if len(h.sink.Firings()) != 2 || len(h.actor.requests()) != 1 {
		t.Errorf("repeated: %d firings, %d actions", len(h.sink.Firings()), len(h.actor.requests()))
	}
	// back to normal: HEAP_HIGH resolves 45s after its last match, CPU_HIGH
	// (no window) 10 minutes after
	h.jm.set(func(f *fakeJobMaster) { f.heap, f.cpu = 0.5*f.limit, 0.2 })
	for range 4 {
		h.step()
	}
	res := h.sink.Resolutions()
	if len(res) != 1 || res[0].Rule != "HEAP_HIGH" || res[0].Reason != ResolvedQuiet {
		t.Fatalf("resolutions %+v", res)
	}
	// high again within the cooldown: fired again, not acted on
	h.jm.set(func(f *fakeJobMaster) { f.heap = 0.95 * f.limit })
	h.step()
	h.step()
	if n := len(h.sink.Firings()); n != 3 {
		t.Fatalf("%d firings", n)
	}
	if len(h.actor.requests()) != 1 || counterValue(t, h.m.met.actions.WithLabelValues("migrate-to-pebble", "cooldown")) != 1 {
		t.Errorf("cooldown not applied: %d actions", len(h.actor.requests()))
	}
	if got := h.m.Active(); len(got) != 2 {
		t.Errorf("active %+v", got)
	}
}

func TestMonitorJobGoneAndScrapeFailure(t *testing.T) {
	h := newHarness(t, testRules, func(o *Options) { o.HistoryRetention = time.Minute })
	h.jm.set(func(f *fakeJobMaster) { f.cpu = 0.99 })
	h.step()
	if len(h.sink.Firings()) != 1 {
		t.Fatalf("firings %+v", h.sink.Firings())
	}
	h.jm.set(func(f *fakeJobMaster) { f.status = http.StatusInternalServerError })
	h.step()
	if up := h.m.History("j1", "up", time.Time{}); len(up) != 2 || up[0].Value != 1 || up[1].Value != 0 {
		t.Errorf("up %+v", up)
	}
	if got := counterValue(t, h.m.met.scrapes.WithLabelValues("error")); got != 1 {
		t.Errorf("failed scrapes %v", got)
	}
	h.mu.Lock()
	h.targets = nil
	h.mu.Unlock()
	h.step()
	res := h.sink.Resolutions()
	if len(res) != 1 || res[0].Reason != ResolvedJobGone || res[0].JobID != "j1" {
		t.Errorf("resolutions %+v", res)
	}
	if len(h.m.Series("j1")) == 0 {
		t.Error("history dropped at once")
	}
	for range 5 {
		h.step()
	}
	if len(h.m.Series("j1")) != 0 {
		t.Error("history kept past its retention")
	}
}

func TestMonitorReload(t *testing.T) {
	h := newHarness(t, testRules, nil)
	h.jm.set(func(f *fakeJobMaster) { f.cpu = 0.99 })
	h.step()
	if len(h.sink.Firings()) != 1 {
		t.Fatalf("firings %+v", h.sink.Firings())
	}
	// a broken file: the previous rules stay, the error names file and line
	bad := strings.Replace(testRules, "times: 2", "times: two", 1)
	if err := os.WriteFile(h.rules, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := h.m.Reload(context.Background())
	if !errors.Is(err, rules.ErrInvalid) || len(st.Errors) != 1 || st.Errors[0].Line != 12 || st.Errors[0].File != h.rules ||
		st.Errors[0].Field != "rules[0].pattern[0].times" || st.Rules != 2 {
		t.Fatalf("status %+v, err %v", st, err)
	}
	if h.m.Rules().Rule("HEAP_HIGH") == nil || len(h.m.Active()) != 1 {
		t.Error("the previous rules are gone")
	}
	// CPU_HIGH removed, HEAP_HIGH unchanged: CPU_HIGH's firing resolves
	good := testRules[:strings.Index(testRules, "  - name: CPU_HIGH")]
	if err := os.WriteFile(h.rules, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = h.m.Reload(context.Background())
	if err != nil || st.Rules != 1 || st.LastError != "" {
		t.Fatalf("status %+v, err %v", st, err)
	}
	res := h.sink.Resolutions()
	if len(res) != 1 || res[0].Rule != "CPU_HIGH" || res[0].Reason != ResolvedRuleChanged {
		t.Errorf("resolutions %+v", res)
	}
	if got := counterValue(t, h.m.met.reloads.WithLabelValues("error")); got != 1 {
		t.Errorf("failed reloads %v", got)
	}
}

// TestReloadKeepsUnchangedState: a reload that does not touch a rule's
// pattern keeps its partial matches; one that changes it starts it afresh.
func TestReloadKeepsUnchangedState(t *testing.T) {
	h := newHarness(t, testRules, nil)
	h.jm.set(func(f *fakeJobMaster) { f.heap = 0.9 * f.limit })
	h.step() // one of the two samples HEAP_HIGH needs
	changed := strings.Replace(testRules, "level: FATAL", "level: WARN", 1)
	if err := os.WriteFile(h.rules, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.step()
	fs := h.sink.Firings()
	if len(fs) != 1 || fs[0].Rule != "HEAP_HIGH" || fs[0].Level != rules.LevelWarn {
		t.Fatalf("firings %+v", fs)
	}
	// a new window: the pattern changed, its state is dropped
	changed = strings.Replace(changed, "within: 1m", "within: 2m", 1)
	if err := os.WriteFile(h.rules, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := h.sink.Resolutions(); len(res) != 1 || res[0].Reason != ResolvedRuleChanged {
		t.Fatalf("resolutions %+v", res)
	}
	h.step()
	if n := len(h.sink.Firings()); n != 1 {
		t.Errorf("fired after one sample of a fresh pattern: %+v", h.sink.Firings())
	}
	h.step()
	if n := len(h.sink.Firings()); n != 2 {
		t.Errorf("%d firings after two samples", n)
	}
}

func TestDerivedRatesAndFacts(t *testing.T) {
	h := newHarness(t, testRules, nil)
	h.facts = []Fact{{JobID: "j1", Name: MetricYARNAMAttempts, Value: 1}, {JobID: "other", Name: MetricYARNAMAttempts, Value: 9}}
	h.step()
	h.jm.set(func(f *fakeJobMaster) {
		f.failed = 2
		f.window = []float64{1500, 300} // 100/s and 20/s over 15 s
		f.sink = 150
		f.buckets = []float64{10, 90, 99, 100}
		f.latSum = 12
	})
	h.step()
	h.jm.set(func(f *fakeJobMaster) {
		f.failed = 1 // a new job master: the counter restarted
		f.window = []float64{3000, 600}
	})
	h.step()
	tm := `{scope="taskmanager",tm="127.0.0.1:38645-a5bc3e"`
	vals := func(series string) []float64 {
		var out []float64
		for _, s := range h.m.History("j1", series, time.Time{}) {
			out = append(out, math.Round(s.Value*1e6)/1e6)
		}
		return out
	}
	check := func(series string, want ...float64) {
		t.Helper()
		if got := vals(series); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	check("checkpoints_failed_increase", 2, 1)
	check(`records_in_per_second`+tm+`,key="window"}`, 120, 120)
	// Flink's skew: (max − mean) / max × 100 = (100 − 60) / 100 × 100
	check(`records_in_skew`+tm+`,key="window"}`, 40, 40)
	check(`sink_records_per_second`+tm+`}`, 10, 0)
	// p99 of 100 markers: rank 99 is the last of the (0.1, 1] bucket
	check(`latency_p99_seconds`+tm+`}`, 1)
	check(`latency_p50_seconds`+tm+`}`, 0.01+(0.1-0.01)*40/80)
	check(`latency_mean_seconds`+tm+`}`, 0.12)
	check(`yarn_am_attempts`, 1, 1, 1)
	if got := h.m.History("other", "yarn_am_attempts", time.Time{}); len(got) != 0 {
		t.Errorf("a fact about an unmonitored job was kept: %v", got)
	}
}

func TestMonitorStartWatchStop(t *testing.T) {
	h := newHarness(t, testRules, func(o *Options) { o.ReloadInterval = 20 * time.Millisecond })
	h.clock = nil
	h.m.deps.Now = time.Now
	h.m.Start()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.m.History("j1", "up", time.Time{})) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no scrape after Start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// the watch reloads a changed file; a bad one is kept out
	if err := os.WriteFile(h.rules, []byte("rules:\n  - name: X\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for h.m.Status().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("the bad file was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.m.Status(); st.Rules != 2 || len(st.Errors) != 3 || st.Errors[0].Line != 2 {
		t.Errorf("status %+v", st)
	}
	one := testRules[:strings.Index(testRules, "  - name: CPU_HIGH")]
	if err := os.WriteFile(h.rules, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	for h.m.Status().Rules != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the fixed file was not loaded: %+v", h.m.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Stop(context.Background()); err != nil {
		t.Fatal("second Stop:", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := DefaultOptions()
	ok.Rules = []string{"x"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Options){
		"Rules":             func(o *Options) { o.Rules = nil },
		"Interval":          func(o *Options) { o.Interval = 0 },
		"Timeout":           func(o *Options) { o.Timeout = time.Minute },
		"Concurrency":       func(o *Options) { o.Concurrency = 0 },
		"ReloadInterval":    func(o *Options) { o.ReloadInterval = -1 },
		"HistorySize":       func(o *Options) { o.HistorySize = 0 },
		"HistoryRetention":  func(o *Options) { o.HistoryRetention = 0 },
		"MaxPartialMatches": func(o *Options) { o.Eval.MaxPartialMatches = 0 },
	} {
		o := ok
		mut(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(ok, Deps{Sink: NopSink{}}); err == nil {
		t.Error("New without Targets")
	}
}

// counterValue reads a counter or gauge.
func counterValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.GetCounter() != nil:
		return d.GetCounter().GetValue()
	case d.GetGauge() != nil:
		return d.GetGauge().GetValue()
	}
	t.Fatalf("not a counter or gauge: %v", &d)
	return 0
}

// A worker container of a job spread over several is a target of its own:
// its metrics raise taskmanager events under its container id, and nothing
// at the job's (jobmanager) scope, which stays the job master's.
func TestWorkerTargetRaisesTaskManagerEventsOnly(t *testing.T) {
	h := newHarness(t, testRules, nil)
	worker := newFakeJobMaster(t)
	worker.set(func(f *fakeJobMaster) { f.window = []float64{3000, 3000} })
	h.mu.Lock()
	h.targets = append(h.targets, Target{JobID: "j1", JobName: "demo", Endpoint: worker.srv.URL, WorkerID: "container_1_0001_01_000002", Worker: true})
	h.mu.Unlock()
	h.step()
	h.step()
	wtm := `{scope="taskmanager",tm="container_1_0001_01_000002"`
	if got := h.m.History("j1", "heap_load"+wtm+"}", time.Time{}); len(got) != 2 {
		t.Errorf("worker heap_load history: %v; series: %v", got, h.m.Series("j1"))
	}
	if got := h.m.History("j1", "records_in_per_second"+wtm+`,key="window"}`, time.Time{}); len(got) != 1 {
		t.Errorf("worker records_in_per_second history: %v", got)
	}
	// The job's own series come from the job master alone: one point a cycle.
	for _, s := range []string{"up", "heap_load", "running_jobs"} {
		if got := h.m.History("j1", s, time.Time{}); len(got) != 2 {
			t.Errorf("%s has %d points, want 2 (the job master's)", s, len(got))
		}
	}
	if worker.tmGets != 0 {
		t.Errorf("GET /taskmanagers of the worker %d times; its id is given", worker.tmGets)
	}
}
