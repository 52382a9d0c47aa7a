package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gorm.io/gorm"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
	"github.com/tidewatch/tidewatch/notify/webhook"
)

// hookServer is a webhook receiver that checks signatures, records every
// accepted body by idempotency key and can fail requests on purpose.
type hookServer struct {
	*httptest.Server
	secret string
	// fail decides, per request number (from 1), whether to answer 500.
	fail func(n int64) bool

	requests atomic.Int64
	mu       sync.Mutex
	bodies   []webhook.Body
	keys     map[string]int // accepted deliveries per idempotency key
	badSig   int
}

func newHookServer(t testing.TB, secret string) *hookServer {
	h := &hookServer{secret: secret, keys: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		if h.fail != nil && h.fail(n) {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !webhook.Verify([]byte(h.secret), body, r.Header.Get(webhook.HeaderSignature)) {
			h.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var b webhook.Body
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.Header.Get(webhook.HeaderIdempotencyKey)
		if h.keys[key] == 0 {
			h.bodies = append(h.bodies, b)
		}
		h.keys[key]++
	}))
	t.Cleanup(h.Close)
	return h
}

// delivered returns the distinct bodies received so far.
func (h *hookServer) delivered() []webhook.Body {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhook.Body(nil), h.bodies...)
}

func hookConfig(url string) Config {
	return Config{
		ExternalURL:    "http://tidewatch.test:8080",
		ResolveTimeout: dur(0),
		Route:          Route{Receiver: "ops", GroupWait: dur(0), GroupInterval: dur(50 * time.Millisecond), RepeatInterval: dur(time.Hour)},
		Receivers: []Receiver{{Name: "ops", Channels: []ChannelConfig{
			{Name: "hook", Webhook: &webhook.Config{URL: channel.Secret(url), Secret: "s1gning-k3y"}},
		}}},
		Outbox: Outbox{Workers: 4, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	}
}

func apiGet(t *testing.T, h http.Handler, path string, wantCode int, out any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, wantCode)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, rec.Body)
		}
	}
}

func apiDo(t *testing.T, h http.Handler, method, path, body string, wantCode int, out any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	if rec.Code != wantCode {
		t.Fatalf("%s %s: %d %s, want %d", method, path, rec.Code, rec.Body, wantCode)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
		}
	}
}

func TestNotifierEndToEnd(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			defer closeDB(t, db)
			testEndToEnd(t, db)
		})
	}
}

