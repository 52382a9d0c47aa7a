package notify

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// The pipeline is driven with explicit times: t0 plus offsets.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testPipe struct {
	t  *testing.T
	p  *pipeline
	id uint64
}

func newTestPipe(t *testing.T, yaml string) *testPipe {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	root, err := compileRoute(cfg.Route, nil, "0")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := compileInhibit(cfg.Inhibit)
	if err != nil {
		t.Fatal(err)
	}
	_, receivers, err := buildChannels(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testPipe{t: t, p: newPipeline(root, rules, receivers, *cfg.ResolveTimeout, "http://tw.example")}
}

func mk(job, event string, level alert.Level, extra ...string) alert.Alert {
	ls := alert.Labels{}
	for i := 0; i+1 < len(extra); i += 2 {
		ls[extra[i]] = extra[i+1]
	}
	a := alert.New(job, event, level, ls)
	a, err := normalize(a)
	if err != nil {
		panic(err)
	}
	return a
}

func (tp *testPipe) raise(a alert.Alert, at time.Duration) {
	now := t0.Add(at)
	e, isNew := tp.p.prepareRaise(a, now)
	if isNew {
		tp.id++
		e.id = tp.id
	}
	tp.p.install(e, now)
}

func (tp *testPipe) resolve(a alert.Alert, at time.Duration) {
	now := t0.Add(at)
	e := tp.p.prepareResolve(a.Labels, time.Time{}, now)
	if e == nil {
		tp.t.Fatalf("resolve %s: not firing", a.Labels)
	}
	e.persistedResolved = true
	tp.p.install(e, now)
}

// flush flushes at t0+at, commits, and describes each notification as
// "receiver status: EVENT/job[/extra] …" with firing alerts first.
func (tp *testPipe) flush(at time.Duration) []string {
	b := tp.p.flush(t0.Add(at))
	tp.p.commit(b, true)
	return describe(b.notes)
}

func describe(notes []*pendingNote) []string {
	var out []string
	for _, n := range notes {
		var as []string
		for _, a := range n.msg.Alerts {
			s := a.Event() + "/" + a.Job()
			if tm := a.Labels["tm"]; tm != "" {
				s += "/" + tm
			}
			if a.Status == alert.StatusResolved {
				s += "(resolved)"
			}
			as = append(as, s)
		}
		sort.Strings(as)
		out = append(out, fmt.Sprintf("%s %s: %s", n.receiver, n.msg.Status, strings.Join(as, " ")))
	}
	sort.Strings(out)
	return out
}

func expect(t *testing.T, when string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got  %q\n want %q", when, got, want)
	}
}

const oneReceiver = `
resolve_timeout: 0s
route:
  receiver: ops
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: ops
    channels:
      - webhook: {url: "http://127.0.0.1:1/hook"}
`

func TestGroupingTimings(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	a := mk("j1", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo, "tm", "tm-1")
	b := mk("j1", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo, "tm", "tm-2")
	c := mk("j2", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo, "tm", "tm-1")

	tp.raise(a, 0)
	expect(t, "before group_wait", tp.flush(29*time.Second))
	tp.raise(b, 10*time.Second) // same group: waits with a
	expect(t, "at group_wait", tp.flush(30*time.Second), "ops firing: TASK_MANAGER_CPU_LOAD_HIGH/j1/tm-1 TASK_MANAGER_CPU_LOAD_HIGH/j1/tm-2")
	if got := tp.p.nextDue(); !got.Equal(t0.Add(30*time.Second + 5*time.Minute)) {
		t.Errorf("next flush at %s, want group_interval after the first", got.Sub(t0))
	}

	tp.raise(c, time.Minute) // another job: a group of its own, with its own wait
	expect(t, "j2 waits its group_wait", tp.flush(80*time.Second))
	expect(t, "j2 after its group_wait", tp.flush(90*time.Second), "ops firing: TASK_MANAGER_CPU_LOAD_HIGH/j2/tm-1")

	// Raising a firing alert again changes nothing anyone is told.
	tp.raise(a, 2*time.Minute)
	expect(t, "unchanged group at group_interval", tp.flush(5*time.Minute+30*time.Second))

	// A new alert in a flushed group waits for the group's interval, not group_wait.
	d := mk("j1", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo, "tm", "tm-3")
	tp.raise(d, 6*time.Minute)
	expect(t, "new alert before the interval", tp.flush(7*time.Minute))
	expect(t, "new alert at the interval", tp.flush(10*time.Minute+30*time.Second),
		"ops firing: TASK_MANAGER_CPU_LOAD_HIGH/j1/tm-1 TASK_MANAGER_CPU_LOAD_HIGH/j1/tm-2 TASK_MANAGER_CPU_LOAD_HIGH/j1/tm-3")
}

