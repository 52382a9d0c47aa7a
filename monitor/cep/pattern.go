package cep

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ErrMalformedPattern is wrapped by every error that rejects a pattern: a
// quantifier or contiguity that does not apply, a pattern Flink CEP would
// reject, or a condition that does not compile.
var ErrMalformedPattern = errors.New("cep: malformed pattern")

// Contiguity says which events may lie between two events of a match.
type Contiguity int8

const (
	// Relaxed contiguity skips non-matching events up to the next matching
	// one (followedBy; the default inside looping patterns).
	Relaxed Contiguity = iota
	// Strict contiguity accepts only the very next event (next; consecutive).
	Strict
	// NonDeterministicRelaxed also skips matching events, branching for every
	// alternative (followedByAny; allowCombinations).
	NonDeterministicRelaxed
)

func (c Contiguity) String() string {
	switch c {
	case Strict:
		return "strict"
	case NonDeterministicRelaxed:
		return "non-deterministic relaxed"
	}
	return "relaxed"
}

type stageKind int8

const (
	stageNormal stageKind = iota
	stageNotNext
	stageNotFollowedBy
)

type quantKind int8

const (
	quantSingle  quantKind = iota
	quantTimes             // times(n), times(from, to)
	quantLooping           // oneOrMore, timesOrMore(n)
)

type condOp int8

const (
	condWhere condOp = iota
	condOr
)

type condSpec struct {
	op  condOp
	src string
}

// stage is one named pattern of a pattern sequence.
type stage struct {
	name       string
	kind       stageKind
	contiguity Contiguity // to the previous stage
	inner      Contiguity // between the events of a times or looping stage
	innerSet   bool
	quant      quantKind
	from, to   int // occurrences of a times or looping stage (to unused when looping)
	optional   bool
	greedy     bool
	conds      []condSpec
	until      string
	hasUntil   bool
}

func (s *stage) isNot() bool { return s.kind != stageNormal }

// Pattern is a pattern sequence under construction: Begin names the first
// stage, Next, FollowedBy, FollowedByAny, NotNext and NotFollowedBy append
// stages, and every other method applies to the last stage appended, as in
// Flink's Pattern API. The first misuse is recorded and returned by Compile;
// later calls are then ignored.
type Pattern struct {
	stages []*stage
	within time.Duration
	skip   SkipStrategy
	err    error
}

// Begin starts a pattern sequence with a stage named name.
func Begin(name string) *Pattern {
	p := &Pattern{}
	p.stages = append(p.stages, &stage{name: name, kind: stageNormal, contiguity: Relaxed, from: 1, to: 1})
	return p
}

func (p *Pattern) last() *stage { return p.stages[len(p.stages)-1] }

func (p *Pattern) fail(method, format string, args ...any) *Pattern {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %q.%s: %s", ErrMalformedPattern, p.last().name, method, fmt.Sprintf(format, args...))
	}
	return p
}

func (p *Pattern) appendStage(method, name string, kind stageKind, c Contiguity) *Pattern {
	if p.err != nil {
		return p
	}
	if kind != stageNormal && p.last().optional {
		return p.fail(method, "a NOT pattern cannot follow an optional pattern")
	}
	p.stages = append(p.stages, &stage{name: name, kind: kind, contiguity: c, from: 1, to: 1})
	return p
}

// Next appends a stage whose event must directly follow the previous
// stage's last event (strict contiguity).
func (p *Pattern) Next(name string) *Pattern {
	return p.appendStage("Next", name, stageNormal, Strict)
}

// FollowedBy appends a stage matched by the first suitable event after the
// previous stage's last event; other events in between are skipped (relaxed
// contiguity).
func (p *Pattern) FollowedBy(name string) *Pattern {
	return p.appendStage("FollowedBy", name, stageNormal, Relaxed)
}

// FollowedByAny appends a stage matched by every suitable event after the
// previous stage's last event, each in its own match (non-deterministic
// relaxed contiguity).
func (p *Pattern) FollowedByAny(name string) *Pattern {
	return p.appendStage("FollowedByAny", name, stageNormal, NonDeterministicRelaxed)
}

// NotNext appends a negative stage: a partial match is discarded if the
// event directly after the previous stage's last event meets the stage's
// condition.
func (p *Pattern) NotNext(name string) *Pattern {
	return p.appendStage("NotNext", name, stageNotNext, Strict)
}

// NotFollowedBy appends a negative stage: a partial match is discarded if
// any event between the previous stage and the next one meets the stage's
// condition. A pattern ending in NotFollowedBy needs Within: the match is
// emitted when the window closes without such an event.
func (p *Pattern) NotFollowedBy(name string) *Pattern {
	return p.appendStage("NotFollowedBy", name, stageNotFollowedBy, Relaxed)
}

// Where adds a condition to the last stage, ANDed with the conditions before
// it. The condition is an expression; see the package documentation for its
// environment.
func (p *Pattern) Where(expr string) *Pattern {
	if p.err == nil {
		p.last().conds = append(p.last().conds, condSpec{op: condWhere, src: expr})
	}
	return p
}

