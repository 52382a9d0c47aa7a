package cep

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOutOfOrderWithinLateness: events shuffled within the allowed lateness
// give the same matches as the ordered stream.
func TestOutOfOrderWithinLateness(t *testing.T) {
	p := func() *Pattern {
		return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).Times(2).
			FollowedBy("c").Where(is("c")).Within(30 * time.Second)
	}
	ordered := evs("a1 b1 x1 b2 c1 a2 b3 b4 x2 c2 a3 c3 b5 b6 c4")
	want := runPattern(t, p(), ordered, runConfig{}).matches
	if len(want) == 0 {
		t.Fatal("the ordered stream has no match")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		// each event arrives up to 3 s after its time: sort by time plus jitter
		type arrival struct {
			at time.Time
			ev Event
		}
		var arr []arrival
		for _, ev := range ordered {
			arr = append(arr, arrival{ev.Time.Add(time.Duration(rng.Int64N(int64(3 * time.Second)))), ev})
		}
		slices.SortStableFunc(arr, func(a, b arrival) int { return a.at.Compare(b.at) })
		var shuffled []Event
		for _, a := range arr {
			shuffled = append(shuffled, a.ev)
		}
		r := runPattern(t, p(), shuffled, runConfig{opts: Options{AllowedLateness: 10 * time.Second}})
		if !slices.Equal(r.matches, want) {
			t.Fatalf("trial %d: got %q, want %q", trial, r.matches, want)
		}
		if r.stats.Late != 0 {
			t.Fatalf("trial %d: %d late events", trial, r.stats.Late)
		}
	}
}

// TestLateEventsDropped: events older than the watermark are dropped and
// counted, and do not disturb the matches of the events in time.
func TestLateEventsDropped(t *testing.T) {
	p := Begin("a").Where(is("a")).FollowedBy("b").Where(is("b"))
	// b1 at 1 s arrives after x1 at 20 s: 19 s late with 5 s allowed
	in := evs("a1@0 x1@20 b1@1 a2@21 b2@22")
	r := runPattern(t, p, in, runConfig{opts: Options{AllowedLateness: 5 * time.Second}})
	if want := []string{"a1 b2", "a2 b2"}; !slices.Equal(sorted(r.matches), want) {
		t.Fatalf("got %q, want %q", r.matches, want)
	}
	if r.stats.Late != 1 {
		t.Fatalf("late = %d, want 1", r.stats.Late)
	}
}

// TestLatenessZeroDropsAnyDisorder: with no allowed lateness an event older
// than the newest one seen is late.
func TestLatenessZeroDropsAnyDisorder(t *testing.T) {
	p := Begin("a").Where(is("a")).Next("b").Where(is("b"))
	r := runPattern(t, p, evs("a1@0 b1@2 b2@1"), runConfig{})
	if !slices.Equal(r.matches, []string{"a1 b1"}) || r.stats.Late != 1 {
		t.Fatalf("matches %q late %d", r.matches, r.stats.Late)
	}
}

// TestBufferBoundForcesEarlyProcessing: a full reorder buffer processes its
// oldest event early; an event older than that one is then late.
func TestBufferBoundForcesEarlyProcessing(t *testing.T) {
	p := Begin("a").Where(is("a")).FollowedBy("b").Where(is("b"))
	in := evs("a1@10 b1@11 b2@12 x1@1")
	r := runPattern(t, p, in, runConfig{opts: Options{AllowedLateness: time.Hour, MaxBufferedEvents: 2}})
	if r.stats.ForcedEarly != 1 || r.stats.Late != 1 {
		t.Fatalf("stats %+v", r.stats)
	}
	if !slices.Equal(r.matches, []string{"a1 b1"}) {
		t.Fatalf("matches %q", r.matches)
	}
}

