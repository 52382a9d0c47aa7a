package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

var ingestFields = []Field{{"id", "int"}, {"user", "string"}, {"amount", "float"}}

func newTestIngest(t *testing.T, dir string) (*Ingest, *httptest.Server) {
	t.Helper()
	in, err := NewIngest(IngestConfig{Dir: dir, Fields: ingestFields, MaxBodyBytes: 1024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in.now = func() time.Time { return time.UnixMilli(42_000) }
	srv := httptest.NewServer(in)
	t.Cleanup(func() { srv.Close(); in.Close() })
	return in, srv
}

func post(t *testing.T, url, method, body string) (int, ingestReply) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r ingestReply
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &r)
	return resp.StatusCode, r
}

func TestIngestHandler(t *testing.T) {
	dir := t.TempDir()
	_, srv := newTestIngest(t, dir)
	logSize := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, IngestLogName))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for _, tc := range []struct {
		name, method, body string
		code, accepted     int
		errHas             string
	}{
		{"lines", "POST", `{"id":1,"user":"a","amount":1.5}` + "\n\n" + `{"id":2,"user":"b"}` + "\n", 200, 2, ""},
		{"array", "POST", `[{"id":3,"user":"c","amount":3},{"id":4}]`, 200, 2, ""},
		{"empty", "POST", "", 200, 0, ""},
		{"get", "GET", "", 405, 0, "POST"},
		{"too big", "POST", "[" + strings.Repeat(`{"id":1},`, 200) + `{"id":1}]`, 413, 0, "1024"},
		{"bad field", "POST", `{"id":5}` + "\n" + `{"id":6,"amount":"x"}`, 400, 0, `line 2: field "amount"`},
		{"bad element", "POST", `[{"id":7},{"id":"eight"}]`, 400, 0, `line 2: field "id"`},
		{"bad json", "POST", `{"id":`, 400, 0, "line 1"},
	} {
		before := logSize()
		code, r := post(t, srv.URL, tc.method, tc.body)
		if code != tc.code || r.Accepted != tc.accepted || !strings.Contains(r.Error, tc.errHas) {
			t.Errorf("%s: %d %+v, want %d accepting %d with error containing %q", tc.name, code, r, tc.code, tc.accepted, tc.errHas)
		}
		if code != 200 && logSize() != before {
			t.Errorf("%s: a rejected request changed the log", tc.name)
		}
	}
}

// The source reads what was acknowledged, from its snapshot offset, also
// after a restart of the endpoint on the same directory.
func TestIngestSourceReplaysFromOffset(t *testing.T) {
	dir := t.TempDir()
	in, srv := newTestIngest(t, dir)
	if _, err := in.Factory()(0, 2, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("parallelism 2: %v, want ErrInvalidConfig", err)
	}
	if err := (&IngestConfig{Dir: dir, Fields: ingestFields, Parallelism: 2}).Validate(); err == nil || !strings.Contains(err.Error(), "Parallelism") {
		t.Fatalf("Validate of parallelism 2: %v", err)
	}
	src, err := in.Factory()(0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if recs, err := src.Read(t.Context(), nil, 10); err != nil || len(recs) != 0 {
		t.Fatalf("empty log: %d records, %v", len(recs), err)
	}
	post(t, srv.URL, "POST", `[{"id":1,"user":"a"},{"id":2,"amount":2}]`)
	got, _ := readN(t, src, 2, 10)
	want := []rec{
		{42_000, []flow.Value{flow.Int(1), flow.String("a"), flow.Null()}},
		{42_000, []flow.Value{flow.Int(2), flow.Null(), flow.Float(2)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	st, _ := src.Snapshot()
	post(t, srv.URL, "POST", `{"id":3}`)
	post(t, srv.URL, "POST", `{"id":4}`)
	after, _ := readN(t, src, 2, 10)

	// Restart the endpoint (a torn write of a crashed append is cut) and
	// restore the source from the snapshot.
	srv.Close()
	in.Close()
	appendFile(t, filepath.Join(dir, IngestLogName), `{"@arrival":1,"id":5`)
	in2, srv2 := newTestIngest(t, dir)
	src2, err := in2.Factory()(0, 1, st)
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	post(t, srv2.URL, "POST", `{"id":6}`)
	replay, _ := readN(t, src2, 3, 10)
	if !reflect.DeepEqual(ids(after), []int64{3, 4}) || !reflect.DeepEqual(ids(replay), []int64{3, 4, 6}) {
		t.Fatalf("after the snapshot %v, replayed %v; want [3 4] and [3 4 6]", ids(after), ids(replay))
	}
}

func TestIngestRejectsStateBeyondLog(t *testing.T) {
	in, _ := newTestIngest(t, t.TempDir())
	_, err := in.Factory()(0, 1, []byte(`{"files":[{"path":"`+filepath.Join(in.cfg.Dir, IngestLogName)+`","offset":99}]}`))
	if !errors.Is(err, ErrBadState) {
		t.Fatalf("offset past the log: %v, want ErrBadState", err)
	}
}

// Whatever a client sends, the endpoint either rejects it or writes log lines
// its source decodes to as many records.
func FuzzIngestBody(f *testing.F) {
	for _, s := range []string{`{"id":1,"user":"a","amount":1.5}`, `[{"id":3},{"id":4}]`, "{\"id\":1}\n\n{\"id\":2}", `[`, `[1]`, `{"user":"\u0000"}`} {
		f.Add(s)
	}
	in := &Ingest{cfg: IngestConfig{Fields: ingestFields}}
	f.Fuzz(func(t *testing.T, body string) {
		lines, n, err := in.normalize([]byte(body), 7)
		if err != nil {
			return
		}
		d, _ := newDecoder(ingestFields, "")
		d.arrivalKey = arrivalKey
		row := make([]flow.Value, len(ingestFields))
		got := 0
		for _, l := range bytes.Split(bytes.TrimSuffix(lines, []byte("\n")), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			ts, err := d.decodeJSON(l, row)
			if err != nil || ts != 7 {
				t.Fatalf("log line %q: time %d, %v", l, ts, err)
			}
			got++
		}
		if got != n {
			t.Fatalf("%d records accepted, %d in the log", n, got)
		}
	})
}