// Or adds a condition to the last stage, ORed with the conditions before it.
func (p *Pattern) Or(expr string) *Pattern {
	if p.err == nil {
		p.last().conds = append(p.last().conds, condSpec{op: condOr, src: expr})
	}
	return p
}

// Until sets the stop condition of a looping stage (OneOrMore,
// TimesOrMore): once an event meets it, the stage accepts no more events
// and the event itself is not accepted.
func (p *Pattern) Until(expr string) *Pattern {
	if p.err != nil {
		return p
	}
	s := p.last()
	switch {
	case s.hasUntil:
		return p.fail("Until", "only one until condition can be applied")
	case s.quant != quantLooping:
		return p.fail("Until", "the until condition applies only to looping patterns (OneOrMore, TimesOrMore)")
	}
	s.until, s.hasUntil = expr, true
	return p
}

func (p *Pattern) quantifier(method string) (*stage, bool) {
	if p.err != nil {
		return nil, false
	}
	s := p.last()
	if s.isNot() {
		p.fail(method, "option not applicable to a NOT pattern")
		return nil, false
	}
	if s.quant != quantSingle {
		p.fail(method, "a quantifier was already applied to this pattern")
		return nil, false
	}
	return s, true
}

// Times makes the last stage expect exactly n events.
func (p *Pattern) Times(n int) *Pattern {
	s, ok := p.quantifier("Times")
	if !ok {
		return p
	}
	if n <= 0 {
		return p.fail("Times", "times must be positive, got %d", n)
	}
	s.quant, s.from, s.to = quantTimes, n, n
	return p
}

// TimesRange makes the last stage expect from to to events; from 0 makes it
// optional as well.
func (p *Pattern) TimesRange(from, to int) *Pattern {
	s, ok := p.quantifier("TimesRange")
	if !ok {
		return p
	}
	switch {
	case from < 0:
		return p.fail("TimesRange", "from must not be negative, got %d", from)
	case to < from:
		return p.fail("TimesRange", "to (%d) must not be less than from (%d)", to, from)
	case to == 0:
		return p.fail("TimesRange", "to must be positive")
	}
	if from == 0 {
		if s.optional {
			return p.fail("TimesRange", "optional already applied")
		}
		s.optional = true
		from = 1
	}
	s.quant, s.from, s.to = quantTimes, from, to
	return p
}

// TimesOrMore makes the last stage a looping one expecting at least n events.
func (p *Pattern) TimesOrMore(n int) *Pattern {
	s, ok := p.quantifier("TimesOrMore")
	if !ok {
		return p
	}
	if n <= 0 {
		return p.fail("TimesOrMore", "times must be positive, got %d", n)
	}
	s.quant, s.from, s.to = quantLooping, n, n
	return p
}

// OneOrMore makes the last stage a looping one expecting at least one event.
// Give the sequence a Within, or the stage an Until, so that its partial
// matches end.
func (p *Pattern) OneOrMore() *Pattern {
	s, ok := p.quantifier("OneOrMore")
	if !ok {
		return p
	}
	s.quant, s.from, s.to = quantLooping, 1, 1
	return p
}

// Optional lets the last stage match no event at all.
func (p *Pattern) Optional() *Pattern {
	if p.err != nil {
		return p
	}
	s := p.last()
	switch {
	case s.isNot():
		return p.fail("Optional", "a NOT pattern cannot be optional")
	case s.optional:
		return p.fail("Optional", "optional already applied")
	case len(p.stages) > 1 && p.stages[len(p.stages)-2].greedy:
		return p.fail("Optional", "an optional pattern cannot follow a greedy one")
	}
	s.optional = true
	return p
}

// Greedy makes a times or looping stage take as many events as it can
// before the next stage may start.
func (p *Pattern) Greedy() *Pattern {
	if p.err != nil {
		return p
	}
	s := p.last()
	switch {
	case s.isNot():
		return p.fail("Greedy", "option not applicable to a NOT pattern")
	case s.quant == quantSingle:
		return p.fail("Greedy", "option not applicable to a singleton pattern")
	case s.innerSet && s.inner == NonDeterministicRelaxed:
		return p.fail("Greedy", "option not applicable together with AllowCombinations")
	}
	s.greedy = true
	return p
}

// Consecutive imposes strict contiguity between the events of a times or
// looping stage.
func (p *Pattern) Consecutive() *Pattern {
	return p.innerContiguity("Consecutive", Strict)
}

// AllowCombinations imposes non-deterministic relaxed contiguity between the
// events of a times or looping stage.
func (p *Pattern) AllowCombinations() *Pattern {
	return p.innerContiguity("AllowCombinations", NonDeterministicRelaxed)
}

func (p *Pattern) innerContiguity(method string, c Contiguity) *Pattern {
	if p.err != nil {
		return p
	}
	s := p.last()
	switch {
	case s.quant == quantSingle:
		return p.fail(method, "applies only to times and looping patterns")
	case s.innerSet && s.inner == c:
		return p.fail(method, "already applied")
	case s.innerSet:
		return p.fail(method, "apply either Consecutive or AllowCombinations, not both")
	case c == NonDeterministicRelaxed && s.greedy:
		return p.fail(method, "not applicable to a greedy pattern")
	}
	s.inner, s.innerSet = c, true
	return p
}