// TestPartitions: each key has its own automaton.
func TestPartitions(t *testing.T) {
	nfa := Begin("e1").Where(`metricsValue > 10`).Next("e2").Where(`metricsValue > e1.metricsValue`).MustCompile()
	var got []string
	e, err := NewEngine(nfa, DefaultOptions(), func(m Match) {
		got = append(got, m.Key+":"+keysOf(m))
	})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for i, ev := range []Event{
		{Time: at(0), JobID: "j1", TMID: "w1", MetricsKey: "a", MetricsValue: 11},
		{Time: at(1), JobID: "j2", TMID: "w1", MetricsKey: "b", MetricsValue: 50},
		{Time: at(2), JobID: "j1", TMID: "w1", MetricsKey: "c", MetricsValue: 12},
		{Time: at(3), JobID: "j1", TMID: "w2", MetricsKey: "d", MetricsValue: 99},
		{Time: at(4), JobID: "j2", TMID: "w1", MetricsKey: "e", MetricsValue: 40},
	} {
		_ = i
		e.Process(ev)
	}
	e.Flush()
	if want := []string{"j1/w1:a c"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if st := e.Stats(); st.Partitions != 3 {
		t.Fatalf("partitions = %d", st.Partitions)
	}
}

// TestMatchFields checks the parts of a Match: key, events by stage, start,
// end and the time it was produced.
func TestMatchFields(t *testing.T) {
	nfa := Begin("hi").Where(`metricsValue > 0.9`).Times(2).
		FollowedBy("act").Where(`metricsName == "restart"`).Within(time.Minute).MustCompile()
	var got []Match
	e, err := NewEngine(nfa, Options{KeyFields: []string{"jobID"}, MaxBufferedEvents: 8, MaxPartialMatches: 8},
		func(m Match) { got = append(got, m) })
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs("hi:0.95@0 lo:0.1@5 hi:0.99@10 restart@20") {
		e.Process(ev)
	}
	if len(got) != 1 {
		t.Fatalf("got %d matches", len(got))
	}
	m := got[0]
	if m.Key != "job" || len(m.Events["hi"]) != 2 || len(m.Events["act"]) != 1 || m.TimedOut {
		t.Fatalf("match %+v", m)
	}
	if !m.Start.Equal(t0) || !m.End.Equal(t0.Add(20*time.Second)) || !m.At.Equal(m.End) {
		t.Fatalf("times: start %v end %v at %v", m.Start, m.End, m.At)
	}
}

// TestTimeoutsOfIdlePartition: a partial match of a partition that sees no
// more events times out when the watermark passes its window, driven by
// other partitions' events or AdvanceWatermark.
func TestTimeoutsOfIdlePartition(t *testing.T) {
	nfa := Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).Within(time.Minute).MustCompile()
	var timeouts []Match
	opts := DefaultOptions()
	opts.EmitTimeouts = true
	e, err := NewEngine(nfa, opts, func(m Match) {
		if m.TimedOut {
			timeouts = append(timeouts, m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Process(Event{Time: t0, JobID: "idle", MetricsName: "a"})
	e.Process(Event{Time: t0.Add(30 * time.Second), JobID: "busy", MetricsName: "x"})
	if len(timeouts) != 0 {
		t.Fatalf("timed out early: %+v", timeouts)
	}
	e.Process(Event{Time: t0.Add(61 * time.Second), JobID: "busy", MetricsName: "x"})
	if len(timeouts) != 1 || timeouts[0].Key != "idle/" || !timeouts[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("timeouts %+v", timeouts)
	}
	e.Process(Event{Time: t0.Add(70 * time.Second), JobID: "idle", MetricsName: "a"})
	e.AdvanceWatermark(t0.Add(200 * time.Second))
	if len(timeouts) != 2 {
		t.Fatalf("AdvanceWatermark did not time out: %+v", timeouts)
	}
	if st := e.Stats(); st.Timeouts != 2 || st.PartialMatches != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPartialMatchBound: an explosive pattern stays within
// MaxPartialMatches; the excess is pruned and counted.
func TestPartialMatchBound(t *testing.T) {
	p := Begin("a").FollowedByAny("b").FollowedByAny("c")
	in := evs(strings.Repeat("x ", 200))
	const limit = 16
	var maxSeen int
	nfa := p.MustCompile()
	e, err := NewEngine(nfa, Options{MaxBufferedEvents: 8, MaxPartialMatches: limit}, func(Match) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range in {
		e.Process(ev)
		maxSeen = max(maxSeen, e.Stats().PartialMatches)
	}
	st := e.Stats()
	if maxSeen > limit {
		t.Fatalf("partial matches reached %d, limit %d", maxSeen, limit)
	}
	if st.PrunedPartialMatches == 0 || st.Matches == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConditionEnvironment exercises what a condition can see: labels,
// references to earlier stages (last event, list, len, aggregates) and the
// event time.
func TestConditionEnvironment(t *testing.T) {
	lab := func(spec string, labels map[string]any) Event {
		ev := evs(spec)[0]
		ev.Labels = labels
		return ev
	}
	cases := []struct {
		name    string
		pattern *Pattern
		input   []Event
		want    []string
	}{
		{
			name: "label equality with an earlier stage",
			pattern: Begin("e1").Where(`metricsValue > 0`).
				Next("e2").Where(`jobName == e1.jobName`),
			input: []Event{
				lab("a1:1@0", map[string]any{"jobName": "etl"}),
				lab("a2:0@1", map[string]any{"jobName": "etl"}),
				lab("a3:1@2", map[string]any{"jobName": "etl"}),
				lab("a4:0@3", map[string]any{"jobName": "other"}),
			},
			want: []string{"a1 a2"},
		},
		{
			name: "the seed's form: e1 contiguous twice, then not the same job",
			pattern: Begin("e1").Where(`metricsValue > 0`).Times(2).Consecutive().
				NotNext("e2").Where(`jobID == e1.jobID && metricsValue <= 0`),
			input: evs("a1:1@0 a2:1@1 a3:0@2 a4:2@3 a5:3@4 a6:1@5"),
			// a5 a6 waits for the event after a6, which never comes
			want: []string{"a4 a5"},
		},
		{
			name: "aggregate over a looping stage",
			pattern: Begin("s").Where(`metricsName == "s"`).Times(3).Consecutive().
				Next("judge").Where(`metricsName == "j" && mean(map(s, .metricsValue)) > 5 && len(s) == 3`),
			input: evs("s1:1@0 s2:9@1 s3:9@2 j1@3 s4:1@4 s5:1@5 s6:1@6 j2@7"),
			want:  []string{"s1 s2 s3 j1"},
		},
		{
			name: "strictly decreasing run referring to itself",
			pattern: Begin("d").Where(`len(d) == 0 || metricsValue < d.metricsValue`).TimesOrMore(3).Consecutive().
				Next("end").Where(`metricsName == "end"`),
			input: evs("v1:5@0 v2:4@1 v3:3@2 end1:100@3 v4:1@4 v5:2@5 v6:1@6 end2:100@7"),
			want:  []string{"v1 v2 v3 end1"},
		},
		{
			name:    "event time arithmetic",
			pattern: Begin("a").Where(is("a")).FollowedBy("b").Where(`metricsName == "b" && time - a.time >= duration("5s")`),
			input:   evs("a1@0 b1@3 b2@6"),
			want:    []string{"a1 b2"},
		},
		{
			name:    "missing label compares as a failed condition",
			pattern: Begin("a").Where(`missing > 5`),
			input:   evs("a1@0"),
			want:    nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, noNative bool) {
				r := runPattern(t, tc.pattern, tc.input, runConfig{noNative: noNative})
				if !slices.Equal(sorted(r.matches), sorted(tc.want)) {
					t.Fatalf("got %q, want %q", r.matches, tc.want)
				}
			})
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Options)
		want string
	}{
		{func(o *Options) { o.AllowedLateness = -1 }, "AllowedLateness"},
		{func(o *Options) { o.MaxBufferedEvents = 0 }, "MaxBufferedEvents"},
		{func(o *Options) { o.MaxPartialMatches = -1 }, "MaxPartialMatches"},
		{func(o *Options) { o.KeyFields = []string{""} }, "KeyFields"},
	} {
		o := DefaultOptions()
		tc.mut(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
		}
	}
}

// TestSteadyStateDoesNotAllocate: on the non-matching path processing an
// event allocates nothing.
func TestSteadyStateDoesNotAllocate(t *testing.T) {
	nfa := Begin("e1").Where(`metricsName == "heap" && metricsValue > 0.9`).Times(10).Within(5 * time.Minute).MustCompile()
	e, err := NewEngine(nfa, DefaultOptions(), func(Match) {})
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{Time: t0, JobID: "j", TMID: "w", MetricsName: "heap", MetricsValue: 0.5}
	e.Process(ev)
	allocs := testing.AllocsPerRun(1000, func() {
		ev.Time = ev.Time.Add(time.Second)
		e.Process(ev)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per event", allocs)
	}
}

// TestAbsenceMatchTime: a sequence ending in NotFollowedBy emits when the
// window closes, at first event + Within, also for a quiet partition.
func TestAbsenceMatchTime(t *testing.T) {
	nfa := Begin("zero").Where(`metricsName == "numRunningJobs" && metricsValue == 0`).
		NotFollowedBy("back").Where(`metricsName == "numRunningJobs" && metricsValue > 0`).
		Within(2 * time.Minute).MustCompile()
	var got []Match
	e, err := NewEngine(nfa, DefaultOptions(), func(m Match) { got = append(got, m) })
	if err != nil {
		t.Fatal(err)
	}
	e.Process(Event{Time: t0, JobID: "a", MetricsName: "numRunningJobs", MetricsValue: 0})
	e.Process(Event{Time: t0, JobID: "b", MetricsName: "numRunningJobs", MetricsValue: 0})
	e.Process(Event{Time: t0.Add(time.Minute), JobID: "b", MetricsName: "numRunningJobs", MetricsValue: 1})
	e.AdvanceWatermark(t0.Add(3 * time.Minute))
	if len(got) != 1 || got[0].Key != "a/" || !got[0].At.Equal(t0.Add(2*time.Minute)) || got[0].TimedOut {
		t.Fatalf("got %+v", got)
	}
}

func TestCompact(t *testing.T) {
	nfa := Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).MustCompile()
	e, err := NewEngine(nfa, DefaultOptions(), func(Match) {})
	if err != nil {
		t.Fatal(err)
	}
	e.Process(Event{Time: t0, JobID: "quiet", MetricsName: "x"})
	e.Process(Event{Time: t0, JobID: "waiting", MetricsName: "a"})
	if n := e.Compact(); n != 1 {
		t.Fatalf("Compact removed %d partitions, want 1", n)
	}
	if st := e.Stats(); st.Partitions != 1 || st.PartialMatches != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStatsGauges: the gauges in Stats agree with the state the engine
// holds, across lateness, skip strategies, timeouts and bounds.
func TestStatsGauges(t *testing.T) {
	for _, lat := range []time.Duration{0, 15 * time.Second} {
		for _, skip := range []SkipStrategy{NoSkip(), SkipPastLastEvent(), SkipToFirst("e1")} {
			nfa := Begin("e1").Where(`metricsValue > 0.9`).Times(3).
				FollowedByAny("e2").Where(`metricsValue > e1.metricsValue`).
				Within(time.Minute).Skip(skip).MustCompile()
			opts := DefaultOptions()
			opts.AllowedLateness = lat
			opts.MaxPartialMatches = 8
			opts.EmitTimeouts = true
			e, err := NewEngine(nfa, opts, func(Match) {})
			if err != nil {
				t.Fatal(err)
			}
			src := newBenchSource(300)
			var ev Event
			for range 20 * benchPartitions {
				src.next(&ev)
				e.Process(ev)
			}
			st := e.Stats()
			partial, buffered := 0, 0
			for _, p := range e.parts {
				partial += len(p.partial) - 1 + len(p.completed)
				buffered += len(p.buf)
				if len(p.partial)-1+len(p.completed) > opts.MaxPartialMatches {
					t.Fatalf("partition %s holds %d partial matches", p.key, len(p.partial)-1+len(p.completed))
				}
			}
			if st.PartialMatches != partial || st.Buffered != buffered || st.Partitions != len(e.parts) {
				t.Fatalf("lateness %v %v: stats %+v, held %d partial, %d buffered", lat, skip, st, partial, buffered)
			}
			if st.Matches == 0 || st.Timeouts == 0 {
				t.Fatalf("lateness %v %v: workload made no match or timeout: %+v", lat, skip, st)
			}
		}
	}
}
