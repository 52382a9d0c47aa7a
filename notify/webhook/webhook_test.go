package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

func testMessage() *alert.Message {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := alert.New("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, alert.Labels{"tm": "tm-1"})
	a.StartsAt = start
	a.Annotations = alert.Labels{"summary": "heap 91%"}
	b := alert.New("j1", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, alert.Labels{"tm": "tm-2"})
	b.StartsAt, b.EndsAt = start, start.Add(time.Minute)
	now := start.Add(2 * time.Minute)
	return &alert.Message{IdempotencyKey: "0123456789abcdef0123456789abcdef", Attempt: 2, Receiver: "ops", Status: "firing",
		GroupKey: `0:ops:{job="j1"}`, GroupLabels: alert.Labels{"job": "j1"},
		CommonLabels: alert.Labels{"job": "j1", "alertname": "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", "level": "WARN"},
		ExternalURL:  "http://tw.example", Alerts: alert.Alerts{alert.NewMessageAlert(a, now), alert.NewMessageAlert(b, now)}, Time: now}
}

func TestSend(t *testing.T) {
	var got struct {
		header http.Header
		body   []byte
		path   string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.header, got.path = r.Header.Clone(), r.URL.RequestURI()
		got.body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	c, err := New(Config{URL: channel.Secret(srv.URL + "/hooks/T0k3n?x=1"), Secret: "hmac-key", MaxAlerts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got.path != "/hooks/T0k3n?x=1" || got.header.Get("Content-Type") != "application/json" ||
		got.header.Get(HeaderIdempotencyKey) != "0123456789abcdef0123456789abcdef" || got.header.Get(HeaderAttempt) != "2" {
		t.Errorf("request %s %v", got.path, got.header)
	}
	if !Verify([]byte("hmac-key"), got.body, got.header.Get(HeaderSignature)) || Verify([]byte("other"), got.body, got.header.Get(HeaderSignature)) {
		t.Errorf("signature %q does not verify", got.header.Get(HeaderSignature))
	}
	// Alertmanager's webhook format, version 4.
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"} {
		if _, ok := body[k]; !ok {
			t.Errorf("body has no %s: %s", k, got.body)
		}
	}
	if body["version"] != "4" || body["truncatedAlerts"] != 1.0 || len(body["alerts"].([]any)) != 1 {
		t.Errorf("body %s", got.body)
	}
	a := body["alerts"].([]any)[0].(map[string]any)
	for _, k := range []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} {
		if _, ok := a[k]; !ok {
			t.Errorf("alert has no %s: %v", k, a)
		}
	}
	if a["startsAt"] != "2026-03-01T12:00:00Z" || a["fingerprint"] == "" || a["status"] != "firing" {
		t.Errorf("alert %v", a)
	}
}

func TestErrors(t *testing.T) {
	const token = "sup3rs3cretT0ken"
	for _, tc := range []struct {
		status    int
		header    string
		retryable bool
		after     time.Duration
	}{
		{500, "", true, 0}, {503, "", true, 0}, {429, "7", true, 7 * time.Second}, {400, "", false, 0}, {404, "", false, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			// A receiver that echoes the request URL must not leak it.
			w.WriteHeader(tc.status)
			io.WriteString(w, "no thanks for "+r.URL.String())
		}))
		c, _ := New(Config{URL: channel.Secret(srv.URL + "/hook/" + token + "?token=" + token)}, nil)
		err := c.Send(context.Background(), testMessage())
		srv.Close()
		var ce *channel.Error
		if !errors.As(err, &ce) || ce.StatusCode != tc.status {
			t.Fatalf("%d: %v", tc.status, err)
		}
		if retry, after := channel.Retryable(err); retry != tc.retryable || after != tc.after {
			t.Errorf("%d: retryable %v after %s", tc.status, retry, after)
		}
		if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "no thanks") {
			t.Errorf("%d: error %q", tc.status, err)
		}
	}
	// Nobody listening: a retryable error that names the host only.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook?token=" + token
	srv.Close()
	c, _ := New(Config{URL: channel.Secret(url)}, nil)
	err := c.Send(context.Background(), testMessage())
	if retry, _ := channel.Retryable(err); err == nil || !retry || strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "/hook") {
		t.Errorf("connection refused: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, "url: must be set"},
		{Config{URL: "ftp://x/y?key=s3cret"}, "url: must be an http"},
		{Config{URL: "http://"}, "url: has no host"},
		{Config{URL: "http://x", MaxAlerts: -1}, "max_alerts: must not be negative"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
