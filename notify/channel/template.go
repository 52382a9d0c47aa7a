package channel

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// MaxTemplateOutput bounds what one template execution may write.
const MaxTemplateOutput = 1 << 20

// Template is a channel's set of named text/templates: the embedded defaults,
// with whatever the configuration overrides.
type Template struct {
	t *template.Template
}

// ParseTemplate parses the channel's embedded default templates, then the
// override, if any. The override is parsed as the template named main, so a
// plain text replaces the main template; it may also {{define}} any of the
// other named templates to replace them.
func ParseTemplate(defaults, main, override string) (*Template, error) {
	t, err := template.New("defaults").Funcs(FuncMap()).Option("missingkey=zero").Parse(defaults)
	if err != nil {
		return nil, fmt.Errorf("default template: %w", err)
	}
	if override != "" {
		if _, err := t.New(main).Parse(override); err != nil {
			return nil, err
		}
	}
	if t.Lookup(main) == nil {
		return nil, fmt.Errorf("template %q is not defined", main)
	}
	return &Template{t: t}, nil
}

// Execute runs the named template.
func (t *Template) Execute(name string, data any) (string, error) {
	var b limitedBuilder
	if err := t.t.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

type limitedBuilder struct{ strings.Builder }

var errTooLong = errors.New("template output is longer than 1 MiB")

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxTemplateOutput {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

// Pair is one label of a sorted list.
type Pair struct{ Name, Value string }

// FuncMap are the functions every channel template has.
func FuncMap() template.FuncMap {
	return template.FuncMap{
		"toUpper": strings.ToUpper,
		"toLower": strings.ToLower,
		"join":    func(sep string, s []string) string { return strings.Join(s, sep) },
		"trim":    strings.TrimSpace,
		// truncate keeps at most n characters (runes), marking a cut with …
		"truncate": Truncate,
		// oneLine folds newlines and runs of spaces into single spaces.
		"oneLine": func(s string) string { return strings.Join(strings.Fields(s), " ") },
		// sortedPairs lists labels by name, for a stable order in messages.
		"sortedPairs": func(ls alert.Labels) []Pair {
			out := make([]Pair, 0, len(ls))
			for k, v := range ls {
				out = append(out, Pair{k, v})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return out
		},
		// without drops some label names from a label set.
		"without": func(names []string, ls alert.Labels) alert.Labels {
			out := ls.Clone()
			for _, n := range names {
				delete(out, n)
			}
			return out
		},
		"list": func(s ...string) []string { return s },
		// timeFormat formats a time in UTC or, given a fixed offset in hours
		// ("+8"), in that offset: "{{ timeFormat "+8" .StartsAt }}".
		"timeFormat": func(offset string, t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return inOffset(offset, t).Format("2006-01-02 15:04:05 -0700")
		},
		"since": func(from, to time.Time) string { return HumanDuration(to.Sub(from)) },
	}
}

func inOffset(offset string, t time.Time) time.Time {
	var h int
	if _, err := fmt.Sscanf(offset, "%d", &h); err != nil || h < -14 || h > 14 {
		return t.UTC()
	}
	return t.In(time.FixedZone(fmt.Sprintf("UTC%+d", h), h*3600))
}

// Truncate keeps at most n runes of s, ending a cut one with "…".
func Truncate(n int, s string) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n == 1 {
		return "…"
	}
	return string(r[:n-1]) + "…"
}

// TruncateBytes keeps at most n bytes of s without splitting a character,
// ending a cut one with "…".
func TruncateBytes(n int, s string) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	if cut < 0 {
		return ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// HumanDuration writes a duration the way people read it: 45s, 12m, 3h5m, 2d4h.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		m := int(d.Minutes()) - 60*h
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days := int(d.Hours()) / 24
	h := int(d.Hours()) - 24*days
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}
