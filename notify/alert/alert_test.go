package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// The fingerprint is Prometheus's (and so Alertmanager's) label-set
// fingerprint, so the same alert has the same id in both.
func TestFingerprintIsPrometheus(t *testing.T) {
	for _, ls := range []Labels{
		{},
		{"alertname": "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", "job": "clicks", "level": "WARN"},
		{"alertname": "X", "job": "作业", "tm": "tm-1", "family": "X"},
	} {
		ms := model.LabelSet{}
		for k, v := range ls {
			ms[model.LabelName(k)] = model.LabelValue(v)
		}
		if got, want := ls.Fingerprint(), Fingerprint(ms.Fingerprint()); got != want {
			t.Errorf("%s: %s, Prometheus %s", ls, got, want)
		}
		fp, err := ParseFingerprint(ls.Fingerprint().String())
		if err != nil || fp != ls.Fingerprint() {
			t.Errorf("round trip %s: %v", ls.Fingerprint(), err)
		}
	}
	a, b := Labels{"a": "bc"}, Labels{"ab": "c"}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("name and value boundaries must matter")
	}
	if _, err := ParseFingerprint("xyz"); err == nil {
		t.Error("bad fingerprint parsed")
	}
}

func TestFamily(t *testing.T) {
	for ev, want := range map[string]string{
		"TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH":      "TASK_MANAGER_HEAP_MEM_LOAD",
		"TASK_MANAGER_HEAP_MEM_LOAD_HIGH":          "TASK_MANAGER_HEAP_MEM_LOAD",
		"TASK_MANAGER_HEAP_MEM_LOAD_LOW":           "TASK_MANAGER_HEAP_MEM_LOAD",
		"JOB_MANAGER_CPU_LOAD_TOO_HIGH":            "JOB_MANAGER_CPU_LOAD",
		"TASK_MANAGER_OPERATOR_LATENCY_HIGH":       "TASK_MANAGER_OPERATOR_LATENCY",
		"JOB_MANAGER_GC_OLD_TOTAL_TIME_LONG":       "JOB_MANAGER_GC_OLD_TOTAL_TIME_LONG",
		"JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO": "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO",
		"_HIGH": "_HIGH",
		"LOW":   "LOW",
	} {
		if got := Family(ev); got != want {
			t.Errorf("Family(%s) = %s, want %s", ev, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := New("j", "E", LevelWarn, Labels{"tm": "1"})
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", MaxValueBytes+1)
	start := time.Now()
	for _, tc := range []struct {
		a    Alert
		want string
	}{
		{Alert{Labels: Labels{"alertname": "E", "level": "WARN"}}, "label job is missing"},
		{New("j", "E", "LOUD", nil), "label level"},
		{New("j", "E", LevelInfo, Labels{"0bad": "x"}), `"0bad" is not a label name`},
		{New("j", "E", LevelInfo, Labels{"v": long}), "longer than"},
		{Alert{Labels: ok.Labels, StartsAt: start, EndsAt: start.Add(-time.Second)}, "endsAt is before startsAt"},
	} {
		if err := tc.a.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.a.Labels, err, tc.want)
		}
	}
	if l, err := ParseLevel(" fatal "); err != nil || l != LevelFatal {
		t.Errorf("ParseLevel: %s %v", l, err)
	}
}

func TestCommonAndSort(t *testing.T) {
	c := Common([]Labels{{"a": "1", "b": "2"}, {"a": "1", "b": "3"}, {"a": "1"}})
	if c.String() != `{a="1"}` {
		t.Errorf("common %s", c)
	}
	now := time.Now()
	as := Alerts{
		{Labels: Labels{"level": "INFO"}, StartsAt: now, Fingerprint: "1"},
		{Labels: Labels{"level": "FATAL"}, StartsAt: now.Add(time.Second), Fingerprint: "2"},
		{Labels: Labels{"level": "FATAL"}, StartsAt: now, Fingerprint: "3"},
	}
	SortAlerts(as)
	if as[0].Fingerprint != "3" || as[1].Fingerprint != "2" || as[2].Fingerprint != "1" {
		t.Errorf("order %v", as)
	}
}
