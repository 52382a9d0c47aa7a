package jobmaster

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Bodies below are the shapes of FLINK_REST.md (Flink 1.17–2.0).
const overviewBody = `{ "jobs": [ {
  "jid": "e4ca10917efb90dc4579d7baad113fac", "name": "State machine job",
  "start-time": 1714035600000, "end-time": -1, "duration": 78729,
  "state": "RUNNING", "last-modification": 1714035601684,
  "tasks": { "total": 8, "created": 0, "scheduled": 0, "deploying": 0, "running": 8,
             "finished": 0, "canceling": 0, "canceled": 0, "failed": 0,
             "reconciling": 0, "initializing": 0 }, "pending-operators": 0 } ] }`

const checkpointsBody = `{"counts":{"restored":1,"total":5,"in_progress":0,"completed":4,"failed":1},
 "summary":{},
 "latest":{"completed":{"className":"completed","id":5,"status":"COMPLETED","is_savepoint":false,
   "trigger_timestamp":1714035600000,"state_size":1024,"external_path":"hdfs:///ck/chk-5","discarded":false},
   "savepoint":null,"failed":null,
   "restored":{"id":3,"restore_timestamp":1714035500000,"is_savepoint":false,"external_path":"hdfs:///ck/chk-3"}},
 "history":[]}`

func server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs/overview", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, overviewBody) })
	mux.HandleFunc("GET /jobs/{id}/checkpoints", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, checkpointsBody) })
	mux.HandleFunc("POST /jobs/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		io.WriteString(w, `{"request-id":"aaaabbbbccccddddeeeeffff00001111"}`)
	})
	mux.HandleFunc("GET /jobs/{id}/savepoints/{tid}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("tid") {
		case "ok":
			io.WriteString(w, `{"status":{"id":"COMPLETED"},"operation":{"location":"hdfs:///sp/savepoint-e4ca10-5d2c3a1b7f0e"}}`)
		case "failed":
			io.WriteString(w, `{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"java.util.concurrent.CompletionException","stack-trace":"java.util.concurrent.CompletionException: Checkpoint Coordinator is suspending.\n\tat x","serialized-throwable":"rO0"}}}`)
		default:
			io.WriteString(w, `{"status":{"id":"IN_PROGRESS"},"operation":null}`)
		}
	})
	mux.HandleFunc("GET /jobs/{id}/yarn-cancel", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, `{"errors":["org.apache.flink.runtime.rest.NotFoundException: Job 1 not found\n\tat ..."]}`)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestClient(t *testing.T) {
	s := server(t)
	c := New(time.Second)
	ctx := context.Background()

	j, err := c.Job(ctx, s.URL, "e4ca10917efb90dc4579d7baad113fac")
	if err != nil || j.State != "RUNNING" || j.Tasks["running"] != 8 || j.EndTime != -1 {
		t.Fatalf("Job = %+v, %v", j, err)
	}
	if _, err := c.Job(ctx, s.URL, "00000000000000000000000000000000"); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("unknown job: %v", err)
	}

	st, err := c.Checkpoints(ctx, s.URL, "e4ca10917efb90dc4579d7baad113fac")
	if err != nil || st.Counts.Completed != 4 || st.Latest.Completed.ExternalPath != "hdfs:///ck/chk-5" || st.Latest.Restored.ID != 3 {
		t.Fatalf("Checkpoints = %+v, %v", st, err)
	}

	tid, err := c.Stop(ctx, s.URL, "j", "")
	if err != nil || tid != "aaaabbbbccccddddeeeeffff00001111" {
		t.Fatalf("Stop = %q, %v", tid, err)
	}
	for _, tt := range []struct {
		tid  string
		want SavepointResult
	}{
		{"ok", SavepointResult{Done: true, Location: "hdfs:///sp/savepoint-e4ca10-5d2c3a1b7f0e"}},
		{"failed", SavepointResult{Done: true, Failure: "java.util.concurrent.CompletionException: Checkpoint Coordinator is suspending."}},
		{"running", SavepointResult{}},
	} {
		got, err := c.SavepointStatus(ctx, s.URL, "j", tt.tid)
		if err != nil || got != tt.want {
			t.Errorf("SavepointStatus(%s) = %+v, %v; want %+v", tt.tid, got, err, tt.want)
		}
	}

	err = c.Cancel(ctx, s.URL, "j")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("Cancel error = %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	c := New(200 * time.Millisecond)
	if _, err := c.Job(context.Background(), "http://127.0.0.1:1", "j"); err == nil {
		t.Fatal("no error from a closed port")
	}
}