func testEndToEnd(t *testing.T, db *gorm.DB) {
	ctx := context.Background()
	srv := newHookServer(t, "s1gning-k3y")
	reg := prometheus.NewRegistry()
	n := startNotifier(t, db, hookConfig(srv.URL+"/hook"), Options{Log: testLog(nil), Registerer: reg})
	defer stopNotifier(t, n)
	h := n.Handler()

	a := alert.New("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, alert.Labels{"tm": "tm-1"})
	a.Annotations = alert.Labels{"summary": "heap at 91% of the container limit"}
	a.GeneratorURL = "http://tidewatch.test:8080/rules/heap"
	if err := n.Raise(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the firing notification", func() bool { return len(srv.delivered()) == 1 })
	got := srv.delivered()[0]
	fp := mustNormalize(t, a).Fingerprint().String()
	if got.Version != "4" || got.Status != "firing" || got.Receiver != "ops" || got.ExternalURL != "http://tidewatch.test:8080" ||
		got.GroupLabels.String() != `{alertname="TASK_MANAGER_HEAP_MEM_LOAD_HIGH", job="j1"}` ||
		got.CommonLabels["level"] != "WARN" || got.CommonLabels["family"] != "TASK_MANAGER_HEAP_MEM_LOAD" ||
		got.CommonAnnotations["summary"] != "heap at 91% of the container limit" || len(got.Alerts) != 1 ||
		got.Alerts[0].Fingerprint != fp || got.Alerts[0].Status != "firing" || got.Alerts[0].GeneratorURL != a.GeneratorURL ||
		!strings.HasPrefix(got.GroupKey, "0:ops:") {
		t.Fatalf("firing body %+v", got)
	}

	if err := n.Resolve(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the resolved notification", func() bool { return len(srv.delivered()) == 2 })
	if got := srv.delivered()[1]; got.Status != "resolved" || len(got.Alerts) != 1 || got.Alerts[0].Status != "resolved" || got.Alerts[0].EndsAt.IsZero() {
		t.Fatalf("resolved body %+v", got)
	}
	if err := n.Resolve(ctx, a); err != nil {
		t.Fatalf("resolving a resolved alert: %v", err)
	}

	// The history: the alert with both notifications and their attempts.
	// The receiver has the resolved notice before the outbox has its answer
	// and records the delivery.
	var res struct{ Alerts []AlertView }
	waitFor(t, 5*time.Second, "both deliveries recorded", func() bool {
		apiGet(t, h, "/api/v1/alerts?job=j1", 200, &res)
		if len(res.Alerts) != 1 {
			return false
		}
		for _, nv := range res.Alerts[0].Notifications {
			for _, d := range nv.Deliveries {
				if d.Status != DeliveryDelivered {
					return false
				}
			}
		}
		return true
	})
	if len(res.Alerts) != 1 {
		t.Fatalf("alerts %+v", res.Alerts)
	}
	v := res.Alerts[0]
	if v.Fingerprint != fp || v.State != "resolved" || v.Level != "WARN" || v.Event != "TASK_MANAGER_HEAP_MEM_LOAD_HIGH" ||
		v.EndsAt == nil || v.Labels["tm"] != "tm-1" || v.Annotations["summary"] == "" || len(v.Notifications) != 2 {
		t.Fatalf("alert view %+v", v)
	}
	for i, status := range []string{"firing", "resolved"} {
		nv := v.Notifications[i]
		if nv.Status != status || nv.Receiver != "ops" || len(nv.Deliveries) != 1 {
			t.Fatalf("notification %d %+v", i, nv)
		}
		d := nv.Deliveries[0]
		if d.Channel != "ops/hook" || d.Status != DeliveryDelivered || d.Attempts != 1 || d.DeliveredAt == nil ||
			len(d.History) != 1 || d.History[0].Outcome != OutcomeDelivered || len(d.IdempotencyKey) != 32 {
			t.Fatalf("delivery %d %+v", i, d)
		}
	}
	for _, q := range []struct {
		query string
		n     int
	}{
		{"state=firing", 0}, {"state=resolved", 1}, {"level=warn", 1}, {"level=FATAL,INFO", 0},
		{"since=1h", 1}, {"since=2000-01-01T00:00:00Z", 1}, {"event=TASK_MANAGER_HEAP_MEM_LOAD_HIGH", 1}, {"job=j2", 0},
	} {
		apiGet(t, h, "/api/v1/alerts?"+q.query, 200, &res)
		if len(res.Alerts) != q.n {
			t.Errorf("?%s: %d alerts, want %d", q.query, len(res.Alerts), q.n)
		}
	}
	var apiErr struct{ Error apiError }
	for _, bad := range []string{"state=burning", "level=LOUD", "since=yesterday", "limit=0"} {
		apiGet(t, h, "/api/v1/alerts?"+bad, 400, &apiErr)
		if apiErr.Error.Code != "bad_parameter" || apiErr.Error.Message == "" {
			t.Errorf("?%s: %+v", bad, apiErr)
		}
	}

	// Silences: create one for j2, raise j2's alert, see it suppressed and
	// not sent; expire the silence and it is sent.
	var sil struct {
		ID       string
		State    string
		Matchers []map[string]any
	}
	apiDo(t, h, "POST", "/api/v1/silences", `{"matchers":[{"name":"job","value":"j2","isRegex":false}, "level=~\"WARN|FATAL\""],
		"duration":"1h","createdBy":"ops@example.com","comment":"planned maintenance"}`, 201, &sil)
	if sil.ID == "" || sil.State != "active" || len(sil.Matchers) != 2 || sil.Matchers[1]["isRegex"] != true {
		t.Fatalf("silence %+v", sil)
	}
	b := alert.New("j2", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn, nil)
	if err := n.Raise(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the silenced alert to be marked", func() bool {
		apiGet(t, h, "/api/v1/alerts?state=suppressed", 200, &res)
		return len(res.Alerts) == 1 && len(res.Alerts[0].SilencedBy) == 1 && res.Alerts[0].SilencedBy[0] == sil.ID
	})
	time.Sleep(150 * time.Millisecond) // three group intervals
	if len(srv.delivered()) != 2 {
		t.Fatalf("a silenced alert was sent")
	}
	var list struct{ Silences []Silence }
	apiGet(t, h, "/api/v1/silences?state=active", 200, &list)
	if len(list.Silences) != 1 || list.Silences[0].ID != sil.ID || list.Silences[0].CreatedBy != "ops@example.com" {
		t.Fatalf("active silences %+v", list)
	}
	apiGet(t, h, "/api/v1/silences/"+sil.ID, 200, nil)
	apiDo(t, h, "DELETE", "/api/v1/silences/"+sil.ID, "", 200, &sil)
	if sil.State != "expired" {
		t.Fatalf("expired silence %+v", sil)
	}
	waitFor(t, 5*time.Second, "the alert once unsilenced", func() bool { return len(srv.delivered()) == 3 })
	apiGet(t, h, "/api/v1/silences?state=active", 200, &list)
	if len(list.Silences) != 0 {
		t.Fatalf("active silences after expiry %+v", list)
	}
	apiDo(t, h, "POST", "/api/v1/silences", `{"id":"`+sil.ID+`","matchers":["job=\"j2\""],"duration":"1h","createdBy":"x","comment":"y"}`, 409, nil)
	apiDo(t, h, "DELETE", "/api/v1/silences/nope", "", 404, nil)
	apiDo(t, h, "POST", "/api/v1/silences", `{"matchers":["job=~\".*\""],"duration":"1h","createdBy":"x","comment":"y"}`, 400, &apiErr)
	if apiErr.Error.Code != "invalid_silence" {
		t.Errorf("silence matching everything: %+v", apiErr)
	}
	apiDo(t, h, "POST", "/api/v1/silences", `{"matchers":["job=\"j2"],"duration":"1h","createdBy":"x","comment":"y"}`, 400, nil)

	// The receiver has the third body before the outbox has its answer and
	// counts the delivery.
	waitFor(t, 5*time.Second, "the delivered metric", func() bool {
		return metricValue(n.m.deliveries.WithLabelValues("ops/hook", OutcomeDelivered)) == 3
	})
	if got := metricValue(n.m.notifications.WithLabelValues("ops")); got != 3 {
		t.Errorf("notifications metric %v", got)
	}
	if srv.badSig != 0 {
		t.Errorf("%d bodies with a bad signature", srv.badSig)
	}
}

func mustNormalize(t testing.TB, a alert.Alert) alert.Alert {
	t.Helper()
	a, err := normalize(a)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRaiseValidates(t *testing.T) {
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	n := startNotifier(t, db, Config{}, Options{})
	defer stopNotifier(t, n)
	for _, a := range []alert.Alert{
		{Labels: alert.Labels{"job": "j", "alertname": "E"}},
		{Labels: alert.Labels{"job": "j", "alertname": "E", "level": "LOUD"}},
		{Labels: alert.Labels{"job": "j", "alertname": "E", "level": "WARN", "bad-name": "x"}},
		{Labels: alert.Labels{"alertname": "E", "level": "WARN"}},
	} {
		if err := n.Raise(context.Background(), a); !errors.Is(err, ErrInvalid) {
			t.Errorf("Raise(%s) = %v", a.Labels, err)
		}
	}
	// Without receivers, alerts are recorded and shown.
	if err := n.Raise(context.Background(), alert.New("j", "E", "warn", nil)); err != nil {
		t.Fatal(err)
	}
	vs, err := n.Alerts(context.Background(), AlertQuery{States: []string{StateActive}})
	if err != nil || len(vs) != 1 || vs[0].Level != "WARN" {
		t.Fatalf("alerts %+v, %v", vs, err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Raise(context.Background(), alert.New("j", "E", "warn", nil)); !errors.Is(err, ErrStopped) {
		t.Errorf("Raise after Stop: %v", err)
	}
}

// TestRestartsKeepState: a restarted notifier neither forgets an alert nor
// notifies again what it already notified.
func TestRestartsKeepState(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			srv := newHookServer(t, "s1gning-k3y")
			cfg := hookConfig(srv.URL)
			db := b.open(t)
			n := startNotifier(t, db, cfg, Options{})
			a := alert.New("j1", "JOB_MANAGER_FAILED_CHECKPOINT_INCREASE", alert.LevelWarn, nil)
			if err := n.Raise(ctx, a); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "first notification", func() bool { return len(srv.delivered()) == 1 })
			stopNotifier(t, n)
			closeDB(t, db)

			// Raised while a restart's group_wait is still running, then stopped.
			cfg.Route.GroupWait = dur(time.Hour)
			db = b.open(t)
			n = startNotifier(t, db, cfg, Options{})
			c := alert.New("j3", "TASK_MANAGER_OPERATOR_DATA_SKEW", alert.LevelWarn, nil)
			if err := n.Raise(ctx, c); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			stopNotifier(t, n)
			closeDB(t, db)

			cfg.Route.GroupWait = dur(0)
			db = b.open(t)
			defer closeDB(t, db)
			n = startNotifier(t, db, cfg, Options{})
			defer stopNotifier(t, n)
			waitFor(t, 5*time.Second, "the alert raised before the restart", func() bool { return len(srv.delivered()) == 2 })
			time.Sleep(200 * time.Millisecond) // four group intervals: nothing more
			if got := srv.delivered(); len(got) != 2 || got[1].CommonLabels["job"] != "j3" {
				t.Fatalf("after restart: %+v", got)
			}
			// Resolving after a restart reports the alert resolved.
			if err := n.Resolve(ctx, a); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "resolved notice", func() bool { return len(srv.delivered()) == 3 })
			if got := srv.delivered()[2]; got.Status != "resolved" || got.CommonLabels["job"] != "j1" {
				t.Fatalf("resolved after restart: %+v", got)
			}
		})
	}
}

