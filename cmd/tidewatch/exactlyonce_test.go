package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner"
	"github.com/tidewatch/tidewatch/jobrunner/connectors"
	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// The bounded job of TestExactlyOnceAcrossKills. Records: eoRecords from a
// seeded datagen at eoRate/s (about four seconds of wall time), event times
// moved back by up to eoDisorderMs, two source and two window subtasks.
// maxOutOfOrderness equals the disorder, so no record is ever late and the
// result does not depend on how the two sources interleave: two runs must
// produce the same multiset of lines. The aggregates are order-independent
// (count, integer sum, min, max; no float sum), and tsSum is a checksum of
// exactly which records went into each window. A small rollSize makes the
// sink roll parts between checkpoints, so kills also leave rolled .pending
// parts that no checkpoint covers yet.
const (
	eoRecords    = 200_000
	eoRate       = 50_000
	eoKeys       = 40
	eoSeed       = 42
	eoDisorderMs = 25
	eoWindowMs   = 50
	eoValueMean  = 20
	eoFilterMax  = 60 // filter: value < 60
	eoStart      = "2024-05-01T00:00:00Z"
)

const eoSpecTemplate = `name: exactly-once
parallelism: 2
watermark: {maxOutOfOrderness: %[2]dms}
checkpoint: {interval: 200ms, retained: 2}
source:
  type: datagen
  datagen:
    rate: %[3]d
    keys: %[4]d
    seed: %[5]d
    count: %[6]d
    disorder: %[2]dms
    startTime: %[7]s
    values: {distribution: exponential, mean: %[8]d}
transforms:
  - filter: "value < %[9]d"
keyBy: key
window: {type: tumbling, size: %[10]dms, allowedLateness: 30ms}
aggregate:
  - {fn: count, as: n}
  - {fn: sum, field: ts, as: tsSum}
  - {fn: min, field: value, as: lo}
  - {fn: max, field: value, as: hi}
sink: {type: file, file: {path: %[1]q, format: jsonl, rollSize: 4096}}
`

// eoJob is one job: its spec, work, checkpoint and output directories.
type eoJob struct {
	t       *testing.T
	jobID   string
	spec    string
	workDir string
	ckptDir string
	outDir  string
}

