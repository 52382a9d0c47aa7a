package cep

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPatternValidation: patterns Flink CEP rejects, and misuses of the
// builder, fail to compile with an error naming the stage and the reason.
func TestPatternValidation(t *testing.T) {
	cases := []struct {
		name    string
		pattern func() *Pattern
		want    string
	}{
		{"notFollowedBy at the end without within",
			func() *Pattern { return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")) },
			"NotFollowedBy cannot end a pattern without Within"},
		{"NOT after an optional stage",
			func() *Pattern { return Begin("a").Optional().NotNext("b").Where(is("b")) },
			"cannot follow an optional pattern"},
		{"NOT after an optional looping stage",
			func() *Pattern {
				return Begin("a").OneOrMore().Optional().NotFollowedBy("b").Where(is("b")).FollowedBy("c")
			},
			"cannot follow an optional pattern"},
		{"optional NOT",
			func() *Pattern { return Begin("a").NotNext("b").Where(is("b")).Optional() },
			"a NOT pattern cannot be optional"},
		{"quantifier on NOT",
			func() *Pattern { return Begin("a").NotNext("b").Where(is("b")).OneOrMore() },
			"not applicable to a NOT pattern"},
		{"greedy NOT",
			func() *Pattern { return Begin("a").NotFollowedBy("b").Where(is("b")).Greedy() },
			"not applicable to a NOT pattern"},
		{"NOT without condition",
			func() *Pattern { return Begin("a").NotNext("b").FollowedBy("c") },
			"a NOT pattern needs a condition"},
		{"two quantifiers",
			func() *Pattern { return Begin("a").Times(2).OneOrMore() },
			"quantifier was already applied"},
		{"times zero", func() *Pattern { return Begin("a").Times(0) }, "times must be positive"},
		{"times range inverted", func() *Pattern { return Begin("a").TimesRange(3, 2) }, "must not be less than"},
		{"times range to zero", func() *Pattern { return Begin("a").TimesRange(0, 0) }, "to must be positive"},
		{"times range negative", func() *Pattern { return Begin("a").TimesRange(-1, 2) }, "must not be negative"},
		{"times or more zero", func() *Pattern { return Begin("a").TimesOrMore(0) }, "times must be positive"},
		{"optional twice", func() *Pattern { return Begin("a").Optional().Optional() }, "optional already applied"},
		{"greedy singleton", func() *Pattern { return Begin("a").Greedy() }, "singleton"},
		{"greedy at the end",
			func() *Pattern { return Begin("a").FollowedBy("b").OneOrMore().Greedy() },
			"greedy pattern cannot end the sequence"},
		{"optional after greedy",
			func() *Pattern { return Begin("a").OneOrMore().Greedy().FollowedBy("b").Optional() },
			"cannot follow a greedy one"},
		{"greedy with combinations",
			func() *Pattern { return Begin("a").OneOrMore().AllowCombinations().Greedy() },
			"AllowCombinations"},
		{"consecutive on singleton", func() *Pattern { return Begin("a").Consecutive() }, "applies only to times and looping"},
		{"combinations on singleton", func() *Pattern { return Begin("a").AllowCombinations() }, "applies only to times and looping"},
		{"consecutive and combinations",
			func() *Pattern { return Begin("a").OneOrMore().Consecutive().AllowCombinations() },
			"either Consecutive or AllowCombinations"},
		{"consecutive twice", func() *Pattern { return Begin("a").Times(2).Consecutive().Consecutive() }, "already applied"},
		{"until on singleton", func() *Pattern { return Begin("a").Until(is("b")) }, "only to looping patterns"},
		{"until on times", func() *Pattern { return Begin("a").Times(2).Until(is("b")) }, "only to looping patterns"},
		{"until twice", func() *Pattern { return Begin("a").OneOrMore().Until(is("b")).Until(is("c")) }, "only one until"},
		{"within zero", func() *Pattern { return Begin("a").Within(0) }, "window must be positive"},
		{"duplicate names", func() *Pattern { return Begin("a").FollowedBy("b").FollowedBy("a") }, "duplicate pattern name"},
		{"name not an identifier", func() *Pattern { return Begin("a:b") }, "must be an identifier"},
		{"name is a field", func() *Pattern { return Begin("jobID") }, "event field name"},
		{"name is a builtin", func() *Pattern { return Begin("len") }, "keyword or builtin"},
		{"skip to unknown stage", func() *Pattern { return Begin("a").FollowedBy("b").Skip(SkipToFirst("c")) }, "names no pattern"},
		{"bad condition syntax", func() *Pattern { return Begin("a").Where("metricsValue >") }, `"a".Where("metricsValue >")`},
		{"condition not boolean", func() *Pattern { return Begin("a").Where("metricsValue + 1") }, "Where"},
		{"condition type error", func() *Pattern { return Begin("a").Where(`metricsValue > "x"`) }, "Where"},
		{"bad until", func() *Pattern { return Begin("a").OneOrMore().Until("((") }, "Until"},
		{"condition too long", func() *Pattern { return Begin("a").Where(strings.Repeat("1 == 1 && ", 1000) + "true") }, "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.pattern().Compile()
			if err == nil {
				t.Fatalf("compiled; want an error containing %q", tc.want)
			}
			if !errors.Is(err, ErrMalformedPattern) {
				t.Errorf("error %v does not wrap ErrMalformedPattern", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestPatternValid: patterns Flink accepts compile.
func TestPatternValid(t *testing.T) {
	for _, p := range []*Pattern{
		Begin("a"),
		Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).Within(time.Minute),
		Begin("a").NotNext("b").Where(is("b")),
		Begin("a").OneOrMore().Greedy().NotFollowedBy("b").Where(is("b")).Within(time.Minute),
		Begin("a").TimesRange(0, 3).FollowedBy("b"),
		Begin("a").Or(is("a")).Where("metricsValue > 1").Or("metricsValue < -1"),
		Begin("a").OneOrMore().Optional().Greedy().Consecutive().FollowedBy("b"),
		Begin("a").Within(time.Minute).FollowedBy("b").Within(time.Second).Skip(SkipToLast("a")),
	} {
		if _, err := p.Compile(); err != nil {
			t.Errorf("%v", err)
		}
	}
	n := Begin("a").Within(time.Minute).FollowedBy("b").Within(time.Second).MustCompile()
	if n.Within() != time.Second {
		t.Errorf("Within = %v, want the smallest", n.Within())
	}
}
