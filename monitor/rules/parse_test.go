package rules

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/monitor/cep"
)

var update = flag.Bool("update", false, "rewrite the golden .err files under testdata/bad")

// TestBadFiles loads every file of testdata/bad and compares its errors,
// one per line, with the golden NAME.err beside it.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			var b bytes.Buffer
			for _, e := range Errors(err) {
				if e.File != f {
					t.Errorf("error names file %q, want %q", e.File, f)
				}
				if e.Line == 0 {
					t.Errorf("error without a line: %v", e)
				}
				b.WriteString(e.Error())
				b.WriteByte('\n')
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("errors differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestGoodFiles(t *testing.T) {
	set, err := Load("testdata/good", "../../configs/rules")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Files) < 3 {
		t.Errorf("files %v", set.Files)
	}
	r := set.Rule("EVERY_FEATURE")
	if r == nil {
		t.Fatal("EVERY_FEATURE not loaded")
	}
	if r.Within != 5*time.Minute || r.ResolveAfter != 10*time.Minute || r.Skip != "skipToLast:e2" {
		t.Errorf("within %v resolveAfter %v skip %q", r.Within, r.ResolveAfter, r.Skip)
	}
	if got := strings.Join(r.PartitionBy, ","); got != "jobID" {
		t.Errorf("partitionBy %q", got)
	}
	want := []Stage{
		{Name: "e1", Where: []string{"metricsValue > 0.5"}, Or: []string{"metricsValue < 0.1"}, TimesFrom: 2, TimesTo: 4, Consecutive: true},
		{Name: "e2", Where: []string{"metricsValue > e1.metricsValue"}, Contiguity: cep.Strict, TimesOrMore: 1, Until: "metricsValue < 0", Greedy: true},
		{Name: "e3", Where: []string{"metricsValue > 2", "len(e2) > 0"}, Contiguity: cep.NonDeterministicRelaxed},
		{Name: "e4", Where: []string{"metricsValue == 0"}, Not: true},
		{Name: "e5", Where: []string{"true"}, TimesOrMore: 3, AllowCombinations: true, Optional: true},
	}
	if len(r.Pattern) != len(want) {
		t.Fatalf("pattern %+v", r.Pattern)
	}
	for i, w := range want {
		got := r.Pattern[i]
		got.Line = 0
		if !equalStage(got, w) {
			t.Errorf("stage %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	if r.Action == nil || r.Action.Type != ActionRescale || r.Action.Params["parallelism"] != 4 || !r.Action.DryRun || r.Action.Cooldown != time.Hour {
		t.Errorf("action %+v", r.Action)
	}
	if len(r.Outputs) != 3 || r.Outputs[0].Name != "jobID" || r.Outputs[1].Name != "metricsValue" || r.Outputs[2].Name != "n" {
		t.Errorf("outputs %+v", r.Outputs)
	}
	if d := set.Rule("DISABLED"); d == nil || !d.Disabled || len(set.Enabled()) != len(set.Rules)-1 {
		t.Error("DISABLED is not disabled")
	}
	if s := set.Rule("SHORT_ACTION"); s.Action.Type != ActionSavepoint || s.Action.Cooldown != DefaultActionCooldown {
		t.Errorf("short action %+v", s.Action)
	}
}

func equalStage(a, b Stage) bool {
	return a.Name == b.Name && strings.Join(a.Where, "&") == strings.Join(b.Where, "&") && strings.Join(a.Or, "|") == strings.Join(b.Or, "|") &&
		a.Until == b.Until && a.Contiguity == b.Contiguity && a.Not == b.Not && a.TimesFrom == b.TimesFrom && a.TimesTo == b.TimesTo &&
		a.TimesOrMore == b.TimesOrMore && a.Optional == b.Optional && a.Greedy == b.Greedy && a.Consecutive == b.Consecutive &&
		a.AllowCombinations == b.AllowCombinations
}

func TestDuplicateAcrossFiles(t *testing.T) {
	src := []byte("rules:\n  - name: A\n    level: INFO\n    scope: jobmanager\n    pattern: [{name: e1, where: \"true\"}]\n")
	_, err := LoadSources(Source{Name: "one.yaml", Data: src}, Source{Name: "two.yaml", Data: src})
	es := Errors(err)
	if len(es) != 1 || es[0].File != "two.yaml" || es[0].Line != 2 || !strings.Contains(es[0].Msg, "one.yaml:2") {
		t.Errorf("errors %v", err)
	}
}

func TestEmptyFiles(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "---\n", "rules: []\n", "rules:\n"} {
		rs, err := Parse("x.yaml", []byte(src))
		if src == "rules:\n" {
			if err == nil {
				t.Errorf("%q: no error", src)
			}
			continue
		}
		if err != nil || len(rs) != 0 {
			t.Errorf("%q: %v %v", src, rs, err)
		}
	}
}

func TestMissingPath(t *testing.T) {
	_, err := Load("testdata/no-such-dir")
	es := Errors(err)
	if len(es) != 1 || es[0].File != "testdata/no-such-dir" || !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v", err)
	}
}