func newEOJob(t *testing.T, name string) *eoJob {
	root := filepath.Join(t.TempDir(), name)
	j := &eoJob{t: t, jobID: jobrunner.NewJobID(), workDir: filepath.Join(root, "work"),
		ckptDir: filepath.Join(root, "checkpoints"), outDir: filepath.Join(root, "output")}
	if err := os.MkdirAll(j.workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	j.spec = filepath.Join(root, "job.yaml")
	spec := fmt.Sprintf(eoSpecTemplate, j.outDir, eoDisorderMs, eoRate, eoKeys, eoSeed, eoRecords, eoStart,
		eoValueMean, eoFilterMax, eoWindowMs)
	if err := os.WriteFile(j.spec, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

// amChild is one `tidewatch am` process (this test binary re-executed).
type amChild struct {
	job     *eoJob
	attempt int
	cmd     *exec.Cmd
	logPath string
	started time.Time
	upAfter time.Duration // from exec to its jobmaster.json
	// killedAfter is when (after exec) this test sent SIGKILL.
	killedAfter time.Duration
	done        chan struct{}
	waitErr     error
}

// start runs attempt n of the job with --restore restore.
func (j *eoJob) start(attempt int, restore string) *amChild {
	j.t.Helper()
	c := &amChild{job: j, attempt: attempt, done: make(chan struct{}),
		logPath: filepath.Join(j.workDir, fmt.Sprintf("am-%d.log", attempt))}
	logf, err := os.Create(c.logPath)
	if err != nil {
		j.t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(os.Args[0], "am", "--spec", j.spec, "--job-id", j.jobID,
		"--attempt", strconv.Itoa(attempt), "--work-dir", j.workDir, "--checkpoint-dir", j.ckptDir,
		"--restore", restore)
	c.cmd.Env = append(os.Environ(), "TIDEWATCH_E2E_MAIN=1")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		j.t.Fatal(err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	j.t.Cleanup(func() { // never leave a job master behind
		c.kill()
		<-c.done
	})
	return c
}

func (c *amChild) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to this child (by its pid) unless it has exited, and
// reports whether the signal was sent.
func (c *amChild) kill() bool {
	if c.exited() {
		return false
	}
	at := time.Since(c.started)
	if c.cmd.Process.Signal(syscall.SIGKILL) != nil {
		return false
	}
	if c.killedAfter == 0 {
		c.killedAfter = at
	}
	return true
}

// killedBySignal reports, after exit, whether SIGKILL ended the process.
func (c *amChild) killedBySignal() bool {
	<-c.done
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// logTail is the end of the child's log, for failure messages.
func (c *amChild) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 4000 {
		b = append([]byte("…"), b[len(b)-4000:]...)
	}
	return string(b)
}

// waitMaster waits for this process's jobmaster.json (its REST API is up and
// the job is about to run). ok is false if the process exited first.
func (c *amChild) waitMaster(limit time.Duration) (info jobrunner.MasterInfo, ok bool) {
	t := c.job.t
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		// A killed predecessor leaves its jobmaster.json; only ours counts.
		if info, err := jobrunner.ReadMasterInfo(c.job.workDir); err == nil && info.PID == c.cmd.Process.Pid {
			c.upAfter = time.Since(c.started)
			return info, true
		}
		if c.exited() {
			return info, false
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt %d: no jobmaster.json after %s; log:\n%s", c.attempt, limit, c.logTail())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitExit waits for the process to exit by itself and returns its result.
func (c *amChild) waitExit(limit time.Duration) jobrunner.Result {
	t := c.job.t
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(limit):
		t.Fatalf("attempt %d: still running after %s; log:\n%s", c.attempt, limit, c.logTail())
	}
	res, err := jobrunner.ReadResult(c.job.workDir)
	if err != nil {
		t.Fatalf("attempt %d: exited (%v) without %s: %v; log:\n%s", c.attempt, c.waitErr, jobrunner.ResultFile, err, c.logTail())
	}
	if c.waitErr != nil || res.State != jobrunner.StatusFinished {
		t.Fatalf("attempt %d: exit %v, result %+v, want exit 0 and FINISHED; log:\n%s", c.attempt, c.waitErr, res, c.logTail())
	}
	return res
}

// checkNoRace fails if the child (built with -race) reported a data race.
func (c *amChild) checkNoRace() {
	if b, _ := os.ReadFile(c.logPath); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		c.job.t.Errorf("attempt %d: data race in the job master; log:\n%s", c.attempt, c.logTail())
	}
}

// sleepOrExit sleeps d, returning false early if the process exits.
func (c *amChild) sleepOrExit(d time.Duration) bool {
	select {
	case <-c.done:
		return false
	case <-time.After(d):
		return true
	}
}

// completeCheckpoints returns the ids of the complete checkpoints on disk
// (those with _metadata), ascending, and the highest id of any chk-N
// directory, complete or not.
func (j *eoJob) completeCheckpoints() (complete []int64, maxID int64) {
	entries, _ := os.ReadDir(j.ckptDir)
	for _, e := range entries {
		idStr, ok := strings.CutPrefix(e.Name(), "chk-")
		if !e.IsDir() || !ok {
			continue
		}
		id, err := strconv.ParseInt(idStr, 10, 64)
		if err != nil {
			continue
		}
		maxID = max(maxID, id)
		if _, err := os.Stat(filepath.Join(j.ckptDir, e.Name(), "_metadata")); err == nil {
			complete = append(complete, id)
		}
	}
	slices.Sort(complete)
	return complete, maxID
}

// outputState lists the sink's directory: the committed lines, the
// uncommitted part files (.inprogress, .pending) and any other file.
type outputState struct {
	lines       []string
	parts       int
	uncommitted []string
	other       []string
}

func (j *eoJob) output() outputState {
	j.t.Helper()
	var st outputState
	entries, err := os.ReadDir(j.outDir)
	if errors.Is(err, os.ErrNotExist) {
		return st
	}
	if err != nil {
		j.t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".inprogress") || strings.HasSuffix(name, ".pending")):
			st.uncommitted = append(st.uncommitted, name)
		case strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".jsonl"):
			b, err := os.ReadFile(filepath.Join(j.outDir, name))
			if errors.Is(err, os.ErrNotExist) {
				continue // cannot happen once committed; tolerated while polling
			}
			if err != nil {
				j.t.Fatal(err)
			}
			if len(b) > 0 && b[len(b)-1] != '\n' {
				j.t.Errorf("committed part %s ends in a torn line: …%q", name, b[max(0, len(b)-80):])
			}
			st.parts++
			for l := range strings.Lines(string(b)) {
				st.lines = append(st.lines, strings.TrimSuffix(l, "\n"))
			}
		default:
			st.other = append(st.other, name)
		}
	}
	return st
}

// committedLines counts committed lines cheaply enough to poll.
func (j *eoJob) committedLines() int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(j.outDir, "part-*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

// ownParts returns the .pending paths of the parts checkpoint id lists as
// its own (closed at that checkpoint). Diagnostics only; it reads the
// checkpoint's sinks.state: a 20-byte envelope header, then JSON holding
// each sink subtask's state. ok is false if that cannot be read.
func (j *eoJob) ownParts(id int64) (paths []string, ok bool) {
	raw, err := os.ReadFile(filepath.Join(j.ckptDir, "chk-"+strconv.FormatInt(id, 10), "sinks.state"))
	var states struct{ Sinks [][]byte }
	if err != nil || len(raw) < 20 || json.Unmarshal(raw[20:], &states) != nil {
		return nil, false
	}
	for _, b := range states.Sinks {
		var st struct {
			Subtask int
			Pending []struct{ Checkpoint, Seq int64 }
		}
		if json.Unmarshal(b, &st) != nil {
			return nil, false
		}
		for _, p := range st.Pending {
			if p.Checkpoint == id {
				paths = append(paths, filepath.Join(j.outDir, fmt.Sprintf(".part-%d-%d.pending", st.Subtask, p.Seq)))
			}
		}
	}
	return paths, true
}

func countExisting(paths []string) int {
	n := 0
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			n++
		}
	}
	return n
}

