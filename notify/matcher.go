package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// ErrBadMatcher is the error of a matcher that does not parse.
var ErrBadMatcher = errors.New("notify: bad matcher")

// MatchType is how a matcher compares a label's value.
type MatchType int

// The match types, written =, !=, =~ and !~.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

func (t MatchType) String() string {
	return [...]string{"=", "!=", "=~", "!~"}[t]
}

// maxMatcherValue bounds a matcher's value (and so its regular expression).
const maxMatcherValue = 1024

// Matcher selects alerts by one label, as in Alertmanager: job="x",
// level!="INFO", alertname=~"TASK_MANAGER_.*", tm!~"tm-[0-3]". A missing
// label has the empty value. Regular expressions are anchored at both ends.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

// NewMatcher builds a matcher, compiling its regular expression.
func NewMatcher(t MatchType, name, value string) (*Matcher, error) {
	if !alert.ValidLabelName(name) {
		return nil, fmt.Errorf("%w: %q is not a label name", ErrBadMatcher, name)
	}
	if len(value) > maxMatcherValue {
		return nil, fmt.Errorf("%w: the value of %s is longer than %d bytes", ErrBadMatcher, name, maxMatcherValue)
	}
	if !utf8.ValidString(value) {
		return nil, fmt.Errorf("%w: the value of %s is not UTF-8", ErrBadMatcher, name)
	}
	m := &Matcher{Name: name, Type: t, Value: value}
	if t == MatchRegexp || t == MatchNotRegexp {
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadMatcher, name, err)
		}
		m.re = re
	}
	return m, nil
}

// Matches reports whether the labels satisfy the matcher.
func (m *Matcher) Matches(ls alert.Labels) bool {
	return m.MatchesValue(ls[m.Name])
}

// MatchesValue applies the matcher to one value.
func (m *Matcher) MatchesValue(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// String writes the matcher in the form ParseMatcher reads.
func (m *Matcher) String() string {
	return m.Name + m.Type.String() + strconv.Quote(m.Value)
}

// Matchers all have to match.
type Matchers []*Matcher

// Matches reports whether every matcher matches.
func (ms Matchers) Matches(ls alert.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls) {
			return false
		}
	}
	return true
}

func (ms Matchers) String() string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ParseMatcher reads one matcher: name, operator, value; the value is a
// double-quoted string with Go escapes, or a bare word without spaces,
// commas, quotes or braces.
func ParseMatcher(s string) (*Matcher, error) {
	ms, err := ParseMatchers(s)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		return nil, fmt.Errorf("%w: %q: want exactly one matcher", ErrBadMatcher, s)
	}
	return ms[0], nil
}

// ParseMatchers reads a list of matchers separated by commas, optionally in
// braces: {job="a", level=~"WARN|INFO"}.
func ParseMatchers(s string) (Matchers, error) {
	p := matcherParser{s: strings.TrimSpace(s)}
	if strings.HasPrefix(p.s, "{") {
		if !strings.HasSuffix(p.s, "}") {
			return nil, fmt.Errorf("%w: %q: missing closing brace", ErrBadMatcher, s)
		}
		p.s = p.s[1 : len(p.s)-1]
	}
	var out Matchers
	for {
		p.space()
		if p.i == len(p.s) {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadMatcher, s, err)
		}
		out = append(out, m)
		p.space()
		if p.i == len(p.s) {
			break
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("%w: %q: expected a comma at offset %d", ErrBadMatcher, s, p.i)
		}
		p.i++
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q: no matchers", ErrBadMatcher, s)
	}
	return out, nil
}

type matcherParser struct {
	s string
	i int
}

func (p *matcherParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *matcherParser) matcher() (*Matcher, error) {
	start := p.i
	for p.i < len(p.s) && isNameByte(p.s[p.i], p.i == start) {
		p.i++
	}
	name := p.s[start:p.i]
	if name == "" {
		return nil, fmt.Errorf("expected a label name at offset %d", start)
	}
	p.space()
	var t MatchType
	switch rest := p.s[p.i:]; {
	case strings.HasPrefix(rest, "=~"):
		t, p.i = MatchRegexp, p.i+2
	case strings.HasPrefix(rest, "!~"):
		t, p.i = MatchNotRegexp, p.i+2
	case strings.HasPrefix(rest, "!="):
		t, p.i = MatchNotEqual, p.i+2
	case strings.HasPrefix(rest, "="):
		t, p.i = MatchEqual, p.i+1
	default:
		return nil, fmt.Errorf("expected =, !=, =~ or !~ after %s", name)
	}
	p.space()
	value, err := p.value()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return NewMatcher(t, name, value)
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func (p *matcherParser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		// Find the closing quote, skipping escaped characters.
		j := p.i + 1
		for j < len(p.s) && p.s[j] != '"' {
			if p.s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(p.s) {
			return "", errors.New("unterminated quoted value")
		}
		v, err := strconv.Unquote(p.s[p.i : j+1])
		if err != nil {
			return "", fmt.Errorf("bad quoted value: %v", err)
		}
		p.i = j + 1
		return v, nil
	}
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(" \t\r\n,{}\"", rune(p.s[p.i])) {
		p.i++
	}
	return p.s[start:p.i], nil
}

// matcherJSON is a matcher in Alertmanager's API v2 form.
type matcherJSON struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

// MarshalJSON writes Alertmanager's form: name, value, isRegex, isEqual.
func (m *Matcher) MarshalJSON() ([]byte, error) {
	eq := m.Type == MatchEqual || m.Type == MatchRegexp
	return json.Marshal(matcherJSON{Name: m.Name, Value: m.Value, IsRegex: m.Type == MatchRegexp || m.Type == MatchNotRegexp, IsEqual: &eq})
}

// UnmarshalJSON reads Alertmanager's form or a string like "job=\"a\"".
func (m *Matcher) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		p, err := ParseMatcher(s)
		if err != nil {
			return err
		}
		*m = *p
		return nil
	}
	var j matcherJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	eq := j.IsEqual == nil || *j.IsEqual
	t := MatchEqual
	switch {
	case j.IsRegex && eq:
		t = MatchRegexp
	case j.IsRegex:
		t = MatchNotRegexp
	case !eq:
		t = MatchNotEqual
	}
	p, err := NewMatcher(t, j.Name, j.Value)
	if err != nil {
		return err
	}
	*m = *p
	return nil
}