// Within bounds the time between the first and the last event of a match:
// a partial match whose first event is d or more older than the current
// event time is discarded (and reported when timeouts are wanted). Applied
// more than once, the smallest duration holds.
func (p *Pattern) Within(d time.Duration) *Pattern {
	if p.err != nil {
		return p
	}
	if d <= 0 {
		return p.fail("Within", "the window must be positive, got %v", d)
	}
	if p.within == 0 || d < p.within {
		p.within = d
	}
	return p
}

// Skip sets the after-match skip strategy of the sequence (NoSkip by
// default).
func (p *Pattern) Skip(s SkipStrategy) *Pattern {
	if p.err == nil {
		p.skip = s
	}
	return p
}

type skipKind int8

const (
	skipNone skipKind = iota
	skipToNext
	skipPastLast
	skipToFirst
	skipToLast
)

// SkipStrategy decides which partial matches are discarded after a match
// is emitted. The zero value is NoSkip.
type SkipStrategy struct {
	kind skipKind
	name string
}

// NoSkip emits every possible match.
func NoSkip() SkipStrategy { return SkipStrategy{} }

// SkipToNext discards the partial matches that started with the same event
// as the emitted match.
func SkipToNext() SkipStrategy { return SkipStrategy{kind: skipToNext} }

// SkipPastLastEvent discards the partial matches that started before the
// emitted match's last event.
func SkipPastLastEvent() SkipStrategy { return SkipStrategy{kind: skipPastLast} }

// SkipToFirst discards the partial matches that started before the first
// event of the named stage in the emitted match. If the match holds no event
// of that stage nothing is discarded.
func SkipToFirst(name string) SkipStrategy { return SkipStrategy{kind: skipToFirst, name: name} }

// SkipToLast discards the partial matches that started before the last
// event of the named stage in the emitted match. If the match holds no event
// of that stage nothing is discarded.
func SkipToLast(name string) SkipStrategy { return SkipStrategy{kind: skipToLast, name: name} }

func (s SkipStrategy) String() string {
	switch s.kind {
	case skipToNext:
		return "skipToNext"
	case skipPastLast:
		return "skipPastLastEvent"
	case skipToFirst:
		return fmt.Sprintf("skipToFirst(%s)", s.name)
	case skipToLast:
		return fmt.Sprintf("skipToLast(%s)", s.name)
	}
	return "noSkip"
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedNames cannot name a stage: they are expression keywords or
// builtins, and a stage name is an identifier in conditions.
var reservedNames = map[string]bool{
	"true": true, "false": true, "nil": true, "and": true, "or": true, "not": true,
	"in": true, "matches": true, "contains": true, "startsWith": true, "endsWith": true,
	"let": true, "if": true, "else": true,
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true, "count": true,
	"sum": true, "groupBy": true, "sortBy": true, "reduce": true, "len": true, "type": true,
	"abs": true, "ceil": true, "floor": true, "round": true, "int": true, "float": true,
	"string": true, "trim": true, "upper": true, "lower": true, "split": true, "max": true,
	"min": true, "mean": true, "median": true, "now": true, "duration": true, "date": true,
	"first": true, "last": true, "get": true, "take": true, "keys": true, "values": true,
	"reverse": true, "uniq": true, "concat": true, "flatten": true, "sort": true,
}

// validate applies the checks Flink's compiler makes on a whole sequence.
func (p *Pattern) validate() error {
	if p.err != nil {
		return p.err
	}
	seen := make(map[string]bool, len(p.stages))
	for i, s := range p.stages {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: %q: %s", ErrMalformedPattern, s.name, fmt.Sprintf(format, args...))
		}
		switch {
		case !identRE.MatchString(s.name):
			return bad("a pattern name must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
		case reservedNames[s.name]:
			return bad("a pattern name cannot be an expression keyword or builtin")
		case lookupField(s.name) != fieldNone:
			return bad("a pattern name cannot be an event field name")
		case seen[s.name]:
			return bad("duplicate pattern name; names must be unique")
		}
		seen[s.name] = true
		if s.isNot() && len(s.conds) == 0 {
			return bad("a NOT pattern needs a condition")
		}
		if s.isNot() && i > 0 && p.stages[i-1].optional {
			return bad("a NOT pattern cannot follow an optional pattern")
		}
		if s.optional && i > 0 && p.stages[i-1].greedy {
			return bad("an optional pattern cannot follow a greedy one")
		}
		if s.greedy && i == len(p.stages)-1 {
			return bad("a greedy pattern cannot end the sequence: it would never complete a match")
		}
	}
	last := p.last()
	if last.kind == stageNotFollowedBy && p.within == 0 {
		return fmt.Errorf("%w: %q: NotFollowedBy cannot end a pattern without Within", ErrMalformedPattern, last.name)
	}
	if p.skip.kind == skipToFirst || p.skip.kind == skipToLast {
		if !seen[p.skip.name] {
			return fmt.Errorf("%w: skip strategy %v names no pattern of the sequence", ErrMalformedPattern, p.skip)
		}
	}
	return nil
}
