package connectors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

var jsonlFields = []Field{{"id", "int"}, {"user", "string"}, {"amount", "float"}, {"ts", "int"}}

func openFileSource(t *testing.T, cfg FileConfig, index, par int, state []byte) (*FileSource, flow.Source) {
	t.Helper()
	fs, err := NewFileSource(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := fs.Factory()(index, par, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return fs, src
}

func ids(recs []rec) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Row[0].Int()
	}
	return out
}

func TestFileConfigValidate(t *testing.T) {
	good := FileConfig{Path: "x", Fields: jsonlFields, TimeField: "ts"}
	for _, tc := range []struct {
		field string
		mut   func(c *FileConfig)
	}{
		{"", func(c *FileConfig) {}},
		{"Path", func(c *FileConfig) { c.Path = "" }},
		{"Format", func(c *FileConfig) { c.Format = "xml" }},
		{"CSVHeader", func(c *FileConfig) { c.CSVHeader = true }},
		{"OnError", func(c *FileConfig) { c.OnError = "ignore" }},
		{"Fields", func(c *FileConfig) { c.Fields = nil }},
		{"Fields[1].Name", func(c *FileConfig) { c.Fields = []Field{{"a", "int"}, {"a", "int"}} }},
		{"Fields[0].Type", func(c *FileConfig) { c.Fields = []Field{{"a", "decimal"}} }},
		{"TimeField", func(c *FileConfig) { c.TimeField = "nope" }},
		{"TimeField", func(c *FileConfig) { c.TimeField = "amount" }},
		{"DiscoverInterval", func(c *FileConfig) { c.DiscoverInterval = -time.Second }},
	} {
		c := good
		c.Fields = slices.Clone(good.Fields)
		tc.mut(&c)
		err := c.Validate()
		if tc.field == "" && err != nil || tc.field != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":")) {
			t.Errorf("want error naming %q, got %v", tc.field, err)
		}
	}
}

func TestFileSourceBounded(t *testing.T) {
	cfg := FileConfig{Path: "testdata/jsonl/*.jsonl", Fields: jsonlFields, TimeField: "ts"}
	all, eof := readN(t, must(openFileSource(t, cfg, 0, 1, nil)), -1, 4)
	if !eof || !reflect.DeepEqual(ids(all), []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("read ids %v (eof %v)", ids(all), eof)
	}
	if all[2].Time != 999 || all[10].Row[2] != flow.Null() || all[9].Row[1] != flow.String("ivy") {
		t.Errorf("records decoded wrong: %+v", all)
	}
	// Files a and c (0 and 2) go to subtask 0, b to subtask 1.
	s0, _ := readN(t, must(openFileSource(t, cfg, 0, 2, nil)), -1, 100)
	s1, _ := readN(t, must(openFileSource(t, cfg, 1, 2, nil)), -1, 100)
	if !reflect.DeepEqual(ids(s0), []int64{1, 2, 3, 4, 5, 10, 11}) || !reflect.DeepEqual(ids(s1), []int64{6, 7, 8, 9}) {
		t.Fatalf("split over two subtasks: %v and %v", ids(s0), ids(s1))
	}
	// A directory reads the files in it.
	cfg.Path = "testdata/jsonl"
	dir, _ := readN(t, must(openFileSource(t, cfg, 0, 1, nil)), -1, 100)
	if len(dir) != 11 {
		t.Fatalf("%d records from the directory, want 11", len(dir))
	}
	// A file that is not there is an error; a glob matching nothing is empty.
	cfg.Path = "testdata/nothing.jsonl"
	if _, err := must2(NewFileSource(cfg, nil)).Factory()(0, 1, nil); err == nil {
		t.Error("a missing file opened")
	}
	cfg.Path = "testdata/nothing/*.jsonl"
	if recs, eof := readN(t, must(openFileSource(t, cfg, 0, 1, nil)), -1, 100); !eof || len(recs) != 0 {
		t.Errorf("empty glob: %d records, eof %v", len(recs), eof)
	}
}

func must(_ *FileSource, src flow.Source) flow.Source { return src }
func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A restore from a snapshot taken after any number of records continues
// exactly after the last record returned.
func TestFileSourceRestore(t *testing.T) {
	cfg := FileConfig{Path: "testdata/jsonl/*.jsonl", Fields: jsonlFields, TimeField: "ts"}
	for _, k := range []int{0, 1, 4, 5, 6, 8, 10, 11} {
		src := must(openFileSource(t, cfg, 0, 1, nil))
		first, _ := readN(t, src, k, 3)
		st, err := src.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := readN(t, src, -1, 3)
		again, eof := readN(t, must(openFileSource(t, cfg, 0, 1, st)), -1, 2)
		if !eof || !reflect.DeepEqual(ids(again), ids(rest)) || len(first)+len(again) != 11 {
			t.Errorf("after %d records: restored read %v, want %v", k, ids(again), ids(rest))
		}
	}
	if _, err := must2(NewFileSource(cfg, nil)).Factory()(0, 1, []byte("{")); !errors.Is(err, ErrBadState) {
		t.Errorf("corrupt state: %v, want ErrBadState", err)
	}
}