// flakyChannel fails its first failures sends with err, then succeeds.
type flakyChannel struct {
	mu       sync.Mutex
	failures int
	err      error
	sends    []*alert.Message
}

func (f *flakyChannel) Send(ctx context.Context, m *alert.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, m)
	if len(f.sends) <= f.failures {
		return f.err
	}
	return nil
}

func (f *flakyChannel) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

func twoChannelConfig() Config {
	cfg := hookConfig("http://127.0.0.1:1/unused")
	cfg.Receivers[0].Channels = append(cfg.Receivers[0].Channels,
		ChannelConfig{Name: "second", Webhook: &webhook.Config{URL: "http://127.0.0.1:1/unused2"}})
	return cfg
}

func TestRetriesAndPermanentFailures(t *testing.T) {
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	flaky := &flakyChannel{failures: 3, err: channel.Temporary("fake", errors.New("503 busy"))}
	broken := &flakyChannel{failures: 1 << 30, err: channel.Permanent("fake", errors.New("400 no such room"))}
	n := startNotifier(t, db, twoChannelConfig(), Options{Channels: map[string]Channel{"ops/hook": flaky, "ops/second": broken}})
	defer stopNotifier(t, n)
	if err := n.Raise(context.Background(), alert.New("j1", "E", alert.LevelInfo, nil)); err != nil {
		t.Fatal(err)
	}
	var ds []DeliveryRecord
	waitFor(t, 5*time.Second, "both deliveries to settle", func() bool {
		db.Order("channel").Find(&ds)
		return len(ds) == 2 && ds[0].Status != DeliveryPending && ds[1].Status != DeliveryPending
	})
	if d := ds[0]; d.Channel != "ops/hook" || d.Status != DeliveryDelivered || d.Attempts != 4 || d.LastError != "" {
		t.Errorf("flaky delivery %+v", d)
	}
	if d := ds[1]; d.Channel != "ops/second" || d.Status != DeliveryFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "no such room") {
		t.Errorf("broken delivery %+v", d)
	}
	var atts []AttemptRecord
	db.Where("delivery_id = ?", ds[0].ID).Order("id").Find(&atts)
	var outcomes []string
	for _, a := range atts {
		outcomes = append(outcomes, a.Outcome)
	}
	if strings.Join(outcomes, ",") != "retry,retry,retry,delivered" {
		t.Errorf("attempt outcomes %v", outcomes)
	}
	// Every attempt carried the same key and notification; attempts count up.
	for i, m := range flaky.sends {
		if m.IdempotencyKey != ds[0].IdempotencyKey || m.Attempt != i+1 || m.NotificationID != flaky.sends[0].NotificationID {
			t.Errorf("send %d: key %s attempt %d", i, m.IdempotencyKey, m.Attempt)
		}
	}
	if broken.sends[0].IdempotencyKey == flaky.sends[0].IdempotencyKey {
		t.Errorf("two channels share an idempotency key")
	}
}

