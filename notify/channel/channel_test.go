package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidewatch/tidewatch/notify/alert"
)

func TestSecretDoesNotPrint(t *testing.T) {
	type conf struct {
		URL Secret
		Key Secret
	}
	c := conf{URL: "https://h/x?key=abc123456", Key: "k3y-k3y-k3y"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Key)} {
		if strings.Contains(s, "abc123456") || strings.Contains(s, "k3y-k3y") {
			t.Errorf("printed: %s", s)
		}
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "k3y") {
		t.Errorf("JSON: %s", b)
	}
	if c.Key.Value() != "k3y-k3y-k3y" {
		t.Error("Value")
	}
}

func TestScrubAndRedact(t *testing.T) {
	u := "https://user:pa55word@hooks.example.com/services/T0KEN/x?key=a bc&sig=zz99zz99"
	if got := RedactURL(u); got != "https://hooks.example.com" {
		t.Errorf("RedactURL %s", got)
	}
	if RedactURL("::") != "<invalid url>" {
		t.Error("invalid URL")
	}
	text := "failed for " + u + " (key=a+bc, path /services/T0KEN/x, pw pa55word, sig zz99zz99)"
	got := Scrub(text, URLSecrets(u)...)
	for _, s := range []string{"pa55word", "T0KEN", "zz99zz99", "a+bc"} {
		if strings.Contains(got, s) {
			t.Errorf("%q left in %q", s, got)
		}
	}
	if Scrub("abc", "ab") != "abc" {
		t.Error("secrets shorter than 4 bytes are not scrubbed (they would mangle text)")
	}
}

func TestDoKeepsURLsOutOfErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
	}))
	defer srv.Close()
	url := srv.URL + "/hook?key=SECRETKEY123"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := Do(ctx, nil, Request{Channel: "t", Method: "POST", URL: url, Secrets: URLSecrets(url)})
	if err == nil || strings.Contains(err.Error(), "SECRETKEY123") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
	if retry, _ := Retryable(err); !retry {
		t.Error("a timeout is retried")
	}
	_, err = Do(context.Background(), nil, Request{Channel: "t", Method: "POST", URL: "http://a b/?key=SECRETKEY123"})
	if err == nil || strings.Contains(err.Error(), "SECRETKEY123") {
		t.Errorf("bad URL: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate(4, "潮汐监控平台"); got != "潮汐监…" {
		t.Errorf("Truncate %q", got)
	}
	if got := Truncate(10, "short"); got != "short" {
		t.Errorf("Truncate %q", got)
	}
	for n := 0; n < 20; n++ {
		got := TruncateBytes(n, "潮汐监控平台 tidewatch")
		if len(got) > n || !utf8.ValidString(got) {
			t.Errorf("TruncateBytes(%d) = %q", n, got)
		}
	}
}

func TestTemplate(t *testing.T) {
	const defaults = `{{ define "main" }}{{ template "title" . }}: {{ .Status }}{{ end }}{{ define "title" }}T{{ end }}`
	m := &alert.Message{Status: "firing", CommonLabels: alert.Labels{"job": "j", "level": "WARN"}}
	for override, want := range map[string]string{
		"": "T: firing",
		`{{ define "title" }}Title{{ end }}{{ template "title" . }}!`:                     "Title!",
		`{{ range sortedPairs .CommonLabels }}{{ .Name }}={{ .Value }};{{ end }}`:         "job=j;level=WARN;",
		`{{ .CommonLabels.missing }}|{{ toUpper .Status }}|{{ join "," (list "a" "b") }}`: "|FIRING|a,b",
	} {
		tm, err := ParseTemplate(defaults, "main", override)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tm.Execute("main", m)
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", override, got, err, want)
		}
	}
	if _, err := ParseTemplate(defaults, "nope", ""); err == nil {
		t.Error("a missing main template")
	}
	tm, _ := ParseTemplate(defaults, "main", `{{ range 2000000 }}xxxxxxxxxx{{ end }}`)
	if _, err := tm.Execute("main", m); err == nil {
		t.Error("output over 1 MiB")
	}
	if HumanDuration(90*time.Minute) != "1h30m" || HumanDuration(50*time.Hour) != "2d2h" || HumanDuration(5*time.Second) != "5s" {
		t.Error("HumanDuration")
	}
}
