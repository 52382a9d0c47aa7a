package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// receiver is a webhook endpoint that drops repeated Idempotency-Keys and,
// when flaky, fails every other request with a 503 (after reading it).
type receiver struct {
	mu       sync.Mutex
	flaky    bool
	status   int // when set, every request gets it
	requests int
	seen     map[string]bool
	keys     []string
	records  []string
	headers  []http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	rc.headers = append(rc.headers, r.Header.Clone())
	if rc.status != 0 {
		w.WriteHeader(rc.status)
		return
	}
	if rc.flaky && rc.requests%2 == 1 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if rc.seen[key] {
		w.WriteHeader(http.StatusOK)
		return
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(body, &recs); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.seen[key] = true
	rc.keys = append(rc.keys, key)
	for _, r := range recs {
		rc.records = append(rc.records, string(r))
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := slices.Clone(rc.records)
	sort.Strings(out)
	return out
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	rc := &receiver{seen: map[string]bool{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func openWebhook(t *testing.T, cfg WebhookConfig, index int, state []byte) (flow.Sink, error) {
	t.Helper()
	f, err := NewWebhookSink(cfg, sinkSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f(index, 2, state)
}

func TestWebhookConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   WebhookConfig
		field string
	}{
		{WebhookConfig{URL: "https://h/x"}, ""},
		{WebhookConfig{}, "URL"},
		{WebhookConfig{URL: "ftp://user:secret@h/"}, "URL"},
		{WebhookConfig{URL: "/relative?token=secret"}, "URL"},
		{WebhookConfig{URL: "http://h", BatchSize: -1}, "BatchSize"},
		{WebhookConfig{URL: "http://h", Timeout: -1}, "Timeout"},
		{WebhookConfig{URL: "http://h", Backoff: -1}, "Backoff"},
		{WebhookConfig{URL: "http://h", Headers: map[string]string{"Bad Name": "secret"}}, "Headers"},
		{WebhookConfig{URL: "http://h", Headers: map[string]string{"idempotency-key": "secret"}}, "Headers"},
	} {
		err := tc.cfg.Validate()
		if tc.field == "" && err != nil || tc.field != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":")) {
			t.Errorf("%q: %v, want an error naming %q", tc.cfg.URL, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("validation error leaks a secret: %v", err)
		}
	}
}

// Records are sent only when their checkpoint commits, in batches keyed by
// subtask, checkpoint and batch; with half the requests failing every record
// still arrives exactly once.
func TestWebhookDeliversOnCommitDespiteFailures(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.flaky = true
	cfg := WebhookConfig{URL: srv.URL + "/hook", BatchSize: 3, Backoff: time.Millisecond, KeyPrefix: "job1/",
		Headers: map[string]string{"Authorization": "Bearer tok"}}
	s, err := openWebhook(t, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	emit(t, s, 0, 7)
	if _, err := s.Snapshot(1); err != nil {
		t.Fatal(err)
	}
	emit(t, s, 7, 9)
	if _, err := s.Snapshot(2); err != nil {
		t.Fatal(err)
	}
	if rc.requests != 0 {
		t.Fatalf("%d requests before any commit", rc.requests)
	}
	if err := s.Commit(1); err != nil {
		t.Fatal(err)
	}
	if got := rc.got(); !slices.Equal(got, jsonLines(0, 7)) {
		t.Fatalf("after commit 1: %v", got)
	}
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := rc.got(); !slices.Equal(got, jsonLines(0, 9)) {
		t.Fatalf("after commit 2: %v", got)
	}
	if want := []string{"job1/1-1-0", "job1/1-1-1", "job1/1-1-2", "job1/1-2-0"}; !slices.Equal(rc.keys, want) {
		t.Fatalf("keys %v, want %v", rc.keys, want)
	}
	if rc.requests != 8 {
		t.Fatalf("%d requests for 4 batches with every other one failing, want 8", rc.requests)
	}
	for _, h := range rc.headers {
		if h.Get("Authorization") != "Bearer tok" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("request headers %v", h)
		}
	}
}

// A restore delivers the pending records its state holds; a receiver that
// got them before drops the repeats by key.
func TestWebhookRestoreResendsPending(t *testing.T) {
	rc, srv := newReceiver(t)
	cfg := WebhookConfig{URL: srv.URL, BatchSize: 2, Backoff: time.Millisecond}
	s, _ := openWebhook(t, cfg, 0, nil)
	emit(t, s, 0, 5)
	st, _ := s.Snapshot(4)
	if err := s.Commit(4); err != nil { // delivered, then a crash before the job noted it
		t.Fatal(err)
	}
	emit(t, s, 5, 6) // lost with the crash, replayed by the source
	for range 2 {
		r, err := openWebhook(t, cfg, 0, st)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if got := rc.got(); !slices.Equal(got, jsonLines(0, 5)) || rc.requests != 9 {
		t.Fatalf("%d requests delivering %v", rc.requests, got)
	}
	if _, err := openWebhook(t, cfg, 0, []byte("[")); !errors.Is(err, ErrBadState) {
		t.Fatalf("corrupt state: %v", err)
	}
}

func TestWebhookFailuresKeepSecrets(t *testing.T) {
	rc, srv := newReceiver(t)
	for _, tc := range []struct {
		name      string
		status    int
		url       string
		retries   int
		attempts  int
		retryable bool
	}{
		{"client error", http.StatusForbidden, srv.URL, 3, 1, false},
		{"server error", http.StatusBadGateway, srv.URL, 2, 3, true},
		{"too many", http.StatusTooManyRequests, srv.URL, 1, 2, true},
		{"unreachable", 0, "http://127.0.0.1:1/x", 1, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.status = tc.status
			rc.mu.Unlock()
			u := strings.Replace(tc.url, "http://", "http://user:s3cret@", 1) + "?token=s3cret"
			cfg := WebhookConfig{URL: u, MaxRetries: tc.retries, Backoff: time.Millisecond, Headers: map[string]string{"X-Api-Key": "s3cret-key"}}
			s, _ := openWebhook(t, cfg, 0, nil)
			emit(t, s, 0, 1)
			s.Snapshot(1)
			err := s.Commit(1)
			var de *DeliveryError
			if !errors.As(err, &de) || !errors.Is(err, ErrDelivery) || de.Status != tc.status || de.Attempts != tc.attempts || de.Retryable != tc.retryable {
				t.Fatalf("error %#v, want status %d after %d attempts, retryable %v", err, tc.status, tc.attempts, tc.retryable)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "user") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestStdoutSink(t *testing.T) {
	var buf bytes.Buffer
	f, err := NewStdoutSink(&buf, sinkSchema)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		s, _ := f(i, 4, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i * 100; n < i*100+100; n++ {
				s.Emit(&flow.Record{Row: []flow.Value{flow.String("k"), flow.Int(int64(n))}})
			}
			s.Snapshot(1)
			s.Commit(1)
			s.Close()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	sort.Strings(lines)
	if !slices.Equal(lines, jsonLines(0, 400)) {
		t.Fatalf("%d lines, not the 400 records", len(lines))
	}
	if _, err := NewStdoutSink(nil, sinkSchema); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil writer: %v", err)
	}
}
