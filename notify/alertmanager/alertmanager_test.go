package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

// fakeAM answers POST /api/v2/alerts as Alertmanager does: 200 with an empty
// body for a valid list of postable alerts, 400 with a message otherwise.
func fakeAM(t *testing.T, got *[]map[string]any, auth *string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/am/api/v2/alerts" {
			http.NotFound(w, r)
			return
		}
		*auth = r.Header.Get("Authorization")
		body, _ := io.ReadAll(r.Body)
		var alerts []map[string]any
		if err := json.Unmarshal(body, &alerts); err != nil {
			http.Error(w, `"`+err.Error()+`"`, http.StatusBadRequest)
			return
		}
		for i, a := range alerts {
			ls, ok := a["labels"].(map[string]any)
			if !ok || len(ls) == 0 {
				http.Error(w, fmt.Sprintf(`"alerts[%d]: labels must not be empty"`, i), http.StatusBadRequest)
				return
			}
		}
		*got = append(*got, alerts...)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestForward(t *testing.T) {
	var got []map[string]any
	var auth string
	srv := fakeAM(t, &got, &auth)
	c, err := New(Config{URL: channel.Secret(srv.URL + "/am/"), BearerToken: "am-t0ken-123456"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	firing := alert.New("clicks", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn, nil)
	firing.StartsAt, firing.GeneratorURL = start, "http://tw.example/rules/cpu"
	resolved := alert.New("clicks", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn, alert.Labels{"tm": "tm-2"})
	resolved.StartsAt, resolved.EndsAt = start, start.Add(time.Minute)
	now := start.Add(2 * time.Minute)
	m := &alert.Message{Alerts: alert.Alerts{alert.NewMessageAlert(firing, now), alert.NewMessageAlert(resolved, now)}}
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer am-t0ken-123456" || len(got) != 2 {
		t.Fatalf("auth %q, alerts %v", auth, got)
	}
	if got[0]["startsAt"] != "2026-03-01T12:00:00Z" || got[0]["endsAt"] != nil || got[0]["generatorURL"] != "http://tw.example/rules/cpu" ||
		got[0]["labels"].(map[string]any)["alertname"] != "TASK_MANAGER_CPU_LOAD_TOO_HIGH" {
		t.Errorf("firing %v", got[0])
	}
	if got[1]["endsAt"] != "2026-03-01T12:01:00Z" {
		t.Errorf("resolved %v", got[1])
	}
}

func TestErrors(t *testing.T) {
	var got []map[string]any
	var auth string
	srv := fakeAM(t, &got, &auth)
	c, _ := New(Config{URL: channel.Secret(srv.URL + "/am"), BearerToken: "am-t0ken-123456"}, nil)
	err := c.Send(context.Background(), &alert.Message{Alerts: alert.Alerts{{Labels: alert.Labels{}}}})
	if retry, _ := channel.Retryable(err); err == nil || retry || !strings.Contains(err.Error(), "labels must not be empty") {
		t.Errorf("invalid alert: %v", err)
	}
	srv.Close()
	c, _ = New(Config{URL: channel.Secret(strings.Replace(srv.URL, "http://", "http://admin:b4sic-pw@", 1))}, nil)
	err = c.Send(context.Background(), &alert.Message{})
	if retry, _ := channel.Retryable(err); err == nil || !retry || strings.Contains(err.Error(), "b4sic-pw") || strings.Contains(err.Error(), "admin") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, "url: must be set"},
		{Config{URL: "alertmanager:9093"}, "url: must be an http"},
		{Config{URL: "http://am:9093/?x=s3cret"}, "url: must not have a query"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}