func TestMaxAttempts(t *testing.T) {
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	cfg := hookConfig("http://127.0.0.1:1/x")
	cfg.Outbox.MaxAttempts = 3
	flaky := &flakyChannel{failures: 100, err: errors.New("connection refused")}
	n := startNotifier(t, db, cfg, Options{Channels: map[string]Channel{"ops/hook": flaky}})
	defer stopNotifier(t, n)
	if err := n.Raise(context.Background(), alert.New("j1", "E", alert.LevelInfo, nil)); err != nil {
		t.Fatal(err)
	}
	var d DeliveryRecord
	waitFor(t, 5*time.Second, "give up", func() bool { db.First(&d); return d.Status == DeliveryFailed })
	if d.Attempts != 3 || flaky.count() != 3 || !strings.Contains(d.LastError, "gave up after 3 attempts") {
		t.Errorf("delivery %+v after %d sends", d, flaky.count())
	}
}

func TestBackoff(t *testing.T) {
	o := &outbox{cfg: Outbox{MinBackoff: time.Second, MaxBackoff: time.Minute}}
	o.rnd = newOutbox(nil, Outbox{Workers: 1}, nil, time.Now, nil, nil).rnd
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 100: time.Minute} {
		for range 50 {
			got := o.backoff(attempt, 0)
			if got < want/2 || got > want {
				t.Fatalf("attempt %d: %s not in [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
	if got := o.backoff(1, 30*time.Second); got != 30*time.Second {
		t.Errorf("Retry-After 30s: %s", got)
	}
}

// blockingChannel blocks every send until its context ends.
type blockingChannel struct{ started chan string }

func (b *blockingChannel) Send(ctx context.Context, m *alert.Message) error {
	b.started <- m.IdempotencyKey
	<-ctx.Done()
	return channel.Temporary("block", ctx.Err())
}

// TestInterruptedDeliveryIsSentAgain: a send cut short by a stop, and one the
// daemon died in (its attempt left "sending"), are both sent again with the
// same idempotency key after a restart.
func TestInterruptedDeliveryIsSentAgain(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			cfg := hookConfig("http://127.0.0.1:1/x")
			cfg.Outbox.SendTimeout = time.Minute
			db := b.open(t)
			block := &blockingChannel{started: make(chan string, 10)}
			n := startNotifier(t, db, cfg, Options{Channels: map[string]Channel{"ops/hook": block}})
			if err := n.Raise(context.Background(), alert.New("j1", "E", alert.LevelInfo, nil)); err != nil {
				t.Fatal(err)
			}
			var key string
			select {
			case key = <-block.started:
			case <-time.After(5 * time.Second):
				t.Fatal("no send started")
			}
			var att AttemptRecord
			db.First(&att)
			if att.Outcome != OutcomeSending {
				t.Fatalf("attempt under way recorded as %q", att.Outcome)
			}
			stopNotifier(t, n)
			db.First(&att)
			var d DeliveryRecord
			db.First(&d)
			if att.Outcome != OutcomeInterrupted || d.Status != DeliveryPending {
				t.Fatalf("after stop: attempt %q, delivery %q", att.Outcome, d.Status)
			}
			// Pretend the daemon died during the attempt instead.
			db.Model(&AttemptRecord{}).Where("id = ?", att.ID).Updates(map[string]any{"outcome": OutcomeSending, "finished_at": nil})
			closeDB(t, db)

			db = b.open(t)
			defer closeDB(t, db)
			ok := &flakyChannel{}
			n = startNotifier(t, db, cfg, Options{Channels: map[string]Channel{"ops/hook": ok}})
			defer stopNotifier(t, n)
			waitFor(t, 5*time.Second, "the interrupted delivery", func() bool { db.First(&d); return d.Status == DeliveryDelivered })
			if ok.count() != 1 || ok.sends[0].IdempotencyKey != key || ok.sends[0].Attempt != 2 {
				t.Fatalf("resent %d times, key %v", ok.count(), ok.sends)
			}
			db.First(&att)
			if att.Outcome != OutcomeInterrupted || att.FinishedAt == nil {
				t.Errorf("the dead daemon's attempt: %+v", att)
			}
		})
	}
}