func TestRepeatInterval(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	a := mk("j1", "JOB_MANAGER_FULL_RESTARTS_INCREASE", alert.LevelWarn)
	tp.raise(a, 0)
	expect(t, "first", tp.flush(30*time.Second), "ops firing: JOB_MANAGER_FULL_RESTARTS_INCREASE/j1")
	// Flushes every 5m; nothing until 4h have passed since the notification.
	for at := 30*time.Second + 5*time.Minute; at < 4*time.Hour+30*time.Second; at += 5 * time.Minute {
		tp.raise(a, at-time.Second) // still firing (resolve_timeout 5m)
		expect(t, fmt.Sprintf("at %s", at), tp.flush(at))
	}
	at := 30*time.Second + 49*5*time.Minute // 4h05m30s: the first flush past 4h after 30s
	tp.raise(a, at-time.Second)
	expect(t, "repeat", tp.flush(at), "ops firing: JOB_MANAGER_FULL_RESTARTS_INCREASE/j1")
}

func TestResolvedNotices(t *testing.T) {
	tp := newTestPipe(t, `
route:
  receiver: ops
  group_wait: 30s
  group_interval: 1m
receivers:
  - name: ops
    channels:
      - webhook: {url: "http://127.0.0.1:1/a"}
        name: all
      - webhook: {url: "http://127.0.0.1:1/b"}
        name: firing-only
        send_resolved: false
`)
	a := mk("j1", "TASK_MANAGER_OPERATOR_LATENCY_HIGH", alert.LevelWarn, "tm", "tm-1")
	b := mk("j1", "TASK_MANAGER_OPERATOR_LATENCY_HIGH", alert.LevelWarn, "tm", "tm-2")
	tp.raise(a, 0)
	tp.raise(b, 0)
	expect(t, "first", tp.flush(30*time.Second), "ops firing: TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-1 TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-2")

	tp.resolve(a, 40*time.Second)
	b1 := tp.p.flush(t0.Add(90 * time.Second))
	tp.p.commit(b1, true)
	expect(t, "one resolved", describe(b1.notes), "ops firing: TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-1(resolved) TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-2")
	if got := b1.notes[0].channels; strings.Join(got, ",") != "ops/all,ops/firing-only" {
		t.Errorf("a firing notification goes to every channel: %v", got)
	}

	tp.raise(b, 100*time.Second)
	expect(t, "nothing new", tp.flush(150*time.Second))

	tp.resolve(b, 160*time.Second)
	b2 := tp.p.flush(t0.Add(210 * time.Second))
	tp.p.commit(b2, true)
	expect(t, "all resolved", describe(b2.notes), "ops resolved: TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-2(resolved)")
	if got := b2.notes[0].channels; strings.Join(got, ",") != "ops/all" {
		t.Errorf("a resolved notification skips send_resolved: false: %v", got)
	}
	if len(tp.p.groups) != 0 || len(tp.p.alerts) != 0 || len(tp.p.nflog) != 0 {
		t.Errorf("a resolved group is forgotten: %d groups, %d alerts, %d log entries", len(tp.p.groups), len(tp.p.alerts), len(tp.p.nflog))
	}
	// Firing again is new: notified after group_wait, as a new group.
	tp.raise(b, 5*time.Minute)
	expect(t, "fires again", tp.flush(5*time.Minute+30*time.Second), "ops firing: TASK_MANAGER_OPERATOR_LATENCY_HIGH/j1/tm-2")
}

