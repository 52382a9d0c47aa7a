package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

const robotKey = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"

// robot is a fake WeChat Work group robot: POST /cgi-bin/webhook/send?key=…
// with a JSON message, answering {"errcode":…,"errmsg":…} with status 200.
type robot struct {
	*httptest.Server
	mu       sync.Mutex
	contents []string
	errcode  int
}

func newRobot(t *testing.T) *robot {
	r := &robot{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if req.Method != http.MethodPost || req.URL.Path != "/cgi-bin/webhook/send" || req.Header.Get("Content-Type") != "application/json" {
			fmt.Fprint(w, `{"errcode":404,"errmsg":"not found"}`)
			return
		}
		if req.URL.Query().Get("key") != robotKey {
			// The real API quotes nothing of the key, but a fake that did
			// must not make it leak.
			fmt.Fprintf(w, `{"errcode":93000,"errmsg":"invalid webhook url, key %s"}`, req.URL.Query().Get("key"))
			return
		}
		var m struct {
			MsgType  string `json:"msgtype"`
			Markdown struct {
				Content string `json:"content"`
			} `json:"markdown"`
		}
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &m); err != nil || m.MsgType != "markdown" {
			fmt.Fprint(w, `{"errcode":40008,"errmsg":"invalid message type"}`)
			return
		}
		if len(m.Markdown.Content) > MaxContentBytes {
			fmt.Fprint(w, `{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}`)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.errcode != 0 {
			fmt.Fprintf(w, `{"errcode":%d,"errmsg":"api freq out of limit"}`, r.errcode)
			return
		}
		r.contents = append(r.contents, m.Markdown.Content)
		fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func message(n int) *alert.Message {
	start := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	m := &alert.Message{Receiver: "ops", Status: "firing", ExternalURL: "http://tw.example:8080",
		CommonLabels: alert.Labels{"job": "clicks", "alertname": "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", "level": "WARN"}}
	for i := range n {
		a := alert.New("clicks", "TASK_MANAGER_HEAP_MEM_LOAD_HIGH", alert.LevelWarn, alert.Labels{"tm": fmt.Sprintf("tm-%d", i), "family": "TASK_MANAGER_HEAP_MEM_LOAD"})
		a.StartsAt = start
		a.Annotations = alert.Labels{"summary": "堆内存使用率 91%"}
		m.Alerts = append(m.Alerts, alert.NewMessageAlert(a, start))
	}
	return m
}

func TestSendMarkdown(t *testing.T) {
	r := newRobot(t)
	c, err := New(Config{URL: channel.Secret(r.URL + "/cgi-bin/webhook/send?key=" + robotKey), Mentions: []string{"zhangsan"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), message(2)); err != nil {
		t.Fatal(err)
	}
	got := r.contents[0]
	for _, want := range []string{
		`<font color="warning">**[FIRING:2]**</font> TASK_MANAGER_HEAP_MEM_LOAD_HIGH`,
		"job: `clicks`, tm: `tm-0`",
		"> 堆内存使用率 91%",
		"since 2026-03-01 12:00:00 +0800",
		"[Tidewatch](http://tw.example:8080/api/v1/alerts?job=clicks)",
		"<@zhangsan>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("content lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "family") {
		t.Errorf("the family label is noise in a message:\n%s", got)
	}
}

func TestLongMessagesAreCut(t *testing.T) {
	r := newRobot(t)
	c, _ := New(Config{URL: channel.Secret(r.URL + "/cgi-bin/webhook/send?key=" + robotKey), Mentions: []string{"lisi"}}, nil)
	if err := c.Send(context.Background(), message(200)); err != nil {
		t.Fatal(err)
	}
	got := r.contents[0]
	if len(got) > MaxContentBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, "…\n<@lisi>") {
		t.Errorf("%d bytes, valid UTF-8 %v, ends %q", len(got), utf8.ValidString(got), got[len(got)-20:])
	}
}

func TestTemplateOverride(t *testing.T) {
	r := newRobot(t)
	c, err := New(Config{URL: channel.Secret(r.URL + "/cgi-bin/webhook/send?key=" + robotKey),
		Template: `{{ .Status | toUpper }} {{ .CommonLabels.job }}: {{ len .Alerts }} {{ template "wecom.color" "FATAL" }}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), message(3)); err != nil {
		t.Fatal(err)
	}
	if r.contents[0] != "FIRING clicks: 3 warning" {
		t.Errorf("content %q", r.contents[0])
	}
	if _, err := New(Config{URL: channel.Secret(r.URL + "/x?key=k"), Template: "{{ .Oops "}, nil); err == nil || !strings.Contains(err.Error(), "template:") {
		t.Errorf("a bad template: %v", err)
	}
}

func TestErrors(t *testing.T) {
	r := newRobot(t)
	// A wrong key: permanent, and the key is not in the error.
	c, _ := New(Config{URL: channel.Secret(r.URL + "/cgi-bin/webhook/send?key=wrong-" + robotKey)}, nil)
	err := c.Send(context.Background(), message(1))
	if retry, _ := channel.Retryable(err); err == nil || retry || !strings.Contains(err.Error(), "errcode 93000") || strings.Contains(err.Error(), robotKey) {
		t.Errorf("wrong key: %v", err)
	}
	// Over the robot's rate: retryable.
	r.errcode = 45009
	c, _ = New(Config{URL: channel.Secret(r.URL + "/cgi-bin/webhook/send?key=" + robotKey)}, nil)
	err = c.Send(context.Background(), message(1))
	var ce *channel.Error
	if !errors.As(err, &ce) || !ce.Retryable || !strings.Contains(err.Error(), "45009") {
		t.Errorf("rate limited: %v", err)
	}
	// Unreachable.
	r.Close()
	err = c.Send(context.Background(), message(1))
	if retry, _ := channel.Retryable(err); err == nil || !retry || strings.Contains(err.Error(), robotKey) || strings.Contains(err.Error(), "key=") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, "url: must be set"},
		{Config{URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "url: has no key= parameter"},
		{Config{URL: "qyapi.weixin.qq.com/cgi-bin/webhook/send?key=s3cretkey"}, "url: must be an http"},
		{Config{URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=s3cretkey", Mentions: []string{""}}, "mentions[0]: must not be empty"},
		{Config{URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=s3cretkey", Template: "{{ end }}"}, "template:"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cretkey") {
			t.Errorf("%v: %v, want %q", tc.c.Mentions, err, tc.want)
		}
	}
}
