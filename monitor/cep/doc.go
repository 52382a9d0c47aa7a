// Package cep is the complex-event-processing library the monitor's rules
// run on: a pattern API and an NFA with the semantics of Flink CEP, over a
// keyed stream of metric events in event time.
//
// It owns pattern definition and validation, condition compilation, the
// per-key automaton state with its bounds, event-time ordering with a
// bounded reorder buffer, and the emission of matches and timeouts. It does
// not collect metrics, load rule files or raise alerts; package monitor
// does, feeding events in and acting on the matches.
//
// # Patterns
//
// A pattern sequence is built the way Flink's Pattern API builds one:
//
//	p := cep.Begin("e1").Where(`metricsName == "heap_used_ratio" && metricsValue > 0.9`).
//		Times(10).
//		FollowedBy("e2").Where(`metricsName == "heap_used_ratio" && metricsValue > e1.metricsValue`).
//		Within(5 * time.Minute).
//		Skip(cep.SkipPastLastEvent())
//	nfa, err := p.Compile()
//
// Begin names the first stage; Next (strict contiguity), FollowedBy
// (relaxed), FollowedByAny (non-deterministic relaxed), NotNext and
// NotFollowedBy append stages; Where (AND), Or and Until add conditions to
// the last stage; Times(n), TimesRange(from, to), TimesOrMore(n) and
// OneOrMore quantify it, Optional and Greedy qualify it, and Consecutive
// and AllowCombinations set the contiguity between the events of a times or
// looping stage (relaxed by default). Within bounds the time from a match's
// first event to its last; Skip sets the after-match skip strategy (NoSkip,
// SkipToNext, SkipPastLastEvent, SkipToFirst(name), SkipToLast(name)).
// Group patterns (begin(Pattern), times on a sub-sequence) and
// subtype() are not provided.
//
// Compile rejects what Flink rejects, with an error wrapping
// ErrMalformedPattern that names the stage: a sequence ending in
// NotFollowedBy without Within, a NOT stage after an optional one, an
// optional, quantified or greedy NOT stage, two quantifiers, Until on a
// stage that is not looping, Consecutive or AllowCombinations on a
// singleton or both together, Greedy on a singleton or with
// AllowCombinations, an optional stage after a greedy one, non-positive
// counts and windows, duplicate names, and a skip strategy naming no stage.
// It also rejects a greedy last stage (Flink accepts it, but such a stage
// never completes a match), stage names that are not identifiers or that
// shadow an event field or expression builtin, and conditions that do not
// compile.
//
// # Semantics
//
// Compile builds the automaton Flink's NFACompiler builds, state for state:
// TAKE, IGNORE and PROCEED edges, the twin states that let optional and
// looping stages proceed only once, stop states for NOT stages, greedy
// proceed conditions, and the copies that end a NotFollowedBy's reach once
// an optional stage after it accepted an event. The engine then runs it as
// Flink's NFA does: on every event each partial match follows PROCEED edges
// and takes or ignores the event; reaching the final state completes a
// match, reaching a stop state drops the branch with everything it produced
// for that event. Partial matches share their common prefixes (the shared
// buffer of Flink, kept as a tree of entries that Go's collector frees,
// which makes Flink's Dewey versions unnecessary). The tests hold the
// engine to the examples of Flink's documentation and to cases of its test
// suite; where the documentation contradicts its own automaton (the
// consecutive "a b+ c" example, the allowCombinations list), the tests say
// so and follow the automaton.
//
// Where Flink leaves room, this package decides:
//
//   - Within is measured from the first event: a partial match whose first
//     event is at t is discarded once event time reaches t+Within (an event
//     at exactly t+Within is outside). Timed-out partial matches are
//     reported, if Options.EmitTimeouts is set, with At = t+Within.
//   - A sequence ending in NotFollowedBy (with Within) emits its match when
//     the window closes without a NOT event, with At = first event + Within.
//   - Under NoSkip matches are emitted as soon as they complete. Under any
//     other strategy a match waits while a partial match that started
//     earlier is alive, as in Flink, since that one may complete first and
//     prune it; it is emitted when that partial match completes, dies or
//     times out.
//   - SkipToFirst and SkipToLast skip nothing when the match holds no event
//     of the named stage (Flink's default; its throwExceptionOnMiss is not
//     provided).
//   - Events with equal timestamps are processed in arrival order.
//   - Matches completed by the same event are emitted in order of their
//     first event.
//
// # Conditions
//
// A condition is an expression of github.com/expr-lang/expr, compiled once
// and required to be boolean. Its environment:
//
//   - the current event's typed fields: time (time.Time), jobID, tmID
//     (the worker), hostname, metricsName, metricsKey (strings) and
//     metricsValue (float64);
//   - any other identifier names a label of the current event (any type,
//     nil when absent);
//   - every stage name is the list of events that stage accepted so far in
//     the partial match being extended, oldest first, each a map of its
//     fields and labels: len(e1), e1[0].metricsValue, e1[-1],
//     all(e1, .metricsValue > 0), mean(map(e1, .metricsValue)). A stage's
//     own name in its own condition lists what it accepted before, which is
//     how looping stages compare an event with the previous one;
//   - e1.field is shorthand for the field of e1's most recent event.
//
// A condition that fails at run time (a comparison with a missing label,
// e1.field while e1 has no event yet, an index out of range) is false and
// is counted in Stats.ConditionErrors; guard with len(e1) > 0 where a stage
// may be empty. The expression optimizer is off, so a condition fails
// exactly when an operand it evaluates fails.
//
// Conditions made of literals, typed fields (time excepted), e1.field,
// len(e1), arithmetic, comparisons and boolean operators run as compiled Go
// closures that neither box nor allocate; the rest run on the expression
// VM, one per Engine. Both give the same results (tests and a fuzz target
// check it). Conditions that see only the current event are evaluated once
// per event and shared by all partial matches of the partition.
//
// # Event time, partitions and bounds
//
// Events are partitioned by Options.KeyFields (job and worker by default);
// each partition has its own automaton state. The watermark is the
// largest event time seen minus Options.AllowedLateness. An event waits in
// its partition's buffer until the watermark reaches it and is then
// processed in timestamp order; an event older than the watermark is
// dropped and counted in Stats.Late. A full buffer (MaxBufferedEvents)
// processes its oldest event early. Partial matches beyond
// MaxPartialMatches are pruned, earliest start first. A timer heap wakes
// partitions whose buffered events or windows the watermark passes, so
// quiet partitions time out too; AdvanceWatermark moves event time on when
// no events come, Flush processes everything buffered, and Compact forgets
// partitions that hold nothing.
//
// An Engine is used from one goroutine (shard keys across Engines for more
// cores; an NFA can be shared). Matches go to the emit function given to
// NewEngine, synchronously; it must not call back into the Engine.
package cep
