package connectors

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

var sinkSchema = must2(flow.NewSchema([]string{"key", "n"}, []flow.Kind{flow.KindString, flow.KindInt}))

func openFileSink(t *testing.T, cfg FileSinkConfig, index int, state []byte) flow.Sink {
	t.Helper()
	f, err := NewFileSink(cfg, sinkSchema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f(index, 2, state)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func emit(t *testing.T, s flow.Sink, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Emit(&flow.Record{Row: []flow.Value{flow.String("k"), flow.Int(int64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
}

// listing returns the directory's file names, sorted.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// visible returns the lines of the committed files, sorted.
func visible(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	for _, name := range listing(t, dir) {
		if strings.HasPrefix(name, ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
	}
	sort.Strings(lines)
	return lines
}

func jsonLines(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, `{"key":"k","n":`+itoa(i)+`}`)
	}
	sort.Strings(out)
	return out
}

func itoa(i int) string { return fmtInt(i) }

func TestFileSinkConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   FileSinkConfig
		field string
	}{
		{FileSinkConfig{Path: "d"}, ""},
		{FileSinkConfig{}, "Path"},
		{FileSinkConfig{Path: "d", Format: "parquet"}, "Format"},
		{FileSinkConfig{Path: "d", RollSize: -1}, "RollSize"},
		{FileSinkConfig{Path: "d", Prefix: "a/b"}, "Prefix"},
		{FileSinkConfig{Path: "d", Prefix: ".x"}, "Prefix"},
	} {
		err := tc.cfg.Validate()
		if tc.field == "" && err != nil || tc.field != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":")) {
			t.Errorf("%+v: %v, want an error naming %q", tc.cfg, err, tc.field)
		}
	}
}

func TestFileSinkVisibility(t *testing.T) {
	dir := t.TempDir()
	s := openFileSink(t, FileSinkConfig{Path: dir}, 1, nil)
	emit(t, s, 0, 3)
	if v := visible(t, dir); len(v) != 0 {
		t.Fatalf("uncommitted lines visible: %v", v)
	}
	if l := listing(t, dir); !slices.Equal(l, []string{".part-1-0.inprogress"}) {
		t.Fatalf("in progress: %v", l)
	}
	if _, err := s.Snapshot(1); err != nil {
		t.Fatal(err)
	}
	emit(t, s, 3, 5)
	if _, err := s.Snapshot(2); err != nil {
		t.Fatal(err)
	}
	if l := listing(t, dir); !slices.Equal(l, []string{".part-1-0.pending", ".part-1-1.pending"}) || len(visible(t, dir)) != 0 {
		t.Fatalf("after snapshots: %v", l)
	}
	if err := s.Commit(1); err != nil {
		t.Fatal(err)
	}
	if v := visible(t, dir); !slices.Equal(v, jsonLines(0, 3)) {
		t.Fatalf("after commit 1: %v", v)
	}
	// Commit again, and of a checkpoint with nothing written.
	if _, err := s.Snapshot(3); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{2, 2, 3} {
		if err := s.Commit(id); err != nil {
			t.Fatal(err)
		}
	}
	emit(t, s, 5, 7) // never snapshotted: discarded by Close
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if l := listing(t, dir); !slices.Equal(l, []string{"part-1-0.jsonl", "part-1-1.jsonl"}) || !slices.Equal(visible(t, dir), jsonLines(0, 5)) {
		t.Fatalf("at the end: %v holding %v", l, visible(t, dir))
	}
}

// A restore commits what its state lists as pending (also when that was
// committed already) and discards everything the subtask wrote after it,
// leaving other subtasks' files alone.
func TestFileSinkRestore(t *testing.T) {
	dir := t.TempDir()
	cfg := FileSinkConfig{Path: dir}
	other := openFileSink(t, cfg, 0, nil)
	emit(t, other, 100, 101)
	other.Snapshot(1)

	s := openFileSink(t, cfg, 1, nil)
	emit(t, s, 0, 2)
	s.Snapshot(1)
	s.Commit(1)
	emit(t, s, 2, 4)
	st, err := s.Snapshot(2) // checkpoint 2 completes, but its commit is lost
	if err != nil {
		t.Fatal(err)
	}
	emit(t, s, 4, 6)
	s.Snapshot(3) // checkpoint 3 never completes
	emit(t, s, 6, 8)
	// Crash: no Close.

	for range 2 { // restoring twice is the same as once
		r := openFileSink(t, cfg, 1, st)
		if got := visible(t, dir); !slices.Equal(got, jsonLines(0, 4)) {
			t.Fatalf("after restore: %v", got)
		}
		emit(t, r, 10, 11)
		r.Snapshot(3)
		r.Commit(3)
		r.Close()
		want := append(jsonLines(0, 4), `{"key":"k","n":10}`)
		sort.Strings(want)
		if got := visible(t, dir); !slices.Equal(got, want) {
			t.Fatalf("after restore and a new checkpoint: %v", got)
		}
		for _, name := range listing(t, dir) { // make the second pass comparable
			if name >= "part-1-2" && strings.HasPrefix(name, "part-1-") {
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
	if l := listing(t, dir); !slices.Contains(l, ".part-0-0.pending") {
		t.Fatalf("subtask 0's pending part was touched: %v", l)
	}

	// A state listing a part that is neither pending nor committed.
	os.Remove(filepath.Join(dir, "part-1-1.jsonl"))
	f, _ := NewFileSink(cfg, sinkSchema)
	if _, err := f(1, 2, st); !errors.Is(err, ErrMissingPending) {
		t.Fatalf("lost pending part: %v, want ErrMissingPending", err)
	}
	if _, err := f(1, 2, []byte("{")); !errors.Is(err, ErrBadState) {
		t.Fatalf("corrupt state: %v, want ErrBadState", err)
	}
}

func TestFileSinkRollsAndCSV(t *testing.T) {
	dir := t.TempDir()
	s := openFileSink(t, FileSinkConfig{Path: dir, Format: FormatCSV, RollSize: 40, Prefix: "out"}, 0, nil)
	emit(t, s, 0, 10) // header "key,n\n" (6) + "k,0\n" (4) each: 9 lines per part at most
	s.Snapshot(1)
	emit(t, s, 10, 30)
	s.Snapshot(2)
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	l := listing(t, dir)
	if len(l) < 4 {
		t.Fatalf("30 records in 40-byte parts made only %v", l)
	}
	total := 0
	for _, name := range l {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if !strings.HasPrefix(name, "out-0-") || !strings.HasSuffix(name, ".csv") || lines[0] != "key,n" || len(b) > 40+4 {
			t.Fatalf("part %s: %q", name, b)
		}
		total += len(lines) - 1
	}
	if total != 30 {
		t.Fatalf("%d records in the parts, want 30", total)
	}
}

// Datagen through the engine into the file sink, killed after a checkpoint
// and restored: the committed output is exactly that of one clean run.
func TestFileSinkExactlyOnceWithEngine(t *testing.T) {
	const count = 20000
	gen := DatagenConfig{Count: count, Keys: 7, Seed: 9, StartTime: 1}
	run := func(dir string, snap *flow.Snapshot, stopAfter int64) (*flow.Snapshot, []string) {
		src, _ := NewDatagenSource(gen)
		sink, _ := NewFileSink(FileSinkConfig{Path: dir, RollSize: 4096}, DatagenSchema())
		e, err := flow.Start(context.Background(), flow.Plan{MaxParallelism: 8, SourceParallelism: 3, Source: src, Sink: sink, BatchSize: 50}, snap)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if stopAfter > 0 {
			eventually(t, "records", func() bool {
				var n int64
				for _, s := range e.SourceStats {
					n += s.SinkRecords.Load()
				}
				return n >= stopAfter
			})
			snap, err := e.Checkpoint(ctx, 5)
			if err != nil {
				t.Fatal(err)
			}
			e.Cancel() // crash before the commit of checkpoint 5
			<-e.Done()
			return snap, nil
		}
		select {
		case <-e.SourcesFinished():
		case <-e.Done():
			t.Fatalf("ended early: %v", e.Err())
		case <-ctx.Done():
			t.Fatal("sources did not finish")
		}
		if _, err := e.Checkpoint(ctx, 9); err != nil {
			t.Fatal(err)
		}
		if err := e.Complete(ctx, 9); err != nil {
			t.Fatal(err)
		}
		e.Finish()
		<-e.Done()
		if err := e.Err(); err != nil {
			t.Fatal(err)
		}
		return nil, visible(t, dir)
	}
	_, want := run(t.TempDir(), nil, 0)
	if len(want) != count {
		t.Fatalf("clean run wrote %d lines, want %d", len(want), count)
	}
	dir := t.TempDir()
	snap, _ := run(dir, nil, count/4)
	_, got := run(dir, snap, 0)
	if !slices.Equal(got, want) {
		t.Fatalf("after a crash and restore %d lines, clean run %d; they differ", len(got), len(want))
	}
	for _, name := range listing(t, dir) {
		if strings.HasPrefix(name, ".") {
			t.Fatalf("uncommitted part left behind: %s", name)
		}
	}
}