func TestResolvedBeforeNotifiedIsNotReported(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	a := mk("j1", "TASK_MANAGER_OPERATOR_DATA_SKEW", alert.LevelWarn)
	tp.raise(a, 0)
	tp.resolve(a, 10*time.Second)
	expect(t, "fired and resolved within group_wait", tp.flush(30*time.Second))
	if len(tp.p.groups) != 0 {
		t.Errorf("group kept")
	}
}

func TestResolveTimeout(t *testing.T) {
	tp := newTestPipe(t, strings.Replace(oneReceiver, "resolve_timeout: 0s", "resolve_timeout: 2m", 1))
	a := mk("j1", "TASK_MANAGER_GC_OLD_TOTAL_TIME_LONG", alert.LevelWarn)
	tp.raise(a, 0)
	expect(t, "first", tp.flush(30*time.Second), "ops firing: TASK_MANAGER_GC_OLD_TOTAL_TIME_LONG/j1")
	tp.raise(a, time.Minute) // refreshed: now ends at 3m
	b := tp.p.flush(t0.Add(5*time.Minute + 30*time.Second))
	tp.p.commit(b, true)
	expect(t, "not raised for 2m", describe(b.notes), "ops resolved: TASK_MANAGER_GC_OLD_TOTAL_TIME_LONG/j1(resolved)")
	if len(b.updates) != 1 || !b.updates[0].resolved {
		t.Errorf("the row is not marked resolved: %+v", b.updates)
	}
}

func TestInhibitionByFamily(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	fatal := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", alert.LevelFatal)
	warn := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn)
	info := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_LOW", alert.LevelInfo)
	otherFamily := mk("j1", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo)
	otherJob := mk("j2", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn)
	for _, a := range []alert.Alert{fatal, warn, info, otherFamily, otherJob} {
		tp.raise(a, 0)
	}
	expect(t, "FATAL holds back its family's WARN and INFO", tp.flush(30*time.Second),
		"ops firing: TASK_MANAGER_CPU_LOAD_HIGH/j1",
		"ops firing: TASK_MANAGER_HEAP_MEM_LOAD_HIGH/j2",
		"ops firing: TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH/j1")
	// The WARN's record says who inhibits it.
	if got := tp.p.alerts[warn.Fingerprint()].inhibitedBy; len(got) != 1 || got[0] != fatal.Fingerprint().String() {
		t.Errorf("WARN inhibited by %v, want the FATAL %s", got, fatal.Fingerprint())
	}
	tp.resolve(fatal, time.Minute)
	expect(t, "with the FATAL resolved, the WARN and INFO are told", tp.flush(5*time.Minute+30*time.Second),
		"ops firing: TASK_MANAGER_HEAP_MEM_LOAD_HIGH/j1",
		"ops firing: TASK_MANAGER_HEAP_MEM_LOAD_LOW/j1",
		"ops resolved: TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH/j1(resolved)")
}

