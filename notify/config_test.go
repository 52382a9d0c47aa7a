package notify

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigGood(t *testing.T) {
	data, err := os.ReadFile("testdata/configs/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.ResolveTimeout != 5*time.Minute || *cfg.Route.GroupWait != 30*time.Second || len(cfg.Route.Routes) != 3 ||
		!cfg.Route.Routes[0].Continue || cfg.Receivers[1].Channels[0].RateLimit != (RateLimit{10, time.Hour}) ||
		*cfg.Receivers[1].Channels[0].SendResolved || cfg.Receivers[1].Channels[0].SMS.SignName != "潮汐监控" {
		t.Errorf("parsed %+v", cfg)
	}
	channels, receivers, err := buildChannels(cfg.withDefaults(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range []string{"ops", "oncall", "payments"} {
		for _, c := range receivers[r].channels {
			names = append(names, c.name)
		}
	}
	if got := strings.Join(names, " "); got != "ops/wecom-1 ops/wecom-2 ops/email oncall/sms oncall/pagerbridge payments/alertmanager" {
		t.Errorf("channel names %s", got)
	}
	if l := channels["ops/wecom-1"].limiter; l == nil || l.count != 20 || l.per != time.Minute {
		t.Errorf("WeChat Work's default rate limit: %+v", l)
	}
	if l := channels["oncall/sms"].limiter; l == nil || l.count != 10 {
		t.Errorf("configured rate limit: %+v", l)
	}
	if channels["oncall/pagerbridge"].limiter != nil || channels["oncall/sms"].sendResolved || !channels["ops/email"].sendResolved {
		t.Errorf("channel settings")
	}
	// Every secret of a channel's configuration is known, to be scrubbed.
	for name, want := range map[string]string{"oncall/sms": "exampleSecretKeyExample", "ops/email": "smtp-password",
		"oncall/pagerbridge": "webhook-signing-secret", "ops/wecom-1": "00000000-1111-2222-3333-444444444444", "payments/alertmanager": "am-token"} {
		if !strings.Contains(strings.Join(channels[name].secrets, "\n"), want) {
			t.Errorf("%s: secrets %d, missing one", name, len(channels[name].secrets))
		}
	}
	root, err := compileRoute(cfg.withDefaults().Route, nil, "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"job", "web", "level", "FATAL", "alertname", "X"}, "oncall"},
		{[]string{"job", "payments-etl", "level", "FATAL", "alertname", "TASK_MANAGER_CPU_LOAD_LOW"}, "oncall ops"},
		{[]string{"job", "payments-etl", "level", "WARN", "alertname", "X"}, "payments"},
		{[]string{"job", "web", "level", "WARN", "alertname", "X", "tm", "tm-15"}, "ops"},
		{[]string{"job", "web", "level", "INFO", "alertname", "X", "tm", "tm-15"}, "ops"},
	} {
		a := mk(tc.labels[1], tc.labels[5], "WARN")
		a.Labels["level"] = tc.labels[3]
		for i := 6; i+1 < len(tc.labels); i += 2 {
			a.Labels[tc.labels[i]] = tc.labels[i+1]
		}
		var got []string
		for _, r := range root.match(a.Labels) {
			got = append(got, r.receiver)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%v: routed to %v, want %s", tc.labels, got, tc.want)
		}
	}
}

func TestZeroConfigIsValid(t *testing.T) {
	if _, err := ParseConfig(nil); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseConfigBad(t *testing.T) {
	f, err := os.Open("testdata/configs/bad/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad line in expected.txt: %q", sc.Text())
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/configs/bad", name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(data)
			if err == nil {
				t.Fatalf("no error, want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error %q quotes a secret", err)
			}
		})
	}
	files, _ := filepath.Glob("testdata/configs/bad/*.yaml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no expected error in expected.txt", f)
		}
	}
}