// pendingOf describes, after a kill, how many of the parts of checkpoint id
// were still uncommitted (.pending): if any, the kill fell between storing
// the checkpoint and committing its output, and the restore must commit them.
func (j *eoJob) pendingOf(id int64) string {
	paths, ok := j.ownParts(id)
	if !ok {
		return "its sink state is unreadable"
	}
	return fmt.Sprintf("%d of its %d parts still .pending", countExisting(paths), len(paths))
}

// runToEnd runs one attempt that must end FINISHED and returns the output.
func (j *eoJob) runToEnd(attempt int, restore string, limit time.Duration) outputState {
	j.t.Helper()
	c := j.start(attempt, restore)
	c.waitExit(limit)
	c.checkNoRace()
	return j.output()
}

// killPoint waits in attempt c for a moment to kill it; it returns a
// description of that moment, or "" if the process exited by itself first.
// wait is called once the REST API is up (info), or with beforeREST right
// after the process is started (info is then zero).
type killPoint struct {
	name       string
	beforeREST bool
	wait       func(c *amChild, info jobrunner.MasterInfo) (what string)
}

func TestExactlyOnceAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real job processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEWATCH_EO_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TIDEWATCH_EO_SEED: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill timing seed %d (rerun with TIDEWATCH_EO_SEED=%d)", seed, seed)
	runLimit := 60 * time.Second

	// 1. Reference: one uninterrupted run, checked against the records the
	// datagen source generates.
	refStart := time.Now()
	ref := newEOJob(t, "reference")
	refOut := ref.runToEnd(1, jobrunner.RestoreNone, runLimit)
	refTime := time.Since(refStart)
	if len(refOut.uncommitted) > 0 || len(refOut.other) > 0 {
		t.Fatalf("reference run left uncommitted %v, unexpected %v", refOut.uncommitted, refOut.other)
	}
	records := checkAgainstSource(t, refOut.lines)
	t.Logf("reference run: %s, %d records in, %d lines in %d committed parts", refTime.Round(time.Millisecond), records, len(refOut.lines), refOut.parts)

	// 2. The same job, killed with SIGKILL at several points and restarted
	// from its latest checkpoint each time.
	killed := newEOJob(t, "killed")
	jm := jobmaster.New(2 * time.Second)
	checkpoints := func(info jobrunner.MasterInfo) (jobmaster.CheckpointStats, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return jm.Checkpoints(ctx, info.URL, killed.jobID)
	}
	refLines := len(refOut.lines)
	var upAfter time.Duration // how long the previous attempt took to start
	points := []killPoint{
		{"before the first checkpoint", false, func(c *amChild, _ jobrunner.MasterInfo) string {
			// As soon as the sink has uncommitted output on disk (a part
			// rolled to .pending) or a checkpoint has started.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if c.exited() {
					return ""
				}
				if _, maxID := killed.completeCheckpoints(); maxID > 0 {
					return "as soon as the first checkpoint started"
				}
				if slices.ContainsFunc(killed.output().uncommitted, func(n string) bool { return strings.HasSuffix(n, ".pending") }) {
					return "as soon as a rolled .pending part was on disk"
				}
				time.Sleep(time.Millisecond)
			}
			return "5s after the REST API came up, without output or checkpoint"
		}},
		{"right after a checkpoint completed (REST)", false, func(c *amChild, info jobrunner.MasterInfo) string {
			// Two checkpoints completed in this attempt, as reported by
			// GET /jobs/{id}/checkpoints: the second is killed right after.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if c.exited() {
					return ""
				}
				if st, err := checkpoints(info); err == nil && st.Counts.Completed >= 2 && st.Latest.Completed != nil {
					return fmt.Sprintf("right after checkpoint %d completed (REST: %d completed in this attempt)", st.Latest.Completed.ID, st.Counts.Completed)
				}
				time.Sleep(2 * time.Millisecond)
			}
			t.Fatalf("attempt %d: no two checkpoints completed in 20s; log:\n%s", c.attempt, c.logTail())
			return ""
		}},
		{"checkpoint stored, sinks perhaps not committed", false, func(c *amChild, _ jobrunner.MasterInfo) string {
			// The instant the next checkpoint's _metadata is renamed into
			// place, typically before the sinks have committed its parts.
			_, maxID := killed.completeCheckpoints()
			meta := filepath.Join(killed.ckptDir, "chk-"+strconv.FormatInt(maxID+1, 10), "_metadata")
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if c.exited() {
					return ""
				}
				if _, err := os.Stat(meta); err == nil {
					c.kill()
					<-c.done
					return fmt.Sprintf("as soon as chk-%d/_metadata existed; %s", maxID+1, killed.pendingOf(maxID+1))
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Fatalf("attempt %d: %s did not appear in 20s; log:\n%s", c.attempt, meta, c.logTail())
			return ""
		}},
		{"during start-up and restore", true, func(c *amChild, _ jobrunner.MasterInfo) string {
			// Follows the kill that typically leaves a stored checkpoint
			// whose parts are still .pending. The restore commits them
			// (renames) and discards the other uncommitted parts: kill it
			// as soon as the first of them is committed. Without such
			// parts, kill at a random moment between exec and the REST API
			// (as long as that took the previous attempt).
			var parts []string
			newest := int64(0)
			if ckpts, _ := killed.completeCheckpoints(); len(ckpts) > 0 {
				newest = ckpts[len(ckpts)-1]
				parts, _ = killed.ownParts(newest)
			}
			ours := func() bool {
				info, err := jobrunner.ReadMasterInfo(killed.workDir)
				return err == nil && info.PID == c.cmd.Process.Pid
			}
			var what string
			if pending := countExisting(parts); pending > 0 {
				deadline := time.Now().Add(30 * time.Second)
				// The sinks open (and commit) in the engine's start,
				// just after jobmaster.json is written.
				for countExisting(parts) == pending && !c.exited() && time.Now().Before(deadline) {
					time.Sleep(50 * time.Microsecond)
				}
				if c.exited() {
					return ""
				}
				c.kill()
				<-c.done
				what = fmt.Sprintf("%s after exec, as soon as the restore of chk-%d began committing its %d pending parts",
					c.killedAfter.Round(10*time.Microsecond), newest, pending)
			} else {
				d := time.Duration(rng.Int64N(int64(upAfter) + 1))
				if !c.sleepOrExit(d) {
					return ""
				}
				c.kill()
				<-c.done
				what = fmt.Sprintf("%s after exec, at random (the previous attempt took %s to start)",
					c.killedAfter.Round(10*time.Microsecond), upAfter.Round(10*time.Microsecond))
			}
			if ours() {
				what += ", REST API already up"
			} else {
				what += ", before its REST API was up"
			}
			if newest > 0 {
				what += fmt.Sprintf("; chk-%d: %s", newest, killed.pendingOf(newest))
			}
			return what
		}},
		{"random moment", false, func(c *amChild, _ jobrunner.MasterInfo) string {
			d := time.Duration(20+rng.IntN(680)) * time.Millisecond
			if !c.sleepOrExit(d) {
				return ""
			}
			return fmt.Sprintf("%s after the REST API came up", d)
		}},
		{"random moment", false, func(c *amChild, _ jobrunner.MasterInfo) string {
			d := time.Duration(20+rng.IntN(680)) * time.Millisecond
			if !c.sleepOrExit(d) {
				return ""
			}
			return fmt.Sprintf("%s after the REST API came up", d)
		}},
		{"late in the stream", false, func(c *amChild, _ jobrunner.MasterInfo) string {
			// Once 80–95% of the reference output is committed.
			frac := 0.80 + 0.15*rng.Float64()
			deadline := time.Now().Add(runLimit)
			for time.Now().Before(deadline) {
				if c.exited() {
					return ""
				}
				if n := killed.committedLines(); float64(n) >= frac*float64(refLines) {
					return fmt.Sprintf("with %d of %d lines (%.0f%%) committed", n, refLines, 100*float64(n)/float64(refLines))
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Fatalf("attempt %d: output stuck below %.0f%%; log:\n%s", c.attempt, 100*frac, c.logTail())
			return ""
		}},
	}

	killedStart := time.Now()
	kills := 0
	attempt := 0
	var last *amChild
	restore := jobrunner.RestoreNone // the first attempt starts over, like the reference
	for _, p := range points {
		attempt++
		var c *amChild
		var what string
		if p.beforeREST {
			c = killed.start(attempt, restore)
			what = p.wait(c, jobrunner.MasterInfo{})
		} else {
			var info *jobrunner.MasterInfo
			c, info = startAttempt(t, killed, attempt, restore, checkpoints)
			if info != nil {
				upAfter = c.upAfter
				what = p.wait(c, *info)
			}
		}
		restore = jobrunner.RestoreLatest
		last = c
		if what == "" {
			break // ended by itself: the job finished early
		}
		c.kill()
		if !c.killedBySignal() {
			break // exited by itself just before the signal
		}
		kills++
		c.checkNoRace()
		ckpts, _ := killed.completeCheckpoints()
		st := killed.output()
		t.Logf("attempt %d: SIGKILL %s at %s (%s): complete checkpoints on disk %v, %d lines committed, %d uncommitted parts left",
			attempt, p.name, c.killedAfter.Round(time.Millisecond), what, ckpts, len(st.lines), len(st.uncommitted))
	}
	// Run to the end, unless the last attempt already finished by itself.
	if last == nil || last.killedBySignal() {
		attempt++
		last, _ = startAttempt(t, killed, attempt, jobrunner.RestoreLatest, checkpoints)
	}
	last.waitExit(runLimit)
	last.checkNoRace()
	killedTime := time.Since(killedStart)
	if kills < 4 {
		t.Fatalf("the job finished after only %d kills; the test needs at least 4 (seed %d)", kills, seed)
	}
	got := killed.output()
	t.Logf("killed run: %s, %d kills, %d attempts, %d lines in %d committed parts", killedTime.Round(time.Millisecond), kills, attempt, len(got.lines), got.parts)
	checkSameOutput(t, "killed run", refOut.lines, got)

	// 3. A restart after FINISHED restores the final checkpoint and adds
	// nothing.
	attempt++
	c, _ := startAttempt(t, killed, attempt, jobrunner.RestoreLatest, checkpoints)
	c.waitExit(runLimit)
	c.checkNoRace()
	checkSameOutput(t, "restart after FINISHED", refOut.lines, killed.output())
}

// startAttempt starts an attempt and waits for its REST API. After a
// restore it checks that the attempt restored the newest complete checkpoint
// on disk. info is nil if the process exited before its REST API was seen.
func startAttempt(t *testing.T, j *eoJob, attempt int, restore string,
	checkpoints func(jobrunner.MasterInfo) (jobmaster.CheckpointStats, error)) (*amChild, *jobrunner.MasterInfo) {
	t.Helper()
	ckpts, _ := j.completeCheckpoints()
	c := j.start(attempt, restore)
	info, ok := c.waitMaster(30 * time.Second)
	if !ok {
		return c, nil
	}
	if restore != jobrunner.RestoreLatest {
		return c, &info
	}
	want := int64(0)
	if len(ckpts) > 0 {
		want = ckpts[len(ckpts)-1]
	}
	st, err := checkpoints(info)
	if err != nil {
		if c.exited() {
			return c, &info
		}
		t.Fatalf("attempt %d: GET checkpoints: %v", attempt, err)
	}
	got := int64(0)
	if st.Latest.Restored != nil {
		got = st.Latest.Restored.ID
	}
	if got != want {
		t.Fatalf("attempt %d restored checkpoint %d, want the newest complete one on disk, %d (complete: %v); log:\n%s",
			attempt, got, want, ckpts, c.logTail())
	}
	return c, &info
}

// checkSameOutput compares the committed lines of a run with the reference
// as multisets, and checks that nothing uncommitted or foreign is left.
func checkSameOutput(t *testing.T, what string, want []string, got outputState) {
	t.Helper()
	if len(got.uncommitted) > 0 {
		t.Errorf("%s: uncommitted part files left: %v", what, got.uncommitted)
	}
	if len(got.other) > 0 {
		t.Errorf("%s: unexpected files in the output directory: %v", what, got.other)
	}
	w, g := slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got.lines))
	if slices.Equal(w, g) {
		t.Logf("%s: %d committed lines, identical to the reference (as a multiset)", what, len(g))
		return
	}
	counts := map[string]int{}
	for _, l := range w {
		counts[l]++
	}
	for _, l := range g {
		counts[l]--
	}
	var missing, extra []string // extra: duplicated or never in the reference
	nMissing, nExtra := 0, 0
	for _, l := range slices.Sorted(func(yield func(string) bool) {
		for l := range counts {
			if !yield(l) {
				return
			}
		}
	}) {
		switch n := counts[l]; {
		case n > 0:
			nMissing += n
			missing = append(missing, fmt.Sprintf("%dx %s", n, l))
		case n < 0:
			nExtra += -n
			extra = append(extra, fmt.Sprintf("%dx %s", -n, l))
		}
	}
	first := 0
	for first < min(len(w), len(g)) && w[first] == g[first] {
		first++
	}
	at := func(s []string, i int) string {
		if i < len(s) {
			return s[i]
		}
		return "<end>"
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "(none)"
		}
		out := strings.Join(s[:min(10, len(s))], "\n  ")
		if len(s) > 10 {
			out += fmt.Sprintf("\n  … and %d more", len(s)-10)
		}
		return out
	}
	t.Errorf("%s: output differs from the reference: %d lines, want %d; %d missing (lost), %d extra (duplicated or wrong); "+
		"records counted in windows (sum of n): %d, want %d\n"+
		"first difference in sorted order at line %d:\n  got  %s\n  want %s\nmissing:\n  %s\nextra:\n  %s",
		what, len(g), len(w), nMissing, nExtra, sumN(g), sumN(w), first, at(g, first), at(w, first), list(missing), list(extra))
}

