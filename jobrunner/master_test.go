package jobrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// boundedSpec is a bounded job writing part files to out; with ooo at
// least the disorder, no record is late.
func boundedSpec(name, out string, count int64, disorder, ooo string, par int) string {
	return fmt.Sprintf(`
name: %s
parallelism: %d
watermark:
  maxOutOfOrderness: %s
checkpoint:
  interval: 0s
  retained: 2
source:
  type: datagen
  datagen:
    rate: 0
    keys: 20
    seed: 7
    count: %d
    disorder: %s
    startTime: 2024-05-01T00:00:00Z
keyBy: key
window:
  type: tumbling
  size: 1s
aggregate: count
sink:
  type: file
  file:
    path: %s
`, name, par, ooo, count, disorder, out)
}

func writeSpecFile(t *testing.T, dir, spec string) string {
	t.Helper()
	p := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func masterOpts(t *testing.T, workDir, specFile string) MasterOptions {
	t.Helper()
	o := DefaultMasterOptions()
	o.SpecFile = specFile
	o.WorkDir = workDir
	o.Log = testLog(t)
	return o
}

func readResult(t *testing.T, workDir string) Result {
	t.Helper()
	r, err := ReadResult(workDir)
	if err != nil {
		t.Fatalf("read result: %v", err)
	}
	return r
}

// committedLines returns the lines of the committed part files in dir,
// sorted; files still in progress or pending are not output yet.
func committedLines(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		for _, l := range strings.Split(strings.TrimSpace(string(readAll(t, f))), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

type windowCount struct {
	Start int64  `json:"windowStart"`
	End   int64  `json:"windowEnd"`
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

func parseCounts(t *testing.T, lines []string) []windowCount {
	t.Helper()
	out := make([]windowCount, len(lines))
	for i, l := range lines {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
	}
	return out
}

// A bounded datagen job through key-by and a tumbling count: per-window
// counts sum to exactly N, at parallelism 1 and 4.
func TestBoundedJobCountsEveryRecord(t *testing.T) {
	const n = 12345
	var results [][]windowCount
	for _, par := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallelism %d", par), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			spec := writeSpecFile(t, dir, boundedSpec("bounded", out, n, "400ms", "500ms", par))
			if err := RunMaster(context.Background(), masterOpts(t, dir, spec)); err != nil {
				t.Fatalf("RunMaster: %v", err)
			}
			if r := readResult(t, dir); r.State != StatusFinished || r.Error != "" || r.EndTime <= 0 {
				t.Errorf("result = %+v, want FINISHED", r)
			}
			info, err := ReadMasterInfo(dir)
			if err != nil || info.PID != os.Getpid() || !jobIDRE.MatchString(info.JobID) || info.URL == "" || info.StartTime <= 0 {
				t.Errorf("jobmaster.json = %+v, %v", info, err)
			}
			counts := parseCounts(t, committedLines(t, out))
			var sum int64
			seen := map[[2]string]bool{}
			for _, c := range counts {
				sum += c.Count
				if c.End-c.Start != 1000 || c.Start%1000 != 0 {
					t.Fatalf("window [%d, %d) is not a 1s tumbling window", c.Start, c.End)
				}
				k := [2]string{fmt.Sprint(c.Start), c.Key}
				if seen[k] {
					t.Fatalf("window %v emitted twice", k)
				}
				seen[k] = true
			}
			if sum != n {
				t.Fatalf("per-window counts sum to %d, want %d", sum, n)
			}
			results = append(results, counts)
		})
	}
	if len(results) == 2 && !slices.Equal(results[0], results[1]) {
		t.Error("parallelism 1 and 4 give different per-window counts for the same input")
	}
}

// Cancelled at several points and restored each time — alternately into the
// heap and the Pebble backend, so every restore crosses backends — a job
// commits exactly the output of an uninterrupted run.
func TestExactlyOnceAcrossCancels(t *testing.T) {
	const n = 200000
	spec := func(out string) string {
		// No record is late: with parallel sources, which records are late
		// depends on how their watermarks interleave, in any run.
		s := boundedSpec("eo", out, n, "300ms", "500ms", 3)
		s = strings.Replace(s, "rate: 0", "rate: 400000", 1) // paced, so cancels land mid-run; event time follows the rate
		return strings.Replace(s, "interval: 0s", "interval: 100ms", 1)
	}
	refDir := t.TempDir()
	if err := RunMaster(context.Background(), masterOpts(t, refDir, writeSpecFile(t, refDir, spec(filepath.Join(refDir, "out"))))); err != nil {
		t.Fatal(err)
	}
	want := committedLines(t, filepath.Join(refDir, "out"))

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	backends := map[string]int{}
	for run := 0; ; run++ {
		backend := []string{BackendHeap, BackendPebble}[run%2]
		backends[backend]++
		specFile := writeSpecFile(t, dir, spec(out)+"stateBackend: "+backend+"\n")
		ctx, cancel := context.WithCancel(context.Background())
		o := masterOpts(t, dir, specFile)
		timer := time.AfterFunc(time.Duration(150+run*70)*time.Millisecond, cancel)
		err := RunMaster(ctx, o)
		timer.Stop()
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if r := readResult(t, dir); r.State == StatusFinished {
			if run == 0 {
				t.Log("the job finished before the first cancel")
			}
			t.Logf("runs per backend: %v", backends)
			break
		}
		if run > 50 {
			t.Fatal("the job never finished")
		}
	}
	if got := committedLines(t, out); !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("line %d: %s, uninterrupted %s", i, got[i], want[i])
			}
		}
		t.Fatalf("committed output after cancels and restores has %d lines, an uninterrupted run %d", len(got), len(want))
	}
}

