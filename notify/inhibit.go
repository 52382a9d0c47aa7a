package notify

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// inhibitRule is a compiled inhibition rule.
type inhibitRule struct {
	name   string // for people: "family", "restart", "rules[2]"
	source Matchers
	target Matchers
	equal  []string
}

// compileInhibit turns the inhibit section into rules: the built-in family
// and restart rules first, then the configured ones.
func compileInhibit(in Inhibit) ([]*inhibitRule, error) {
	var rules []*inhibitRule
	must := func(t MatchType, name, value string) *Matcher {
		m, err := NewMatcher(t, name, value)
		if err != nil {
			panic(err) // built from constants and quoted names
		}
		return m
	}
	if in.Family == nil || *in.Family {
		rules = append(rules, &inhibitRule{
			name:   "family",
			source: Matchers{must(MatchEqual, alert.LabelLevel, string(alert.LevelFatal))},
			target: Matchers{must(MatchRegexp, alert.LabelLevel, string(alert.LevelWarn)+"|"+string(alert.LevelInfo))},
			equal:  []string{alert.LabelJob, alert.LabelFamily},
		})
	}
	restart := in.RestartEvents
	if restart == nil {
		restart = []string{RestartEvent}
	}
	if len(restart) > 0 {
		q := make([]string, len(restart))
		for i, e := range restart {
			if e == "" {
				return nil, fmt.Errorf("notify.inhibit.restart_events[%d]: must not be empty", i)
			}
			q[i] = regexp.QuoteMeta(e)
		}
		re := strings.Join(q, "|")
		rules = append(rules, &inhibitRule{
			name:   "restart",
			source: Matchers{must(MatchRegexp, alert.LabelEvent, re)},
			target: Matchers{must(MatchNotRegexp, alert.LabelEvent, re)},
			equal:  []string{alert.LabelJob},
		})
	}
	for i, r := range in.Rules {
		key := fmt.Sprintf("notify.inhibit.rules[%d]", i)
		c := &inhibitRule{name: fmt.Sprintf("rules[%d]", i), equal: r.Equal}
		if len(r.SourceMatchers) == 0 {
			return nil, fmt.Errorf("%s.source_matchers: must not be empty", key)
		}
		if len(r.TargetMatchers) == 0 {
			return nil, fmt.Errorf("%s.target_matchers: must not be empty", key)
		}
		for j, s := range r.SourceMatchers {
			ms, err := ParseMatchers(s)
			if err != nil {
				return nil, fmt.Errorf("%s.source_matchers[%d]: %v", key, j, err)
			}
			c.source = append(c.source, ms...)
		}
		for j, s := range r.TargetMatchers {
			ms, err := ParseMatchers(s)
			if err != nil {
				return nil, fmt.Errorf("%s.target_matchers[%d]: %v", key, j, err)
			}
			c.target = append(c.target, ms...)
		}
		for j, l := range r.Equal {
			if !alert.ValidLabelName(l) {
				return nil, fmt.Errorf("%s.equal[%d]: %q is not a label name", key, j, l)
			}
		}
		rules = append(rules, c)
	}
	return rules, nil
}

// equalKey joins the values of the equal labels.
func equalKey(ls alert.Labels, names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(ls[n])
		b.WriteByte(0xff)
	}
	return b.String()
}

// inhibitor answers, for one moment, which firing alerts inhibit an alert.
// It indexes the sources of every rule once, so a flush of many groups
// does not compare every alert with every other.
type inhibitor struct {
	rules   []*inhibitRule
	sources []map[string][]alert.Fingerprint // per rule: equal key → source alerts
}

func newInhibitor(rules []*inhibitRule, firing map[alert.Fingerprint]alert.Labels) *inhibitor {
	in := &inhibitor{rules: rules, sources: make([]map[string][]alert.Fingerprint, len(rules))}
	for i, r := range rules {
		idx := map[string][]alert.Fingerprint{}
		for fp, ls := range firing {
			if r.source.Matches(ls) {
				k := equalKey(ls, r.equal)
				idx[k] = append(idx[k], fp)
			}
		}
		in.sources[i] = idx
	}
	return in
}

// inhibitedBy lists the fingerprints of the alerts that inhibit the alert
// with these labels and fingerprint.
func (in *inhibitor) inhibitedBy(fp alert.Fingerprint, ls alert.Labels) []string {
	var out []string
	for i, r := range in.rules {
		if !r.target.Matches(ls) {
			continue
		}
		for _, src := range in.sources[i][equalKey(ls, r.equal)] {
			if src != fp {
				out = append(out, src.String())
			}
		}
	}
	return dedupSorted(out)
}
