package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/alertmanager"
	"github.com/tidewatch/tidewatch/notify/channel"
	"github.com/tidewatch/tidewatch/notify/email"
	"github.com/tidewatch/tidewatch/notify/sms"
	"github.com/tidewatch/tidewatch/notify/webhook"
	"github.com/tidewatch/tidewatch/notify/wecom"
)

// TestSecretsStayOut sends through every channel type to a server that
// fails every request and echoes all of it (URL, headers, body) in its
// answer, and checks that no key, token or password of the configuration
// appears in the log, in the outbox's errors or in the REST API's answers.
func TestSecretsStayOut(t *testing.T) {
	secrets := []string{"WECOMKEY-7f3a9c", "HOOKTOKEN-5b2e", "HMACSECRET-9d1f", "SMSID-AKIDx81", "SMSKEY-c0ffee",
		"MAILPASS-d00d", "AMPASS-feed", "AMBEARER-beef"}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "failed: %s %s headers %v body %s", r.Method, r.URL.String(), r.Header, body)
	}))
	defer echo.Close()
	host := strings.TrimPrefix(echo.URL, "http://")

	mailCfg := email.Config{Smarthost: "127.0.0.1:1", From: "a@example.com", To: []string{"b@example.com"},
		AuthUsername: "tidewatch", AuthPassword: "MAILPASS-d00d"}
	cfg := Config{
		ResolveTimeout: dur(0),
		Route:          Route{Receiver: "all", GroupWait: dur(0), GroupInterval: dur(time.Hour)},
		Receivers: []Receiver{{Name: "all", Channels: []ChannelConfig{
			{WeCom: &wecom.Config{URL: channel.Secret(echo.URL + "/cgi-bin/webhook/send?key=WECOMKEY-7f3a9c")}},
			{Webhook: &webhook.Config{URL: channel.Secret(echo.URL + "/hooks/HOOKTOKEN-5b2e"), Secret: "HMACSECRET-9d1f"}},
			{SMS: &sms.Config{SecretID: "SMSID-AKIDx81", SecretKey: "SMSKEY-c0ffee", Region: "ap-guangzhou", Endpoint: echo.URL,
				SDKAppID: "1400006666", TemplateID: "1", PhoneNumbers: []string{"+8613711112222"}}},
			{Email: &mailCfg},
			{Alertmanager: &alertmanager.Config{URL: channel.Secret("http://admin:AMPASS-feed@" + host), BearerToken: "AMBEARER-beef"}},
		}}},
		Outbox: Outbox{Workers: 4, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 2},
	}
	var logs syncBuffer
	db := openSQLite(t, t.TempDir()+"/t.db")
	defer closeDB(t, db)
	n := startNotifier(t, db, cfg, Options{Log: testLog(&logs)})
	if err := n.Raise(context.Background(), alert.New("j1", "TASK_MANAGER_CPU_LOAD_TOO_HIGH", alert.LevelWarn, nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every channel to give up", func() bool {
		var failed int64
		db.Model(&DeliveryRecord{}).Where("status = ?", DeliveryFailed).Count(&failed)
		return failed == 5
	})
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/alerts", nil))
	stopNotifier(t, n)

	var stored []string
	var ds []DeliveryRecord
	db.Find(&ds)
	for _, d := range ds {
		stored = append(stored, d.LastError)
	}
	var as []AttemptRecord
	db.Find(&as)
	for _, a := range as {
		stored = append(stored, a.Error)
	}
	places := map[string]string{"log": logs.String(), "outbox": strings.Join(stored, "\n"), "REST API": rec.Body.String()}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows %s:\n%s", where, s, text)
			}
		}
	}
	// The errors are there, just without the secrets.
	if !strings.Contains(places["outbox"], "status 500") || !strings.Contains(places["log"], "delivery failed") {
		t.Errorf("errors missing:\n%s", places["outbox"])
	}
}
