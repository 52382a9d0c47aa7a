package cep

import (
	"slices"
	"testing"
	"time"
)

// semCase is one pattern, one input and the matches Flink CEP produces for
// them. Expected matches are given as event keys in time order; unless
// ordered is set they are compared as sets.
type semCase struct {
	name     string
	pattern  func() *Pattern
	input    string
	want     []string
	ordered  bool
	timeouts []string
	flushAt  time.Duration
}

func runSemCases(t *testing.T, cases []semCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T, noNative bool) {
				r := runPattern(t, tc.pattern(), evs(tc.input), runConfig{
					noNative: noNative,
					opts:     Options{EmitTimeouts: tc.timeouts != nil},
					flushAt:  tc.flushAt,
				})
				got, want := r.matches, tc.want
				if !tc.ordered {
					got, want = sorted(got), sorted(want)
				}
				if !slices.Equal(got, want) {
					t.Errorf("matches\n got: %q\nwant: %q", got, want)
				}
				if tc.timeouts != nil && !slices.Equal(sorted(r.timeouts), sorted(tc.timeouts)) {
					t.Errorf("timeouts\n got: %q\nwant: %q", sorted(r.timeouts), sorted(tc.timeouts))
				}
				if r.stats.ConditionErrors != 0 {
					t.Errorf("condition errors: %d", r.stats.ConditionErrors)
				}
			})
		})
	}
}

// TestContiguity covers the three contiguities between stages, the example
// of Flink's documentation: "a b" over "a c b1 b2".
func TestContiguity(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:    "strict next",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).Next("b").Where(is("b")) },
			input:   "a1 c1 b1 b2",
			want:    nil,
		},
		{
			name:    "strict next adjacent",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).Next("b").Where(is("b")) },
			input:   "a1 b1 b2",
			want:    []string{"a1 b1"},
		},
		{
			name:    "relaxed followedBy",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")) },
			input:   "a1 c1 b1 b2",
			want:    []string{"a1 b1"},
		},
		{
			name:    "non-deterministic followedByAny",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")) },
			input:   "a1 c1 b1 b2",
			want:    []string{"a1 b1", "a1 b2"},
		},
		{
			name:    "followedBy without conditions pairs neighbours",
			pattern: func() *Pattern { return Begin("a").FollowedBy("b") },
			input:   "a1 b1 c1 d1 e1",
			want:    []string{"a1 b1", "b1 c1", "c1 d1", "d1 e1"},
		},
		{
			name:    "followedByAny without conditions pairs everything",
			pattern: func() *Pattern { return Begin("a").FollowedByAny("b") },
			input:   "a1 b1 c1 d1",
			want:    []string{"a1 b1", "a1 c1", "a1 d1", "b1 c1", "b1 d1", "c1 d1"},
		},
		{
			name: "start with middle and end",
			pattern: func() *Pattern {
				return Begin("start").Where(is("start")).
					FollowedBy("middle").Where(`metricsName == "middle" && metricsValue > 5`).
					FollowedBy("end").Where(is("end"))
			},
			input: "start1 foobar1 middle1:5 middle2:10 start2 end1",
			want:  []string{"start1 middle2 end1"},
		},
		{
			name: "branching with followedByAny",
			pattern: func() *Pattern {
				return Begin("start").Where(is("start")).
					FollowedByAny("m1").Where(`metricsName == "foo"`).
					FollowedByAny("m2").Where(`metricsName == "next"`).
					FollowedByAny("end").Where(is("end"))
			},
			input: "start1 foo1 foo2 foo3 next1 next2 end1",
			want: []string{
				"start1 foo1 next1 end1", "start1 foo2 next1 end1", "start1 foo3 next1 end1",
				"start1 foo1 next2 end1", "start1 foo2 next2 end1", "start1 foo3 next2 end1",
			},
		},
	})
}