func TestInhibitionByRestart(t *testing.T) {
	tp := newTestPipe(t, oneReceiver+"inhibit:\n  restart_events: [JOB_RESTARTING, JOB_FAILING_OVER]\n")
	restarting := mk("j1", "JOB_RESTARTING", alert.LevelWarn)
	symptom1 := mk("j1", "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO", alert.LevelFatal)
	symptom2 := mk("j1", "TASK_MANAGER_SOURCE_THROUGHPUT_GRADUALLY_DECREASE", alert.LevelWarn)
	otherJob := mk("j2", "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO", alert.LevelFatal)
	failover := mk("j1", "JOB_FAILING_OVER", alert.LevelWarn)
	for _, a := range []alert.Alert{restarting, symptom1, symptom2, otherJob, failover} {
		tp.raise(a, 0)
	}
	expect(t, "restart events hold back their job's symptoms, not each other", tp.flush(30*time.Second),
		"ops firing: JOB_FAILING_OVER/j1",
		"ops firing: JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO/j2",
		"ops firing: JOB_RESTARTING/j1")
}

func TestInhibitionRulesFromConfig(t *testing.T) {
	tp := newTestPipe(t, oneReceiver+`inhibit:
  family: false
  restart_events: []
  rules:
    - source_matchers: ['alertname="JOB_MANAGER_NUM_TASK_MANAGERS_DECREASE"']
      target_matchers: ['alertname=~"TASK_MANAGER_.*"']
      equal: [job]
`)
	src := mk("j1", "JOB_MANAGER_NUM_TASK_MANAGERS_DECREASE", alert.LevelFatal)
	tgt := mk("j1", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo)
	warn := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, "tm", "x")
	fatal := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", alert.LevelFatal, "tm", "x")
	restart := mk("j2", "JOB_RESTARTING", alert.LevelWarn)
	other := mk("j2", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo)
	for _, a := range []alert.Alert{src, tgt, warn, fatal, restart, other} {
		tp.raise(a, 0)
	}
	expect(t, "only the configured rule", tp.flush(30*time.Second),
		"ops firing: JOB_MANAGER_NUM_TASK_MANAGERS_DECREASE/j1",
		"ops firing: JOB_RESTARTING/j2",
		"ops firing: TASK_MANAGER_CPU_LOAD_LOW/j2")
}

