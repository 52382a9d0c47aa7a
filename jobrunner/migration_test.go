package jobrunner

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseKeyGroupRanges(t *testing.T) {
	good := map[string][]int{"all": nil, "": nil, "3": {3}, "0-2,5": {0, 1, 2, 5}, " 5 , 1-2,2": {1, 2, 5}}
	for in, want := range good {
		if got, err := ParseKeyGroupRanges(in, 128); err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseKeyGroupRanges(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"5-2": "empty", "0-128": "outside 0..127", "x": "not a key group", "-1": "not a key group"} {
		if _, err := ParseKeyGroupRanges(in, 128); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseKeyGroupRanges(%q) error %v, want one containing %q", in, err, msg)
		}
	}
}

// A running job moves its keyed state to Pebble and back on request, while
// records keep flowing, and commits exactly the output of a run that never
// moved.
func TestLiveMigrationKeepsOutputExact(t *testing.T) {
	const n = 150000
	spec := func(out string) string {
		// Paced, so that the job is still running while state moves.
		return strings.Replace(boundedSpec("migrating", out, n, "300ms", "500ms", 2), "rate: 0", "rate: 100000", 1)
	}
	refDir := t.TempDir()
	if err := RunMaster(context.Background(), masterOpts(t, refDir, writeSpecFile(t, refDir, spec(filepath.Join(refDir, "out"))))); err != nil {
		t.Fatal(err)
	}
	want := committedLines(t, filepath.Join(refDir, "out"))

	dir := t.TempDir()
	base, jid, wait := startMasterSpec(t, dir, spec(filepath.Join(dir, "out")))
	res := base + "/jobs/" + jid + "/state-backend/migrations"

	// Bad requests name the field.
	for body, msg := range map[string]string{
		`{"target":"disk"}`:                       "target",
		`{"target":"pebble","keyGroups":"9-3"}`:   "keyGroups",
		`{"target":"pebble","keyGroups":[500]}`:   "keyGroups",
		`{"target":"pebble","extra":1}`:           "unknown field",
		`{"target":"pebble","keyGroups":{"a":1}}`: "keyGroups",
	} {
		status, e := call(t, "POST", res, body)
		if status != 400 || !strings.Contains(fmt.Sprint(e["errors"]), msg) {
			t.Errorf("POST %s = %d %v, want 400 naming %q", body, status, e, msg)
		}
	}

	migrate := func(target string) map[string]any {
		t.Helper()
		poll(t, "keyed state to exist", func() bool {
			_, st := call(t, "GET", res, "")
			return st["status"] != "RUNNING"
		})
		status, st := call(t, "POST", res, `{"target":"`+target+`","keyGroups":"all"}`)
		if status != 202 {
			t.Fatalf("POST migration to %s: %d %v", target, status, st)
		}
		poll(t, "migration to "+target, func() bool {
			_, st = call(t, "GET", res, "")
			return st["status"] == "COMPLETED"
		})
		return st
	}
	// Wait until records flow, then move everything to Pebble, and back.
	poll(t, "records", func() bool {
		_, ov := call(t, "GET", base+"/jobs/"+jid, "")
		return ov["state"] == "RUNNING" && ov["duration"].(float64) > 200
	})
	toPebble := migrate("pebble")
	if b := obj(t, toPebble["backends"]); b["pebble"] != 128.0 || b["heap"] != 0.0 {
		t.Errorf("after moving to Pebble: %v", toPebble)
	}
	if r := obj(t, toPebble["keyGroupRanges"]); r["pebble"] != "0-127" || r["heap"] != "" {
		t.Errorf("key group ranges after moving to Pebble: %v", r)
	}
	// Part of them back, by range.
	status, part := call(t, "POST", res, `{"target":"heap","keyGroups":"0-9,100"}`)
	if status != 202 {
		t.Fatalf("POST partial migration: %d %v", status, part)
	}
	poll(t, "the partial migration", func() bool {
		_, part = call(t, "GET", res, "")
		return part["status"] == "COMPLETED"
	})
	if r := obj(t, part["keyGroupRanges"]); r["heap"] != "0-9,100" || r["pebble"] != "10-99,101-127" {
		t.Errorf("key group ranges after moving 0-9,100 back: %v", r)
	}
	time.Sleep(200 * time.Millisecond) // records now update state on Pebble
	toHeap := migrate("heap")
	if b := obj(t, toHeap["backends"]); b["heap"] != 128.0 {
		t.Errorf("after moving back: %v", toHeap)
	}
	t.Logf("to Pebble: %v entries in %.1f ms (longest step %.2f ms); back: %v entries in %.1f ms (longest step %.2f ms)",
		toPebble["entriesMoved"], toPebble["movingMs"], toPebble["maxStallMs"], toHeap["entriesMoved"], toHeap["movingMs"], toHeap["maxStallMs"])
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if r := readResult(t, dir); r.State != StatusFinished {
		t.Fatalf("result %+v", r)
	}
	got := committedLines(t, filepath.Join(dir, "out"))
	if !slices.Equal(got, want) {
		t.Errorf("output with migrations differs from the reference: %d lines, want %d", len(got), len(want))
	}
}

// The memory-pressure policy moves the state to Pebble by itself once the
// heap load stays above its threshold (here a threshold every process
// exceeds, so that the test does not need to fill memory).
func TestMemoryPressureMigratesToPebble(t *testing.T) {
	dir := t.TempDir()
	spec := strings.Replace(unboundedSpec, "OUT", filepath.Join(dir, "out"), 1) +
		"resources: {memory: 64m}\nautoMigrate: {heapLoad: 0.001, sustain: 0s}\n"
	base, jid, _ := startMasterSpec(t, dir, spec)
	res := base + "/jobs/" + jid + "/state-backend/migrations"
	var st map[string]any
	poll(t, "the policy's migration", func() bool {
		_, st = call(t, "GET", res, "")
		return st["status"] == "COMPLETED"
	})
	if st["trigger"] != "memory-pressure" || obj(t, st["backends"])["pebble"] != 128.0 {
		t.Errorf("status %v, want all key groups moved to Pebble by memory-pressure", st)
	}
}