// TestLoopingContiguity is the documentation's "a b+ c" over
// "a b1 d1 b2 d2 b3 c": a followedByAny b+ followedBy c, with the three
// inner contiguities of b+.
//
// For consecutive() the documentation lists only {a b3 c} and explains that
// "d1" discards b1. That holds only if c followed b+ strictly; with the
// relaxed followedBy(c) its other two lists need, Flink's automaton keeps a
// branch that proceeded to c before d1 (and before d2), so {a b1 c} and
// {a b2 c} match as well. We follow the automaton.
func TestLoopingContiguity(t *testing.T) {
	abc := func(inner func(*Pattern) *Pattern) func() *Pattern {
		return func() *Pattern {
			return inner(Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")).OneOrMore()).
				FollowedBy("c").Where(is("c"))
		}
	}
	const in = "a1 b1 d1 b2 d2 b3 c1"
	runSemCases(t, []semCase{
		{
			name:    "consecutive",
			pattern: abc(func(p *Pattern) *Pattern { return p.Consecutive() }),
			input:   in,
			want:    []string{"a1 b1 c1", "a1 b2 c1", "a1 b3 c1"},
		},
		{
			name:    "relaxed",
			pattern: abc(func(p *Pattern) *Pattern { return p }),
			input:   in,
			want:    []string{"a1 b1 c1", "a1 b1 b2 c1", "a1 b1 b2 b3 c1", "a1 b2 c1", "a1 b2 b3 c1", "a1 b3 c1"},
		},
		{
			name:    "allowCombinations",
			pattern: abc(func(p *Pattern) *Pattern { return p.AllowCombinations() }),
			input:   in,
			want: []string{"a1 b1 c1", "a1 b1 b2 c1", "a1 b1 b3 c1", "a1 b1 b2 b3 c1",
				"a1 b2 c1", "a1 b2 b3 c1", "a1 b3 c1"},
		},
		{
			name: "consecutive with strict c",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")).OneOrMore().Consecutive().Next("c").Where(is("c"))
			},
			input: in,
			want:  []string{"a1 b3 c1"},
		},
	})
}

// TestConsecutiveAndCombinations are the documentation's examples for
// consecutive() and allowCombinations(): c, followedBy a+, followedBy b over
// "C D A1 A2 A3 D A4 B".
//
// With allowCombinations the current documentation also lists matches
// without A1 ({C A2 B}, ...). The stage after c is followedBy, whose first
// event cannot skip A1; earlier versions of the page list the eight matches
// that all contain A1, which is what the automaton yields.
func TestConsecutiveAndCombinations(t *testing.T) {
	cab := func(inner func(*Pattern) *Pattern) func() *Pattern {
		return func() *Pattern {
			return inner(Begin("c").Where(is("c")).FollowedBy("a").Where(is("a")).OneOrMore()).
				FollowedBy("b").Where(is("b"))
		}
	}
	const in = "c1 d1 a1 a2 a3 d2 a4 b1"
	runSemCases(t, []semCase{
		{
			name:    "consecutive",
			pattern: cab(func(p *Pattern) *Pattern { return p.Consecutive() }),
			input:   in,
			want:    []string{"c1 a1 b1", "c1 a1 a2 b1", "c1 a1 a2 a3 b1"},
		},
		{
			name:    "relaxed",
			pattern: cab(func(p *Pattern) *Pattern { return p }),
			input:   in,
			want:    []string{"c1 a1 b1", "c1 a1 a2 b1", "c1 a1 a2 a3 b1", "c1 a1 a2 a3 a4 b1"},
		},
		{
			name:    "allowCombinations",
			pattern: cab(func(p *Pattern) *Pattern { return p.AllowCombinations() }),
			input:   in,
			want: []string{"c1 a1 b1", "c1 a1 a2 b1", "c1 a1 a3 b1", "c1 a1 a4 b1",
				"c1 a1 a2 a3 b1", "c1 a1 a2 a4 b1", "c1 a1 a3 a4 b1", "c1 a1 a2 a3 a4 b1"},
		},
	})
}