func TestFileSourceCSVWithHeader(t *testing.T) {
	cfg := FileConfig{Path: "testdata/csv/orders.csv", Format: FormatCSV, CSVHeader: true, TimeField: "at",
		Fields: []Field{{"id", "int"}, {"user", "string"}, {"amount", "float"}, {"at", "string"}}}
	src := must(openFileSource(t, cfg, 0, 1, nil))
	first, _ := readN(t, src, 1, 1)
	st, _ := src.Snapshot()
	rest, eof := readN(t, must(openFileSource(t, cfg, 0, 1, st)), -1, 10) // re-reads the header
	all := append(first, rest...)
	if !eof || len(all) != 3 {
		t.Fatalf("%d records (eof %v), want 3", len(all), eof)
	}
	want := []rec{
		{1709287200000, []flow.Value{flow.Int(1), flow.String("ann"), flow.Float(9.5), flow.String("2024-03-01T10:00:00Z")}},
		{1709287201250, []flow.Value{flow.Int(2), flow.String("smith, bob"), flow.Null(), flow.String("2024-03-01T10:00:01.250Z")}},
		{1709287200000, []flow.Value{flow.Int(3), flow.String("cyd"), flow.Float(100), flow.String("2024-03-01T11:00:00+01:00")}},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("got %+v\nwant %+v", all, want)
	}
}

func TestFileSourceBadLines(t *testing.T) {
	cfg := FileConfig{Path: "testdata/bad/bad.jsonl", Fields: jsonlFields, TimeField: "ts"}
	src := must(openFileSource(t, cfg, 0, 1, nil))
	recs, err := readUntilError(src)
	var le *LineError
	if !errors.As(err, &le) || !errors.Is(err, ErrBadRecord) || le.Line != 3 || le.Field != "amount" ||
		!strings.Contains(err.Error(), "bad.jsonl:3: field \"amount\"") || len(recs) > 2 {
		t.Fatalf("error %v after %d records, want bad.jsonl:3 field amount", err, len(recs))
	}

	cfg.OnError = OnErrorSkip
	fs, src := openFileSource(t, cfg, 0, 1, nil)
	good, eof := readN(t, src, -1, 100)
	if !eof || !reflect.DeepEqual(ids(good), []int64{1, 2, 4, 6}) || fs.Skipped() != 2 {
		t.Fatalf("skipping: ids %v, %d skipped; want [1 2 4 6] and 2", ids(good), fs.Skipped())
	}
}

func readUntilError(src flow.Source) ([]flow.Record, error) {
	var all []flow.Record
	for i := 0; i < 100; i++ {
		recs, err := src.Read(context.Background(), nil, 10)
		all = append(all, recs...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Tailing reads appended lines and new files; a partial last line waits for
// its newline; a restore continues after the last record returned.
func TestFileSourceTail(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	appendFile(t, a, `{"id":1,"user":"x","ts":1}`+"\n"+`{"id":2,"user":"x","ts":2}`+"\n"+`{"id":3,"us`)
	cfg := FileConfig{Path: filepath.Join(dir, "*.jsonl"), Fields: jsonlFields, TimeField: "ts", Tail: true, DiscoverInterval: time.Millisecond}
	src := must(openFileSource(t, cfg, 0, 1, nil))
	got, _ := readN(t, src, 2, 10)
	if recs, err := src.Read(t.Context(), nil, 10); err != nil || len(recs) != 0 {
		t.Fatalf("the partial line was returned: %d records, %v", len(recs), err)
	}
	st, _ := src.Snapshot()
	appendFile(t, a, `er":"x","ts":3}`+"\n")
	appendFile(t, filepath.Join(dir, "b.jsonl"), `{"id":4,"user":"y","ts":4}`+"\n")
	appendFile(t, filepath.Join(dir, ".hidden.jsonl"), `{"id":99,"user":"y","ts":4}`+"\n")
	more, _ := readN(t, src, 2, 10)
	got = append(got, more...)
	if !reflect.DeepEqual(ids(got), []int64{1, 2, 3, 4}) {
		t.Fatalf("tailed ids %v, want [1 2 3 4]", ids(got))
	}
	// From the snapshot taken before record 3 was complete.
	replay, _ := readN(t, must(openFileSource(t, cfg, 0, 1, st)), 2, 10)
	if !reflect.DeepEqual(ids(replay), []int64{3, 4}) {
		t.Fatalf("restored tail read %v, want [3 4]", ids(replay))
	}
}
