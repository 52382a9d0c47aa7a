package jobrunner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// boundedSpec is a bounded job writing to out; disorder > maxOutOfOrderness
// makes some records late, which must be dropped identically on replay.
func boundedSpec(name, out string, count int64, disorder, ooo string) string {
	return fmt.Sprintf(`
name: %s
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
`, name, ooo, count, disorder, out)
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

func parseOutput(t *testing.T, path string) []WindowResult {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []WindowResult
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r WindowResult
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestBoundedJobCountsEveryRecord(t *testing.T) {
	const n = 12345
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "counts.jsonl")
	spec := writeSpecFile(t, dir, boundedSpec("bounded", out, n, "400ms", "500ms"))
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

	// Recount independently from the generator.
	parsed, err := ParseSpec([]byte(boundedSpec("bounded", out, n, "400ms", "500ms")), "")
	if err != nil {
		t.Fatal(err)
	}
	g := newDatagen(parsed.Source.Datagen, parsed.Source.Datagen.StartTime.UnixMilli())
	want := map[[2]string]int64{}
	for range n {
		r := g.next()
		start := r.TS - ((r.TS%1000)+1000)%1000
		want[[2]string{fmt.Sprint(start), r.Key}]++
	}

	results := parseOutput(t, out)
	var sum int64
	lastStart := int64(-1 << 62)
	for _, r := range results {
		sum += r.Count
		if r.End-r.Start != 1000 || r.Start < lastStart {
			t.Fatalf("bad window or order: %+v after start %d", r, lastStart)
		}
		lastStart = r.Start
		k := [2]string{fmt.Sprint(r.Start), r.Key}
		if want[k] != r.Count {
			t.Errorf("window %d key %s: count %d, want %d", r.Start, r.Key, r.Count, want[k])
		}
		delete(want, k)
	}
	if sum != n {
		t.Errorf("counts sum to %d, want %d", sum, n)
	}
	if len(want) != 0 {
		t.Errorf("%d window/key pairs missing from the output", len(want))
	}
}

// TestExactlyOnceAcrossCancelAndCrash interrupts a bounded job at several
// offsets — cleanly (cancel with final checkpoint) and as crashes (final
// checkpoint lost or corrupt, torn output) — restores each time, and requires
// the final output to be byte-identical to an uninterrupted run.
func TestExactlyOnceAcrossCancelAndCrash(t *testing.T) {
	const n = 20000
	refDir := t.TempDir()
	refOut := filepath.Join(refDir, "out.jsonl")
	refSpec := writeSpecFile(t, refDir, boundedSpec("exactly-once", refOut, n, "800ms", "300ms"))
	if err := RunMaster(context.Background(), masterOpts(t, refDir, refSpec)); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, refOut)
	results := parseOutput(t, refOut)
	var sum int64
	for _, r := range results {
		sum += r.Count
	}
	if len(results) < 100 || sum >= n {
		t.Fatalf("reference run: %d results summing to %d; want many results and some late records dropped", len(results), sum)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	specFile := writeSpecFile(t, dir, boundedSpec("exactly-once", out, n, "800ms", "300ms"))
	ckDir := filepath.Join(dir, "checkpoints")
	newest := func() string {
		t.Helper()
		store := &checkpointStore{dir: ckDir, retained: 2, log: testLog(t)}
		s, err := store.latest()
		if err != nil || s == nil {
			t.Fatalf("no checkpoint: %v", err)
		}
		return s.path
	}

	steps := []struct {
		cancelAt int64
		crash    string // "", "lose-final-checkpoint", "corrupt-final-checkpoint"
	}{
		{cancelAt: 2550},
		{cancelAt: 7350, crash: "lose-final-checkpoint"},     // resumes at 7000
		{cancelAt: 12420, crash: "corrupt-final-checkpoint"}, // resumes at 12000
		{cancelAt: 12100},
		{cancelAt: 19990, crash: "lose-final-checkpoint"}, // resumes at 19000
	}
	for i, st := range steps {
		ctx, cancel := context.WithCancel(context.Background())
		o := masterOpts(t, dir, specFile)
		o.hooks = &testHooks{batchSize: 10, afterBatch: func(off int64) bool {
			if off >= st.cancelAt {
				cancel()
			}
			return off%1000 == 0
		}}
		err := RunMaster(ctx, o)
		cancel()
		if err != nil {
			t.Fatalf("step %d: RunMaster: %v", i, err)
		}
		if r := readResult(t, dir); r.State != StatusCanceled {
			t.Fatalf("step %d: result %+v, want CANCELED", i, r)
		}
		switch st.crash {
		case "lose-final-checkpoint":
			if err := os.RemoveAll(newest()); err != nil {
				t.Fatal(err)
			}
			// A torn, uncommitted line at the end of the output.
			f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(`{"windowStart":17`)
			f.Close()
		case "corrupt-final-checkpoint":
			flipByte(t, filepath.Join(newest(), "window.state"), headerSize+1)
		}
	}
	if err := RunMaster(context.Background(), masterOpts(t, dir, specFile)); err != nil {
		t.Fatal(err)
	}
	if r := readResult(t, dir); r.State != StatusFinished {
		t.Fatalf("final run: %+v, want FINISHED", r)
	}
	if got := readAll(t, out); !bytes.Equal(got, want) {
		t.Fatalf("output after interruptions (%d bytes) differs from uninterrupted run (%d bytes)", len(got), len(want))
	}

	// Restarting a finished job restores its final state and adds nothing.
	if err := RunMaster(context.Background(), masterOpts(t, dir, specFile)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, out); !bytes.Equal(got, want) {
		t.Fatal("restarting a finished job changed its output")
	}
}

func TestRestoreFromExplicitCheckpointPath(t *testing.T) {
	const n = 6000
	refDir := t.TempDir()
	refOut := filepath.Join(refDir, "out.jsonl")
	if err := RunMaster(context.Background(), masterOpts(t, refDir, writeSpecFile(t, refDir, boundedSpec("p", refOut, n, "0s", "0s")))); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	specFile := writeSpecFile(t, dir, boundedSpec("p", out, n, "0s", "0s"))
	ctx, cancel := context.WithCancel(context.Background())
	o := masterOpts(t, dir, specFile)
	o.CheckpointDir = filepath.Join(dir, "first")
	o.hooks = &testHooks{batchSize: 100, afterBatch: func(off int64) bool {
		if off >= 2500 {
			cancel()
		}
		return false
	}}
	if err := RunMaster(ctx, o); err != nil {
		t.Fatal(err)
	}
	chk := filepath.Join(dir, "first", "chk-1")

	o = masterOpts(t, dir, specFile)
	o.CheckpointDir = filepath.Join(dir, "second")
	o.Restore = chk
	if err := RunMaster(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, out), readAll(t, refOut)) {
		t.Error("output after restoring from an explicit path differs from an uninterrupted run")
	}
	// Ids continue after the restored checkpoint.
	if _, err := os.Stat(filepath.Join(dir, "second", "chk-2", metadataFile)); err != nil {
		t.Errorf("final checkpoint of the restored run is not chk-2: %v", err)
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
				o := masterOpts(t, dir, writeSpecFile(t, dir, boundedSpec("x", filepath.Join(dir, "o"), 10, "0s", "0s")))
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
				spec := writeSpecFile(t, dir, boundedSpec("x", out, 100, "0s", "0s"))
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
