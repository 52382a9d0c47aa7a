package connectors

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFS runs the same checks against every FS: the local one always, HDFS
// when TIDEWATCH_NAMENODE (host:port) names a namenode.
func testFSes(t *testing.T) map[string]string {
	roots := map[string]string{"local": t.TempDir()}
	if nn := os.Getenv("TIDEWATCH_NAMENODE"); nn != "" {
		roots["hdfs"] = fmt.Sprintf("hdfs://%s/tmp/tidewatch-connectors-%d", nn, time.Now().UnixNano())
	}
	return roots
}

func TestFSConformance(t *testing.T) {
	for name, root := range testFSes(t) {
		t.Run(name, func(t *testing.T) {
			fsys, dir, err := OpenFS(root)
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			if err := fsys.MkdirAll(fsys.Join(dir, "sub")); err != nil {
				t.Fatal(err)
			}
			write := func(name, s string) {
				w, err := fsys.Create(fsys.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(w, s)
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			write("a.txt", "hello\nworld\n")
			write("a.txt", "again\n") // Create truncates
			write("sub/b.txt", "b\n")
			write(".hidden.txt", "h\n")
			if err := fsys.Rename(fsys.Join(dir, "a.txt"), fsys.Join(dir, "c.txt")); err != nil {
				t.Fatal(err)
			}
			r, err := fsys.Open(fsys.Join(dir, "c.txt"))
			if err != nil {
				t.Fatal(err)
			}
			r.Seek(2, io.SeekStart)
			b, _ := io.ReadAll(r)
			r.Close()
			if string(b) != "ain\n" {
				t.Fatalf("read %q after seeking, want %q", b, "ain\n")
			}
			for pattern, want := range map[string][]string{
				"*.txt":    {"c.txt"},
				"*/*.txt":  {"sub/b.txt"},
				"sub":      {"sub/b.txt"},
				"nomatch*": nil,
			} {
				got, err := Glob(fsys, fsys.Join(dir, pattern))
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					got[i] = filepath.ToSlash(strings.TrimPrefix(got[i], dir+string(got[i][len(dir)])))
				}
				if !slices.Equal(got, want) {
					t.Errorf("glob %s: %v, want %v", pattern, got, want)
				}
			}
			if err := fsys.Remove(fsys.Join(dir, "c.txt")); err != nil {
				t.Fatal(err)
			}
			if _, err := fsys.Stat(fsys.Join(dir, "c.txt")); !os.IsNotExist(err) {
				t.Fatalf("removed file: %v", err)
			}
		})
	}
}

// The file sink and the file source work alike on every FS.
func TestFileSinkThenSourceOnEveryFS(t *testing.T) {
	for name, root := range testFSes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := FileSinkConfig{Path: root + "/out", RollSize: 100}
			f, err := NewFileSink(cfg, sinkSchema)
			if err != nil {
				t.Fatal(err)
			}
			s, err := f(0, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			emit(t, s, 0, 20)
			st, _ := s.Snapshot(1)
			emit(t, s, 20, 25)
			s.Close() // 20..24 discarded
			r, err := f(0, 1, st)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			src := must(openFileSource(t, FileConfig{Path: root + "/out/*.jsonl", Fields: []Field{{"n", "int"}, {"key", "string"}}}, 0, 1, nil))
			recs, eof := readN(t, src, -1, 7)
			if !eof || len(recs) != 20 {
				t.Fatalf("read back %d records (eof %v), want 20", len(recs), eof)
			}
		})
	}
}