func TestRateLimitSpacesDeliveries(t *testing.T) {
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	cfg := hookConfig("http://127.0.0.1:1/x")
	cfg.Route.GroupBy = []string{"..."}
	cfg.Receivers[0].Channels[0].RateLimit = RateLimit{Count: 2, Per: time.Hour}
	ok := &flakyChannel{}
	n := startNotifier(t, db, cfg, Options{Channels: map[string]Channel{"ops/hook": ok}})
	defer stopNotifier(t, n)
	start := time.Now()
	for i := range 5 {
		a := alert.New("j1", "E", alert.LevelInfo, alert.Labels{"n": string(rune('a' + i))})
		if err := n.Raise(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "two deliveries and three postponed", func() bool {
		var pending int64
		db.Model(&DeliveryRecord{}).Where("status = ? AND next_attempt_at > ?", DeliveryPending, start.Add(50*time.Minute).UTC()).Count(&pending)
		return ok.count() == 2 && pending == 3
	})
	time.Sleep(50 * time.Millisecond)
	if ok.count() != 2 {
		t.Errorf("%d sent within the limit of 2 an hour", ok.count())
	}
	if got := metricValue(n.m.rateLimited.WithLabelValues("ops/hook")); got != 3 {
		t.Errorf("rate-limited metric %v", got)
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(3, time.Minute)
	var got []time.Duration
	for _, at := range []time.Duration{0, 0, 10 * time.Second, 10 * time.Second, 10 * time.Second, 3 * time.Minute} {
		got = append(got, l.reserve(t0.Add(at)).Sub(t0))
	}
	want := []time.Duration{0, 0, 10 * time.Second, time.Minute, time.Minute, 3 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slots %v, want %v", got, want)
		}
	}
	// No window of a minute holds more than three.
	l = newLimiter(3, time.Minute)
	var slots []time.Time
	for i := range 40 {
		slots = append(slots, l.reserve(t0.Add(time.Duration(i)*time.Second)))
	}
	for i := range slots {
		k := 0
		for j := i; j < len(slots) && slots[j].Before(slots[i].Add(time.Minute)); j++ {
			k++
		}
		if k > 3 {
			t.Fatalf("%d messages in the minute from %s", k, slots[i].Sub(t0))
		}
	}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func TestResolveWhereAndFiring(t *testing.T) {
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	srv := newHookServer(t, "s1gning-k3y")
	n := startNotifier(t, db, hookConfig(srv.URL), Options{})
	defer stopNotifier(t, n)
	ctx := context.Background()
	var batch []alert.Alert
	for _, k := range []string{"r1/j1/tm-1", "r1/j1/tm-2", "r2/j1/"} {
		parts := strings.Split(k, "/")
		batch = append(batch, alert.New(parts[1], parts[0], alert.LevelWarn, alert.Labels{"key": k}))
	}
	if err := n.Raise(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	if got := n.Firing(); len(got) != 3 || got[0].Labels["family"] == "" {
		t.Fatalf("firing %v", got)
	}
	k, err := n.ResolveWhere(ctx, alert.Labels{"key": "r1/j1/tm-2", "job": "j1"}, time.Time{})
	if err != nil || k != 1 {
		t.Fatalf("resolved %d, %v", k, err)
	}
	if k, _ := n.ResolveWhere(ctx, alert.Labels{"key": "r1/j1/tm-2"}, time.Time{}); k != 0 {
		t.Errorf("resolved again: %d", k)
	}
	if got := n.Firing(); len(got) != 2 {
		t.Fatalf("firing %v", got)
	}
	if k, _ := n.ResolveWhere(ctx, alert.Labels{"job": "j1"}, time.Time{}); k != 2 {
		t.Errorf("resolving a job's alerts: %d", k)
	}
	var firing int64
	db.Model(&AlertRecord{}).Where("state = ?", "firing").Count(&firing)
	if firing != 0 || len(n.Firing()) != 0 {
		t.Errorf("%d rows still firing", firing)
	}
	if _, err := n.ResolveWhere(ctx, nil, time.Time{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no labels: %v", err)
	}
}