func TestRestoreFromExplicitCheckpointPath(t *testing.T) {
	const n = 6000
	refDir := t.TempDir()
	if err := RunMaster(context.Background(), masterOpts(t, refDir, writeSpecFile(t, refDir, boundedSpec("p", filepath.Join(refDir, "out"), n, "0s", "0s", 1)))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	specFile := writeSpecFile(t, dir, boundedSpec("p", out, n, "0s", "0s", 1))
	o := masterOpts(t, dir, specFile)
	o.CheckpointDir = filepath.Join(dir, "first")
	if err := RunMaster(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	chk := filepath.Join(dir, "first", "chk-1") // the final checkpoint: everything is done

	o = masterOpts(t, dir, specFile)
	o.CheckpointDir = filepath.Join(dir, "second")
	o.Restore = chk
	if err := RunMaster(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(committedLines(t, out), committedLines(t, filepath.Join(refDir, "out"))) {
		t.Error("output after restoring a finished job from an explicit path differs from one run")
	}
	// Ids continue after the restored checkpoint.
	if _, err := os.Stat(filepath.Join(dir, "second", "chk-2", metadataFile)); err != nil {
		t.Errorf("final checkpoint of the restored run is not chk-2: %v", err)
	}

	// A later attempt with the same command line (as YARN restarts an AM)
	// restores the newer chk-2 of its own directory rather than chk-1.
	for _, prefer := range []bool{false, true} {
		storage, err := openCheckpointStorage(filepath.Join(dir, "second"), testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(specFile)
		spec, err := ParseSpec(data, "")
		if err != nil {
			t.Fatal(err)
		}
		j := newJob(NewJobID(), spec, testLog(t), time.Now())
		if j.metrics, err = newJobMetrics(prometheus.NewRegistry(), j, time.Now); err != nil {
			t.Fatal(err)
		}
		p := newPipeline(j, spec, &checkpointStore{storage: storage, retained: 2, log: testLog(t)}, &built{})
		p.preferNewer = prefer
		if err := p.restoreAndOpen(chk, time.Now()); err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if prefer {
			want = 2
		}
		if got := j.ckpt.restoredFrom.ID; got != want {
			t.Errorf("preferNewer %v: restored checkpoint %d, want %d", prefer, got, want)
		}
		storage.Close()
	}
}

func TestRunMasterFailures(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, dir string) MasterOptions
		wantErr    error
		wantResult bool // result.json FAILED written
	}{
		{
			name: "already running",
			setup: func(t *testing.T, dir string) MasterOptions {
				o := masterOpts(t, dir, writeSpecFile(t, dir, boundedSpec("x", filepath.Join(dir, "o"), 10, "0s", "0s", 1)))
				os.MkdirAll(filepath.Join(dir, "checkpoints"), 0o755)
				unlock, err := lockDir(filepath.Join(dir, "checkpoints"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(unlock)
				return o
			},
			wantErr: ErrAlreadyRunning,
		},
		{
			name: "invalid spec",
			setup: func(t *testing.T, dir string) MasterOptions {
				return masterOpts(t, dir, writeSpecFile(t, dir, "name: x\n"))
			},
			wantErr:    (*SpecError)(nil),
			wantResult: true,
		},
		{
			name: "incompatible checkpoint",
			setup: func(t *testing.T, dir string) MasterOptions {
				out := filepath.Join(dir, "o")
				spec := writeSpecFile(t, dir, boundedSpec("x", out, 100, "0s", "0s", 1))
				if err := RunMaster(context.Background(), masterOpts(t, dir, spec)); err != nil {
					t.Fatal(err)
				}
				spec2 := bytes.Replace(readAll(t, spec), []byte("size: 1s"), []byte("size: 2s"), 1)
				writeAll(t, spec, spec2)
				return masterOpts(t, dir, spec)
			},
			wantErr:    ErrIncompatibleCheckpoint,
			wantResult: true,
		},
		{
			name: "bad job id",
			setup: func(t *testing.T, dir string) MasterOptions {
				o := masterOpts(t, dir, "x.yaml")
				o.JobID = "NOT-HEX"
				return o
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := RunMaster(context.Background(), tc.setup(t, dir))
			if err == nil {
				t.Fatal("RunMaster succeeded")
			}
			if se, ok := tc.wantErr.(*SpecError); ok {
				if !errors.As(err, &se) {
					t.Errorf("err = %v, want a *SpecError", err)
				}
			} else if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			_, rerr := os.Stat(filepath.Join(dir, ResultFile))
			if (rerr == nil) != tc.wantResult {
				t.Errorf("result.json written = %v, want %v", rerr == nil, tc.wantResult)
			}
			if tc.wantResult {
				if r := readResult(t, dir); r.State != StatusFailed || r.Error == "" {
					t.Errorf("result = %+v, want FAILED with an error", r)
				}
			}
		})
	}
}

func TestMasterOptionsValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*MasterOptions)
		field string // "" = valid
	}{
		{"defaults with spec", func(o *MasterOptions) {}, ""},
		{"no spec", func(o *MasterOptions) { o.SpecFile = "" }, "SpecFile"},
		{"bad job id", func(o *MasterOptions) { o.JobID = "abc" }, "JobID"},
		{"upper-case job id", func(o *MasterOptions) { o.JobID = "0123456789ABCDEF0123456789ABCDEF" }, "JobID"},
		{"good job id", func(o *MasterOptions) { o.JobID = NewJobID() }, ""},
		{"bad listen", func(o *MasterOptions) { o.Listen = "no-port" }, "Listen"},
	}
	for _, tc := range tests {
		o := DefaultMasterOptions()
		o.SpecFile = "job.yaml"
		tc.mod(&o)
		err := o.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.field != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.field))):
			t.Errorf("%s: error %v does not name %s", tc.name, err, tc.field)
		}
	}
}