func TestSilences(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	sil := &Silence{ID: "s1", StartsAt: t0.Add(-time.Minute), EndsAt: t0.Add(10 * time.Minute), CreatedBy: "ops", Comment: "maintenance"}
	sil.Matchers, _ = ParseMatchers(`job="j1", alertname=~"TASK_MANAGER_.*"`)
	tp.p.silences.silences[sil.ID] = sil
	a := mk("j1", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn)
	b := mk("j1", "JOB_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn)
	c := mk("j2", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn)
	for _, x := range []alert.Alert{a, b, c} {
		tp.raise(x, 0)
	}
	bt := tp.p.flush(t0.Add(30 * time.Second))
	tp.p.commit(bt, true)
	expect(t, "silenced", describe(bt.notes),
		"ops firing: JOB_MANAGER_CPU_LOAD_TOO_HIGH/j1",
		"ops firing: TASK_MANAGER_CPU_LOAD_TOO_HIGH/j2")
	if got := tp.p.alerts[a.Fingerprint()].silencedBy; len(got) != 1 || got[0] != "s1" {
		t.Errorf("silenced by %v", got)
	}
	expect(t, "still silenced", tp.flush(5*time.Minute+30*time.Second))
	expect(t, "silence over", tp.flush(10*time.Minute+30*time.Second), "ops firing: TASK_MANAGER_CPU_LOAD_TOO_HIGH/j1")
	if got := tp.p.alerts[a.Fingerprint()].silencedBy; len(got) != 0 {
		t.Errorf("still silenced by %v after the end", got)
	}
}

func TestRouting(t *testing.T) {
	tp := newTestPipe(t, `
route:
  receiver: ops
  group_by: [job]
  group_wait: 10s
  routes:
    - levels: [fatal]
      receiver: oncall
      group_by: [job, alertname]
      group_wait: 0s
      continue: true
    - jobs: [payments]
      receiver: payments
      routes:
        - events: [TASK_MANAGER_CPU_LOAD_LOW]
          receiver: quiet
    - matchers: ['tm=~"tm-9.*"']
      group_by: ['...']
receivers:
  - name: ops
    channels: [{webhook: {url: "http://127.0.0.1:1/ops"}}]
  - name: oncall
    channels: [{webhook: {url: "http://127.0.0.1:1/oncall"}}]
  - name: payments
    channels: [{webhook: {url: "http://127.0.0.1:1/payments"}}]
  - name: quiet
    channels: []
`)
	tp.raise(mk("payments", "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO", alert.LevelFatal), 0)
	tp.raise(mk("payments", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo), 0)
	tp.raise(mk("payments", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo), 0)
	tp.raise(mk("web", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo), 0)
	tp.raise(mk("web", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo), 0)
	tp.raise(mk("web", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo, "tm", "tm-91"), 0)
	tp.raise(mk("web", "TASK_MANAGER_CPU_LOAD_LOW", alert.LevelInfo, "tm", "tm-92"), 0)
	expect(t, "group_wait 0 for FATAL", tp.flush(0), "oncall firing: JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO/payments")
	expect(t, "the rest", tp.flush(10*time.Second),
		"ops firing: TASK_MANAGER_CPU_LOAD_HIGH/web TASK_MANAGER_CPU_LOAD_LOW/web",
		"ops firing: TASK_MANAGER_CPU_LOAD_LOW/web/tm-91",
		"ops firing: TASK_MANAGER_CPU_LOAD_LOW/web/tm-92",
		"payments firing: JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO/payments TASK_MANAGER_CPU_LOAD_HIGH/payments")
}

func TestFailedStoreIsRetried(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	a := mk("j1", "TASK_MANAGER_CPU_LOAD_HIGH", alert.LevelInfo)
	tp.raise(a, 0)
	b := tp.p.flush(t0.Add(30 * time.Second))
	if len(b.notes) != 1 {
		t.Fatalf("notes %v", describe(b.notes))
	}
	tp.p.commit(b, false)
	if got := tp.p.nextDue(); !got.Equal(t0.Add(30*time.Second + retryFlushDelay)) {
		t.Errorf("retry at %s", got.Sub(t0))
	}
	expect(t, "again", tp.flush(30*time.Second+retryFlushDelay), "ops firing: TASK_MANAGER_CPU_LOAD_HIGH/j1")
}

func TestMessageContent(t *testing.T) {
	tp := newTestPipe(t, oneReceiver)
	a := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, "tm", "tm-1")
	a.Annotations = alert.Labels{"summary": "heap 91%"}
	b := mk("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, "tm", "tm-2")
	b.Annotations = alert.Labels{"summary": "heap 93%"}
	tp.raise(a, 0)
	tp.raise(b, time.Second)
	bt := tp.p.flush(t0.Add(30 * time.Second))
	if len(bt.notes) != 1 {
		t.Fatal(describe(bt.notes))
	}
	m := bt.notes[0].msg
	if m.GroupLabels.String() != `{alertname="TASK_MANAGER_HEAP_MEM_LOAD_HIGH", job="j1"}` {
		t.Errorf("group labels %s", m.GroupLabels)
	}
	if m.CommonLabels["family"] != "TASK_MANAGER_HEAP_MEM_LOAD" || m.CommonLabels["tm"] != "" || m.CommonLabels["level"] != "WARN" {
		t.Errorf("common labels %s", m.CommonLabels)
	}
	if len(m.CommonAnnotations) != 0 {
		t.Errorf("common annotations %s", m.CommonAnnotations)
	}
	if m.ExternalURL != "http://tw.example" || m.Receiver != "ops" || m.GroupKey != `0:ops:{alertname="TASK_MANAGER_HEAP_MEM_LOAD_HIGH", job="j1"}` {
		t.Errorf("message %+v", m)
	}
	if len(bt.notes[0].alertIDs) != 2 {
		t.Errorf("alert ids %v", bt.notes[0].alertIDs)
	}
}
