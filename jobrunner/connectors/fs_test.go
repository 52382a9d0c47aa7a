package connectors

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
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
		root := fmt.Sprintf("hdfs://%s/tmp/tidewatch-connectors-%d", nn, time.Now().UnixNano())
		roots["hdfs"] = root
		t.Cleanup(func() {
			fsys, dir, err := OpenFS(root)
			if err != nil {
				t.Errorf("clean up %s: %v", root, err)
				return
			}
			defer fsys.Close()
			if err := fsys.RemoveAll(dir); err != nil {
				t.Errorf("clean up %s: %v", root, err)
			}
		})
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

			// CreateExclusive: one winner, the loser sees fs.ErrExist.
			w, err := fsys.CreateExclusive(fsys.Join(dir, "lock"))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "me\n")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w, err := fsys.CreateExclusive(fsys.Join(dir, "lock")); !errors.Is(err, fs.ErrExist) {
				if err == nil {
					w.Close()
				}
				t.Errorf("second CreateExclusive: %v, want fs.ErrExist", err)
			}

			// URL names the path so that OpenFS finds it again.
			again, p, err := OpenFS(fsys.URL(fsys.Join(dir, "lock")))
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := again.Stat(p); err != nil || fi.Size() != 3 {
				t.Errorf("stat %s through its URL: %v, %v", fsys.URL(fsys.Join(dir, "lock")), fi, err)
			}
			again.Close()

			// RemoveAll removes trees and ignores what is missing; MkdirAll
			// creates several levels.
			deep := fsys.Join(dir, "x", "y", "z")
			if err := fsys.MkdirAll(deep); err != nil {
				t.Fatal(err)
			}
			if fi, err := fsys.Stat(deep); err != nil || !fi.IsDir() {
				t.Fatalf("MkdirAll %s: %v, %v", deep, fi, err)
			}
			write("x/y/f.txt", "f\n")
			for _, p := range []string{fsys.Join(dir, "x"), fsys.Join(dir, "missing")} {
				if err := fsys.RemoveAll(p); err != nil {
					t.Errorf("RemoveAll %s: %v", p, err)
				}
			}
			if _, err := fsys.Stat(fsys.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after RemoveAll: %v", err)
			}
			if root != dir { // HDFS: leave nothing behind
				if err := fsys.RemoveAll(dir); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestOpenFSFileURL(t *testing.T) {
	dir := t.TempDir()
	fsys, p, err := OpenFS("file://" + filepath.ToSlash(dir) + "/a b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fsys.(localFS); !ok || p != filepath.Join(dir, "a b") {
		t.Errorf("OpenFS(file://...) = %T, %q", fsys, p)
	}
	for _, bad := range []string{"file://otherhost/x", "file://"} {
		if _, _, err := OpenFS(bad); err == nil {
			t.Errorf("OpenFS(%q) succeeded", bad)
		}
	}
}

func writeHadoopConf(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, props := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("<configuration>"+props+"</configuration>\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func prop(name, value string) string {
	return "<property><name>" + name + "</name><value>" + value + "</value></property>"
}

func TestResolveHDFS(t *testing.T) {
	ha := writeHadoopConf(t, map[string]string{
		"core-site.xml": prop("fs.defaultFS", "hdfs://ns1"),
		"hdfs-site.xml": prop("dfs.nameservices", "ns1") + prop("dfs.ha.namenodes.ns1", "nn1,nn2") +
			prop("dfs.namenode.rpc-address.ns1.nn1", "nn1.example.com:8020") +
			prop("dfs.namenode.rpc-address.ns1.nn2", "nn2.example.com:9000") +
			prop("dfs.client.use.datanode.hostname", "true"),
	})
	single := writeHadoopConf(t, map[string]string{"core-site.xml": prop("fs.defaultFS", "hdfs://nn.example.com:9000/")})
	kerberos := writeHadoopConf(t, map[string]string{"core-site.xml": prop("fs.defaultFS", "hdfs://nn:8020") + prop("hadoop.security.authentication", "kerberos")})
	tests := []struct {
		url     string
		env     map[string]string
		want    hdfsTarget
		wantErr string // substring
	}{
		{url: "hdfs://nn:8020/ck", env: map[string]string{"HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "nn:8020", addresses: []string{"nn:8020"}, user: "tw"}},
		{url: "hdfs://nn/ck", env: map[string]string{"HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "nn", addresses: []string{"nn:8020"}, user: "tw"}},
		{url: "hdfs:///ck", env: map[string]string{"HADOOP_CONF_DIR": ha, "HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "ns1", addresses: []string{"nn1.example.com:8020", "nn2.example.com:9000"}, user: "tw", useDatanodeHostname: true}},
		{url: "hdfs://ns1/ck", env: map[string]string{"HADOOP_CONF_DIR": ha, "HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "ns1", addresses: []string{"nn1.example.com:8020", "nn2.example.com:9000"}, user: "tw", useDatanodeHostname: true}},
		{url: "hdfs://other:8020/ck", env: map[string]string{"HADOOP_CONF_DIR": ha, "HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "other:8020", addresses: []string{"other:8020"}, user: "tw", useDatanodeHostname: true}},
		{url: "hdfs:///ck", env: map[string]string{"HADOOP_CONF_DIR": single, "HADOOP_USER_NAME": "tw"},
			want: hdfsTarget{authority: "nn.example.com:9000", addresses: []string{"nn.example.com:9000"}, user: "tw"}},
		{url: "hdfs:///ck", env: map[string]string{"HADOOP_USER_NAME": "tw"}, wantErr: "fs.defaultFS is \"file:///\""},
		{url: "hdfs:///ck", env: map[string]string{"HADOOP_CONF_DIR": filepath.Join(single, "missing")}, wantErr: "HADOOP_CONF_DIR"},
		{url: "hdfs://nn:8020/ck", env: map[string]string{"HADOOP_CONF_DIR": kerberos}, wantErr: "only simple authentication"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := resolveHDFS(u, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.url) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, tc.url, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(*got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", *got, tc.want)
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