// sumN is the total of the lines' count aggregate: the records they cover.
func sumN(lines []string) int64 {
	var total int64
	for _, l := range lines {
		var o struct{ N int64 }
		if json.Unmarshal([]byte(l), &o) == nil {
			total += o.N
		}
	}
	return total
}

// eoWindowKey and eoAgg are one output line: a window of a key and its
// aggregates.
type eoWindowKey struct {
	start int64
	key   string
}

type eoAgg struct {
	n, tsSum int64
	lo, hi   float64
}

// checkAgainstSource checks the reference output against the records the
// datagen source generates, computed here from the same connector: every
// record passing the filter is counted exactly once, in its window. It
// returns the number of records generated. Without this, a run that lost
// records in a deterministic way would match its own reference.
func checkAgainstSource(t *testing.T, lines []string) int64 {
	t.Helper()
	start, err := time.Parse(time.RFC3339, eoStart)
	if err != nil {
		t.Fatal(err)
	}
	startMs := start.UnixMilli()
	// Keys and values do not depend on the rate; the event time of record n
	// is startMs + n*1000/rate minus the same seeded disorder, which at rate
	// 0 (1 ms per record) is startMs + n - ts.
	factory, err := connectors.NewDatagenSource(connectors.DatagenConfig{
		Keys: eoKeys, Seed: eoSeed, Count: eoRecords, Disorder: eoDisorderMs, StartTime: startMs,
		Values: connectors.ValueDist{Dist: connectors.DistExponential, Mean: eoValueMean},
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := factory(0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := map[eoWindowKey]*eoAgg{}
	n := int64(0)
	buf := make([]flow.Record, 0, 4096)
	for {
		recs, err := src.Read(context.Background(), buf[:0], 4096)
		for _, r := range recs {
			key, value := r.Row[0].S, r.Row[1].Float()
			disorder := startMs + n - r.Time
			ts := startMs + int64(float64(n)*1000/eoRate) - disorder
			n++
			if !(value < eoFilterMax) {
				continue
			}
			wk := eoWindowKey{ts - ((ts%eoWindowMs)+eoWindowMs)%eoWindowMs, key}
			a := want[wk]
			if a == nil {
				a = &eoAgg{lo: math.Inf(1), hi: math.Inf(-1)}
				want[wk] = a
			}
			a.n++
			a.tsSum += ts
			a.lo, a.hi = min(a.lo, value), max(a.hi, value)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != eoRecords {
		t.Fatalf("datagen generated %d records, want %d", n, eoRecords)
	}

	type line struct {
		WindowStart, WindowEnd int64
		Key                    string
		N, TsSum               int64
		Lo, Hi                 float64
	}
	got := map[eoWindowKey]eoAgg{}
	var records int64
	for _, l := range lines {
		var o line
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("reference output line %q: %v", l, err)
		}
		wk := eoWindowKey{o.WindowStart, o.Key}
		if _, dup := got[wk]; dup {
			t.Errorf("reference output: window %d of key %s emitted twice", wk.start, wk.key)
		}
		if o.WindowEnd != o.WindowStart+eoWindowMs {
			t.Errorf("reference output: bad window in %s", l)
		}
		got[wk] = eoAgg{o.N, o.TsSum, o.Lo, o.Hi}
		records += o.N
	}
	var bad []string
	for wk, w := range want {
		if g, ok := got[wk]; !ok {
			bad = append(bad, fmt.Sprintf("window %d key %s: missing, want %+v", wk.start, wk.key, *w))
		} else if g != *w {
			bad = append(bad, fmt.Sprintf("window %d key %s: got %+v, want %+v", wk.start, wk.key, g, *w))
		}
	}
	for wk, g := range got {
		if _, ok := want[wk]; !ok {
			bad = append(bad, fmt.Sprintf("window %d key %s: unexpected %+v", wk.start, wk.key, g))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Fatalf("the reference run does not match the generated records (%d of %d windows wrong; %d records counted):\n  %s",
			len(bad), len(want), records, strings.Join(bad[:min(10, len(bad))], "\n  "))
	}
	return n
}