// With time: processing, records are stamped at the source and every one is
// counted once the bounded input ends.
func TestProcessingTimeJob(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	spec := strings.Replace(boundedSpec("proc", out, n, "0s", "0s", 2), "name: proc", "name: proc\ntime: processing", 1)
	if err := RunMaster(context.Background(), masterOpts(t, dir, writeSpecFile(t, dir, spec))); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range parseCounts(t, committedLines(t, out)) {
		sum += c.Count
	}
	if sum != n {
		t.Fatalf("counts sum to %d, want %d", sum, n)
	}
}

// Records later than the window allows go to the lateSink: window counts and
// late records together account for every record.
func TestLateSideOutput(t *testing.T) {
	const n = 20000
	dir := t.TempDir()
	out, late := filepath.Join(dir, "out"), filepath.Join(dir, "late")
	spec := boundedSpec("late", out, n, "3s", "100ms", 1) + "lateSink:\n  type: file\n  file:\n    path: " + late + "\n"
	if err := RunMaster(context.Background(), masterOpts(t, dir, writeSpecFile(t, dir, spec))); err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, c := range parseCounts(t, committedLines(t, out)) {
		counted += c.Count
	}
	lateLines := committedLines(t, late)
	if len(lateLines) == 0 {
		t.Fatal("no record was late: the test does not exercise the side output")
	}
	var rec struct {
		Key   string  `json:"key"`
		Value float64 `json:"value"`
		TS    int64   `json:"ts"`
	}
	if err := json.Unmarshal([]byte(lateLines[0]), &rec); err != nil || rec.Key == "" || rec.TS == 0 {
		t.Fatalf("late record %q: %v", lateLines[0], err)
	}
	if counted+int64(len(lateLines)) != n {
		t.Fatalf("%d counted + %d late = %d, want %d", counted, len(lateLines), counted+int64(len(lateLines)), n)
	}
}