func TestQuantifiers(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:    "times relaxed",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).Times(2) },
			input:   "a1 b1 a2 a3",
			want:    []string{"a1 a2", "a2 a3"},
		},
		{
			name:    "times consecutive",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).Times(2).Consecutive() },
			input:   "a1 b1 a2 a3",
			want:    []string{"a2 a3"},
		},
		{
			name:    "times allowCombinations",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).Times(2).AllowCombinations() },
			input:   "a1 b1 a2 a3",
			want:    []string{"a1 a2", "a1 a3", "a2 a3"},
		},
		{
			name:    "times range",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).TimesRange(2, 3) },
			input:   "a1 a2 a3",
			want:    []string{"a1 a2", "a1 a2 a3", "a2 a3"},
		},
		{
			name:    "times or more",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).TimesOrMore(2) },
			input:   "a1 a2 x1 a3",
			want:    []string{"a1 a2", "a1 a2 a3", "a2 a3"},
		},
		{
			name:    "one or more",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).OneOrMore() },
			input:   "a1 a2 a3",
			want:    []string{"a1", "a1 a2", "a1 a2 a3", "a2", "a2 a3", "a3"},
		},
		{
			name: "optional singleton in the middle",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).Optional().FollowedBy("c").Where(is("c"))
			},
			input: "a1 b1 c1",
			want:  []string{"a1 b1 c1", "a1 c1"},
		},
		{
			name: "optional singleton skipped",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).Optional().FollowedBy("c").Where(is("c"))
			},
			input: "a1 x1 c1",
			want:  []string{"a1 c1"},
		},
		{
			name: "times range from zero",
			pattern: func() *Pattern {
				return Begin("c").Where(is("c")).FollowedBy("a").Where(is("a")).TimesRange(0, 2).FollowedBy("b").Where(is("b"))
			},
			input: "c1 a1 a2 b1",
			want:  []string{"c1 b1", "c1 a1 b1", "c1 a1 a2 b1"},
		},
		{
			name: "optional one or more at the start",
			pattern: func() *Pattern {
				return Begin("x").Where(is("x")).OneOrMore().Optional().Next("b").Where(is("b"))
			},
			input: "x1 x2 b1 b2",
			want:  []string{"x1 x2 b1", "x2 b1", "b1", "b2"},
		},
		{
			name: "until stops a looping stage",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).OneOrMore().Until(is("b"))
			},
			// the documentation's "(a+ until b)" over "a1 c a2 b a3"
			input: "a1 c1 a2 b1 a3",
			want:  []string{"a1", "a1 a2", "a2", "a3"},
		},
		{
			name: "greedy takes as many as it can",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).OneOrMore().Greedy().
					FollowedBy("c").Where(`metricsName == "b" || metricsName == "c"`)
			},
			input: "a1 b1 b2 c1",
			want:  []string{"a1 b1 b2 c1"},
		},
		{
			name: "non-greedy lets the next stage take early",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).OneOrMore().
					FollowedBy("c").Where(`metricsName == "b" || metricsName == "c"`)
			},
			input: "a1 b1 b2 c1",
			want:  []string{"a1 b1 b2", "a1 b1 b2 c1"},
		},
	})
}

func TestNotPatterns(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:    "notNext at the end",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).NotNext("b").Where(is("b")) },
			input:   "a1 b1 a2 c1",
			want:    []string{"a2"},
		},
		{
			name: "notNext in the middle",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotNext("b").Where(is("b")).FollowedBy("c").Where(is("c"))
			},
			input: "a1 b1 c1 a2 d1 c2",
			want:  []string{"a2 c2"},
		},
		{
			name: "notFollowedBy in the middle",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).FollowedBy("c").Where(is("c"))
			},
			input: "a1 d1 b1 c1 a2 d2 c2",
			want:  []string{"a2 c2"},
		},
		{
			name: "notFollowedBy guards a looping stage",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).OneOrMore().NotFollowedBy("b").Where(is("b")).FollowedBy("c").Where(is("c"))
			},
			input: "a1 b1 a2 c1",
			want:  []string{"a2 c1"},
		},
		{
			name: "notFollowedBy no longer guards after an optional stage accepted",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).
					FollowedByAny("c").Where(is("c")).Optional().FollowedByAny("d").Where(is("d"))
			},
			input: "a1 c1 b1 d1",
			want:  []string{"a1 c1 d1"},
		},
		{
			name: "notFollowedBy guards across a skipped optional stage",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).
					FollowedByAny("c").Where(is("c")).Optional().FollowedByAny("d").Where(is("d"))
			},
			input: "a1 b1 d1",
			want:  nil,
		},
		{
			name: "notFollowedBy at the end completes when the window closes",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).Within(10 * time.Second)
			},
			input:   "a1@0 b1@5 a2@20 c1@25",
			want:    []string{"a2"},
			flushAt: 40 * time.Second,
		},
		{
			name: "a NOT event at the window's end is outside the window",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).NotFollowedBy("b").Where(is("b")).Within(10 * time.Second)
			},
			input:   "a1@0 b1@10",
			want:    []string{"a1"},
			flushAt: 40 * time.Second,
		},
	})
}

// TestWithinAndTimeouts is Flink's timeout handling case: start
// followedByAny middle followedByAny end within 10 s; timed-out partial
// matches are reported at first event + window.
func TestWithinAndTimeouts(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name: "timeouts",
			pattern: func() *Pattern {
				return Begin("start").Where(is("start")).FollowedByAny("middle").Where(is("middle")).
					FollowedByAny("end").Where(is("end")).Within(10 * time.Second)
			},
			input:    "start1@1 start2@2 middle1@3 foobar1@4 end1@11 end2@13",
			want:     []string{"start2 middle1 end1"},
			timeouts: []string{"start1", "start1 middle1", "start2", "start2 middle1"},
		},
		{
			name: "window boundary is exclusive",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("b").Where(is("b")).Within(10 * time.Second)
			},
			input: "a1@0 b1@10 a2@20 b2@29",
			want:  []string{"a2 b2"},
		},
	})
}