func TestOutputs(t *testing.T) {
	rs, err := Parse("o.yaml", []byte(`
rules:
  - name: O
    level: INFO
    scope: taskmanager
    pattern:
      - {name: e1, where: "true", times: 2}
      - {name: e2, where: "true", optional: true}
      - {name: e3, where: "true"}
    output:
      - e1.jobID as jobID
      - e1[0].metricsValue
      - mean(map(e1, .metricsValue)) AS avg
      - e2.metricsValue as missing
      - e3.daemon as daemon
      - e3.time as at
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	ev := func(v float64, s int) cep.Event {
		return cep.Event{Time: t0.Add(time.Duration(s) * time.Second), JobID: "j", MetricsValue: v, Labels: map[string]any{"daemon": "d1"}}
	}
	out := rs[0].EvalOutputs(map[string][]cep.Event{"e1": {ev(1, 0), ev(3, 1)}, "e3": {ev(9, 2)}})
	want := map[string]any{"jobID": "j", "metricsValue": 1.0, "avg": 2.0, "missing": nil, "daemon": "d1", "at": t0.Add(2 * time.Second)}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, out[k], out[k], v)
		}
	}
}

func TestFingerprint(t *testing.T) {
	base := `
rules:
  - name: F
    level: %s
    scope: jobmanager
    within: %s
    pattern: [{name: e1, where: "metricsValue > 1", times: 2}]
    output: [%s]
`
	parse := func(level, within, out string) *Rule {
		t.Helper()
		rs, err := Parse("f.yaml", []byte(fmt.Sprintf(base, level, within, out)))
		if err != nil {
			t.Fatal(err)
		}
		return rs[0]
	}
	a := parse("INFO", "1m", "e1.jobID as jobID")
	if b := parse("WARN", "1m", "e1.tmID as tmID"); a.Fingerprint() != b.Fingerprint() {
		t.Error("level and outputs changed the fingerprint")
	}
	if c := parse("INFO", "2m", "e1.jobID as jobID"); a.Fingerprint() == c.Fingerprint() {
		t.Error("the window did not change the fingerprint")
	}
}

func TestSkipForms(t *testing.T) {
	for _, s := range []string{"noSkip", "skipToNext", "skipPastLastEvent", "skipToFirst:e1", "skipToLast: e1"} {
		if _, err := parseSkip(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "skip", "skipToFirst", "skipToFirst:", "skipToLast:1x"} {
		if _, err := parseSkip(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestKeyGroups(t *testing.T) {
	for _, s := range []string{"all", "0", "0-63", "0-63,100", "1, 2-3"} {
		if err := checkKeyGroups(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "x", "3-1", "-1", "1-", "0-63,"} {
		if err := checkKeyGroups(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
