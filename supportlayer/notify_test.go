package supportlayer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify"
)

// The notify: section is part of the daemon's configuration.
func TestLoadOptionsNotify(t *testing.T) {
	o, err := LoadOptions("testdata/configs/notify.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Notify == nil || len(o.Notify.Receivers) != 2 || o.Notify.Route.Receiver != "ops" || *o.Notify.Route.GroupWait != 10*time.Second {
		t.Fatalf("notify section %+v", o.Notify)
	}
	if _, err := LoadOptions("", []string{"TIDEWATCH_NOTIFY=x"}); err == nil || !strings.Contains(err.Error(), "cannot be set from the environment") {
		t.Errorf("TIDEWATCH_NOTIFY: %v", err)
	}
}

// The daemon runs a notifier: alerts raised through it are delivered and
// shown by GET /api/v1/alerts, behind the API's token, and silences are
// managed under /api/v1/silences.
func TestDaemonNotifies(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}))
	defer hook.Close()
	o := testOptions(t)
	o.Auth.Token = "t0ken"
	cfg, err := notify.ParseConfig([]byte(`
route: {receiver: ops, group_wait: 0s, group_interval: 100ms}
receivers:
  - name: ops
    channels: [{webhook: {url: "` + hook.URL + `"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	o.Notify = &cfg
	td := startTestDaemon(t, o, newFakeCluster(t))
	err = td.Notifier().Raise(context.Background(), notify.Alert{Labels: notify.Labels{
		"job": "0123456789abcdef0123456789abcdef", "alertname": "JOB_MANAGER_NUM_RUNNING_JOBS_BECOME_ZERO", "level": "FATAL"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification")
		}
		time.Sleep(10 * time.Millisecond)
	}
	auth := []string{"Authorization", "Bearer t0ken"}
	if code, _ := td.call("GET", "/api/v1/alerts", ""); code != http.StatusUnauthorized {
		t.Errorf("alerts without the token: %d", code)
	}
	code, b := td.call("GET", "/api/v1/alerts?level=FATAL&state=firing", "", auth...)
	var res struct{ Alerts []notify.AlertView }
	if err := json.Unmarshal(b, &res); err != nil || code != 200 || len(res.Alerts) != 1 ||
		len(res.Alerts[0].Notifications) != 1 || res.Alerts[0].Notifications[0].Deliveries[0].Status != notify.DeliveryDelivered {
		t.Fatalf("GET /api/v1/alerts: %d %s", code, b)
	}
	code, b = td.call("POST", "/api/v1/silences", `{"matchers":["job=\"x\""],"duration":"1h","createdBy":"me","comment":"test"}`, auth...)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/silences: %d %s", code, b)
	}
	var sil struct{ ID string }
	json.Unmarshal(b, &sil)
	if code, b := td.call("DELETE", "/api/v1/silences/"+sil.ID, "", auth...); code != 200 || !strings.Contains(string(b), `"expired"`) {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if code, b := td.call("PUT", "/api/v1/silences", "", auth...); code != http.StatusNotFound || !strings.Contains(string(b), `"code"`) {
		t.Errorf("PUT /api/v1/silences: %d %s", code, b)
	}
	if v, err := td.store.SchemaVersion(); err != nil || v != len(migrations) {
		t.Errorf("schema version %d, %v", v, err)
	}
}
