package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesCheck(t *testing.T) {
	out, err := runCLI(t, "rules", "check", "../../configs/rules")
	if err != nil || !strings.Contains(out, "taskmanager.yaml: 16 rules, OK") {
		t.Fatalf("check the catalogue: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: X\n    level: SEVERE\n    scope: jobmanager\n    pattern:\n      - name: e1\n        where: metricsValue >\n"), 0o644)
	out, err = runCLI(t, "rules", "check", bad)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exit status 1", err)
	}
	for _, want := range []string{bad + ":3: rules[0].level: must be one of INFO, WARN, FATAL", bad + ":7: rules[0].pattern[0].where:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _ = runCLI(t, "rules", "check", "-o", "json", bad)
	var res struct {
		OK     bool
		Errors []struct {
			File, Field string
			Line        int
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.OK || len(res.Errors) != 2 || res.Errors[0].Line != 3 || res.Errors[0].Field != "rules[0].level" {
		t.Errorf("json %+v (%v):\n%s", res, err, out)
	}
}

func TestRulesTest(t *testing.T) {
	out, err := runCLI(t, "rules", "test", "../../configs/rules", "--trace", "../../monitor/testdata/traces/TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH.jsonl", "--until", "10m")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FIRE     FATAL  TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH", "action=migrate-to-pebble", "RESOLVE", "1 firing (TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "rules", "test", "../../configs/rules", "--trace", "../../monitor/testdata/traces/JOB_MANAGER_FULL_RESTARTS_INCREASE.jsonl", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Notices []struct {
			Firing *struct {
				Rule, Level string
				Fields      map[string]any
				Samples     []struct{ Stage string }
			}
		}
		Events int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Notices) != 1 || res.Notices[0].Firing == nil {
		t.Fatalf("json (%v):\n%s", err, out)
	}
	f := res.Notices[0].Firing
	if f.Rule != "JOB_MANAGER_FULL_RESTARTS_INCREASE" || f.Level != "WARN" || f.Fields["before"] != 0.0 || f.Fields["metricsValue"] != 1.0 || len(f.Samples) != 2 {
		t.Errorf("firing %+v", f)
	}
	// a broken trace names its line
	trace := filepath.Join(t.TempDir(), "t.jsonl")
	os.WriteFile(trace, []byte(`{"time":"2026-01-05T10:00:00Z","scope":"jobmanager","jobID":"j","metricsName":"up","metricsValue":1}
{"time":"2026-01-05T10:00:15Z","scope":"worker","jobID":"j","metricsName":"up","metricsValue":1}
`), 0o644)
	if _, err := runCLI(t, "rules", "test", "../../configs/rules", "--trace", trace); err == nil || !strings.Contains(err.Error(), "t.jsonl:2: scope") {
		t.Errorf("err = %v", err)
	}
}
