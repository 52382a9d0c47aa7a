package notify

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// Matchers come from people: silences over the REST API, rule files,
// configuration. Whatever parses must print back to the same matcher.
func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{`job="a"`, `{job="a", level=~"WARN|INFO"}`, `tm!~"tm-[0-3]"`, `a!=b,c=d`, `x="\"q\"\\"`, `{}`, `a=`, `=~`, `a=~"("`, `é="x"`} {
		f.Add(s)
	}
	ls := alert.Labels{"job": "a", "level": "WARN", "tm": "tm-1", "x": `"q"\`}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMatchers(s)
		if err != nil {
			return
		}
		for _, m := range ms {
			again, err := ParseMatcher(m.String())
			if err != nil {
				t.Fatalf("%q printed as %q, which does not parse: %v", s, m.String(), err)
			}
			if again.Name != m.Name || again.Type != m.Type || again.Value != m.Value {
				t.Fatalf("%q: %+v printed and parsed back as %+v", s, m, again)
			}
			if again.Matches(ls) != m.Matches(ls) {
				t.Fatalf("%q: round trip changes what matches", s)
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON Matcher
			if err := json.Unmarshal(b, &fromJSON); err != nil || fromJSON.String() != m.String() {
				t.Fatalf("%q: JSON %s round trip: %v", s, b, err)
			}
		}
	})
}

// The notify section is operators' input: it must never panic, and what
// validates must build.
func FuzzParseConfig(f *testing.F) {
	good, err := os.ReadFile("testdata/configs/good.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("route: {receiver: ops, group_by: ['...']}\nreceivers: [{name: ops, channels: [{webhook: {url: 'http://h/x'}}]}]\n"))
	f.Add([]byte("inhibit: {family: false, restart_events: [], rules: [{source_matchers: ['a=\"b\"'], target_matchers: ['c=~\"d\"'], equal: [e]}]}\n"))
	f.Add([]byte("outbox: {workers: 2, min_backoff: 1s, max_backoff: 2s}\nresolve_timeout: 0s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		cfg = cfg.withDefaults()
		if _, err := compileRoute(cfg.Route, nil, "0"); err != nil {
			t.Fatalf("valid config, routes do not compile: %v", err)
		}
		if _, err := compileInhibit(cfg.Inhibit); err != nil {
			t.Fatalf("valid config, inhibit rules do not compile: %v", err)
		}
	})
}

// The body of POST /api/v1/silences.
func FuzzSilenceRequest(f *testing.F) {
	f.Add([]byte(`{"matchers":[{"name":"job","value":"j2","isRegex":false}, "level=~\"WARN|FATAL\""],"duration":"1h","createdBy":"a","comment":"b"}`))
	f.Add([]byte(`{"matchers":[{"name":"job","value":".*","isRegex":true,"isEqual":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-02T00:00:00Z"}`))
	f.Add([]byte(`{"matchers":[null, 1, "x"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req silenceRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return
		}
		s := Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: req.CreatedBy, Comment: req.Comment}
		if err := s.Validate(); err != nil {
			return
		}
		var back Matchers
		if err := json.Unmarshal([]byte(mustJSON(s.Matchers)), &back); err != nil || back.String() != s.Matchers.String() {
			t.Fatalf("stored matchers %s read back as %s: %v", s.Matchers, back, err)
		}
		s.Mutes(alert.Labels{"job": "j2"}, s.StartsAt)
	})
}