// TestSkipStrategies are the documentation's and Flink's after-match skip
// cases.
func TestSkipStrategies(t *testing.T) {
	bPlusC := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern {
			return Begin("b").Where(is("b")).OneOrMore().Consecutive().Next("c").Where(is("c")).Skip(s)
		}
	}
	aBPlus := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern { return Begin("a").Where(is("a")).Next("b").Where(is("b")).OneOrMore().Skip(s) }
	}
	greedyDoc := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern {
			return Begin("abc").Where(`metricsName in ["a", "b", "c"]`).
				FollowedBy("bc").Where(`metricsName in ["b", "c"]`).
				FollowedBy("cs").Where(is("c")).OneOrMore().Greedy().
				FollowedBy("d").Where(is("d")).Skip(s)
		}
	}
	aPlusB := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern {
			return Begin("a").Where(is("a")).OneOrMore().Consecutive().Greedy().Next("b").Where(is("b")).Skip(s)
		}
	}
	abTimes := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern {
			return Begin("start").Where(`metricsName contains "a"`).Times(2).
				Next("end").Where(`metricsName contains "b"`).Times(2).Skip(s)
		}
	}
	aNextBPlus := func(s SkipStrategy) func() *Pattern {
		return func() *Pattern {
			return Begin("a").Where(is("a")).Next("b").Where(is("b")).OneOrMore().Consecutive().Skip(s)
		}
	}
	runSemCases(t, []semCase{
		{name: "b+ c noSkip", pattern: bPlusC(NoSkip()), input: "b1 b2 b3 c1",
			want: []string{"b1 b2 b3 c1", "b2 b3 c1", "b3 c1"}},
		{name: "b+ c skipToNext", pattern: bPlusC(SkipToNext()), input: "b1 b2 b3 c1",
			want: []string{"b1 b2 b3 c1", "b2 b3 c1", "b3 c1"}},
		{name: "b+ c skipPastLastEvent", pattern: bPlusC(SkipPastLastEvent()), input: "b1 b2 b3 c1",
			want: []string{"b1 b2 b3 c1"}},
		{name: "b+ c skipToFirst(b)", pattern: bPlusC(SkipToFirst("b")), input: "b1 b2 b3 c1",
			want: []string{"b1 b2 b3 c1", "b2 b3 c1", "b3 c1"}},
		{name: "b+ c skipToLast(b)", pattern: bPlusC(SkipToLast("b")), input: "b1 b2 b3 c1",
			want: []string{"b1 b2 b3 c1", "b3 c1"}},

		{name: "a b+ noSkip", pattern: aBPlus(NoSkip()), input: "a1 b1 b2 b3",
			want: []string{"a1 b1", "a1 b1 b2", "a1 b1 b2 b3"}},
		{name: "a b+ skipToNext", pattern: aBPlus(SkipToNext()), input: "a1 b1 b2 b3",
			want: []string{"a1 b1"}},

		{name: "greedy doc noSkip", pattern: greedyDoc(NoSkip()), input: "a1 b1 c1 c2 c3 d1",
			want: []string{"a1 b1 c1 c2 c3 d1", "b1 c1 c2 c3 d1", "c1 c2 c3 d1"}},
		{name: "greedy doc skipToFirst", pattern: greedyDoc(SkipToFirst("cs")), input: "a1 b1 c1 c2 c3 d1",
			want: []string{"a1 b1 c1 c2 c3 d1", "c1 c2 c3 d1"}},

		{name: "a+ b noSkip", pattern: aPlusB(NoSkip()), input: "a1 a2 a3 b1",
			want: []string{"a1 a2 a3 b1", "a2 a3 b1", "a3 b1"}},
		{name: "a+ b skipPastLastEvent", pattern: aPlusB(SkipPastLastEvent()), input: "a1 a2 a3 b1",
			want: []string{"a1 a2 a3 b1"}},
		{name: "a+ b skipToLast(a)", pattern: aPlusB(SkipToLast("a")), input: "a1 a2 a3 b1",
			want: []string{"a1 a2 a3 b1", "a3 b1"}},
		{name: "a+ b skipToFirst(a)", pattern: aPlusB(SkipToFirst("a")), input: "a1 a2 a3 b1",
			want: []string{"a1 a2 a3 b1", "a2 a3 b1", "a3 b1"}},

		{name: "times noSkip", pattern: func() *Pattern { return Begin("a").Where(is("a")).Times(3) },
			input: "a1 a2 a3 a4 a5 a6", want: []string{"a1 a2 a3", "a2 a3 a4", "a3 a4 a5", "a4 a5 a6"}},
		{name: "times skipPastLastEvent", pattern: func() *Pattern { return Begin("a").Where(is("a")).Times(3).Skip(SkipPastLastEvent()) },
			input: "a1 a2 a3 a4 a5 a6", want: []string{"a1 a2 a3", "a4 a5 a6"}},
		{name: "times skipToFirst(end)", pattern: abTimes(SkipToFirst("end")), input: "ab1 ab2 ab3 ab4 ab5 ab6",
			want: []string{"ab1 ab2 ab3 ab4", "ab3 ab4 ab5 ab6"}},
		{name: "times skipToLast(end)", pattern: abTimes(SkipToLast("end")), input: "ab1 ab2 ab3 ab4 ab5 ab6 ab7",
			want: []string{"ab1 ab2 ab3 ab4", "ab4 ab5 ab6 ab7"}},

		{name: "followedByAny noSkip",
			pattern: func() *Pattern { return Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")) },
			input:   "a1 b1 a2 b2", want: []string{"a1 b1", "a1 b2", "a2 b2"}},
		{name: "followedByAny skipToNext",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")).Skip(SkipToNext())
			},
			input: "a1 b1 a2 b2", want: []string{"a1 b1", "a2 b2"}},
		{name: "skipPastLastEvent with followedByAny",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedByAny("b").Where(is("b")).
					FollowedByAny("c").Where(is("c")).FollowedBy("d").Where(is("d")).Skip(SkipPastLastEvent())
			},
			input: "a1 a2 b1 b2 c1 c2 d1@6 d2@6", want: []string{"a1 b1 c1 d1"}},
		{name: "skipPastLastEvent strict",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).Next("b").Where(is("b")).Skip(SkipPastLastEvent())
			},
			input: "a1 c1 a2 b1", want: []string{"a2 b1"}},
		{name: "skipToFirst with optional start",
			pattern: func() *Pattern {
				return Begin("x").Where(`metricsName contains "x"`).OneOrMore().Optional().
					Next("b").Where(`metricsName contains "b"`).Next("c").Where(`metricsName contains "c"`).Skip(SkipToFirst("b"))
			},
			input: "ab1 c1 ab2 c2", want: []string{"ab1 c1", "ab2 c2"}},
		{name: "skipToFirst one or more", pattern: aNextBPlus(SkipToFirst("b")), input: "a1 b1 a2 b2 b3 a3 b4",
			want: []string{"a1 b1", "a2 b2", "a3 b4"}},
		{name: "skipToLast one or more", pattern: aNextBPlus(SkipToLast("b")), input: "a1 b1 a2 b2 b3 a3 b4",
			want: []string{"a1 b1", "a2 b2", "a3 b4"}},
		{name: "skipToFirst missing stage does not skip",
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).Next("b").Where(is("b")).OneOrMore().Optional().Consecutive().
					Next("c").Where(is("c")).Skip(SkipToFirst("b"))
			},
			input: "a1 c1", want: []string{"a1 c1"}},
		{name: "match waits for an earlier partial match",
			// a1's partial match completes after a2's; a2's waits and is
			// then kept, since skipToFirst(c) prunes only starts before c1.
			pattern: func() *Pattern {
				return Begin("a").Where(is("a")).FollowedBy("c").Where(is("c")).
					FollowedBy("b").Where(`metricsName == "b" && metricsValue == a.metricsValue`).Skip(SkipToFirst("c"))
			},
			input: "a1:0 c1 a2:1 c2 b1:1 b2:0", want: []string{"a1 c1 b2", "a2 c2 b1"}, ordered: true},
	})
}

// TestHeldMatchReleasedByTimeout: with a skip strategy a completed match
// waits while an earlier partial match lives; when that one times out the
// match is emitted.
func TestHeldMatchReleasedByTimeout(t *testing.T) {
	p := func() *Pattern {
		return Begin("b").Where(is("b")).OneOrMore().Next("c").Where(is("c")).
			Within(time.Minute).Skip(SkipToFirst("b"))
	}
	r := runPattern(t, p(), evs("b1 b2 b3 c1"), runConfig{})
	if want := []string{"b1 b2 b3 c1"}; !slices.Equal(r.matches, want) {
		t.Fatalf("before the window closes: got %q, want %q", r.matches, want)
	}
	r = runPattern(t, p(), evs("b1 b2 b3 c1"), runConfig{flushAt: 2 * time.Minute})
	if want := []string{"b1 b2 b3 c1", "b2 b3 c1", "b3 c1"}; !slices.Equal(r.matches, want) {
		t.Fatalf("after the window closed: got %q, want %q", r.matches, want)
	}
}
