package cep

import (
	"math"
	"slices"
	"time"
)

// compState is one partial match (a Flink ComputationState): the state it
// is in, the last event it took, and its start.
type compState struct {
	tail     *node
	startTS  int64
	startPos uint64 // position of the first event; 0 for the start state
	prevTS   int64
	state    int32
}

func (cs *compState) isStartState() bool { return cs.startPos == 0 }

// evalPred evaluates an edge condition for the event under test and the
// partial match cs.
func (e *Engine) evalPred(p *pred, cs *compState) bool {
	switch p.op {
	case pTrue:
		return true
	case pAtom:
		return e.evalAtom(p.atom, cs)
	case pNot:
		return !e.evalPred(p.a, cs)
	case pAnd:
		return e.evalPred(p.a, cs) && e.evalPred(p.b, cs)
	default:
		return e.evalPred(p.a, cs) || e.evalPred(p.b, cs)
	}
}

// evalAtom evaluates one condition, once per event for conditions that see
// only the event, once per event and partial match for those that refer to
// earlier events. A condition that fails at run time is false.
func (e *Engine) evalAtom(atom int32, cs *compState) bool {
	c := e.nfa.conds[atom]
	memo := &e.memo[atom]
	stamp := e.eventStamp
	if c.refs {
		stamp = e.csStamp
	}
	if memo.stamp == stamp {
		return memo.val
	}
	// the context lives in the engine: handing a local's address to the
	// closures would move it to the heap on every evaluation
	e.ctx = evalCtx{rec: e.cur, tail: cs.tail}
	var v, ok bool
	if c.native != nil && !e.noNative {
		v, ok = c.native(&e.ctx)
	} else {
		v, ok = e.rt.evalVM(c, &e.ctx)
	}
	if !ok {
		e.stats.ConditionErrors++
		v = false
	}
	memo.stamp, memo.val = stamp, v
	return v
}

type memo struct {
	stamp uint64
	val   bool
}

type edge struct {
	act    action
	target int32
	source int32
}

// processEvent feeds one event to a partition's automaton (Flink's
// NFA.process): every partial match takes, ignores or proceeds on it;
// branches that reach the final state are matches, branches that reach a
// stop state are dropped with everything else they produced for this event.
func (e *Engine) processEvent(p *partition, r *record) {
	e.cur = r
	e.shared = nil
	e.eventStamp = e.nextStamp()

	next := e.nextBuf[:0]
	potential := e.potBuf[:0]
	for i := range p.partial {
		cs := &p.partial[i]
		e.csStamp = e.nextStamp()
		out := e.computeNextStates(cs, e.outBuf[:0])
		discard := false
		mark := len(next)
		for _, ns := range out {
			switch e.nfa.states[ns.state].kind {
			case stFinal:
				potential = append(potential, ns)
			case stStop:
				discard = true
			default:
				next = append(next, ns)
			}
		}
		if discard {
			next = next[:mark]
			if cs.isStartState() {
				next = append(next, *cs)
			}
		}
		e.outBuf = out[:0]
	}
	e.cur = nil
	old := p.partial
	p.partial, e.nextBuf = next, old[:0]
	clear(old) // drop the old states' references to the shared buffer
	e.potBuf = potential[:0]
	e.emitMatches(p, potential, r.ts)
	clear(potential)
}

// computeNextStates returns the partial matches cs turns into on the current
// event (Flink's NFA.computeNextStates).
func (e *Engine) computeNextStates(cs *compState, out []compState) []compState {
	edges := e.decisionGraph(cs)
	r := e.cur
	for _, ed := range edges {
		switch ed.act {
		case actIgnore:
			if !cs.isStartState() {
				out = append(out, compState{state: ed.target, tail: cs.tail, startTS: cs.startTS, startPos: cs.startPos, prevTS: cs.prevTS})
			}
		case actTake:
			var n *node
			if e.shared == nil {
				// the first branch to take the event stores it next to its
				// buffer entry; later branches share that copy
				nr := &nodeRecord{rec: *r}
				nr.node = node{rec: &nr.rec, prev: cs.tail, stage: e.nfa.states[ed.source].stage}
				e.shared = &nr.rec
				n = &nr.node
			} else {
				n = &node{rec: e.shared, prev: cs.tail, stage: e.nfa.states[ed.source].stage}
			}
			startTS, startPos := cs.startTS, cs.startPos
			if cs.isStartState() {
				startTS, startPos = r.ts, r.pos
			}
			ns := compState{state: ed.target, tail: n, startTS: startTS, startPos: startPos, prevTS: r.ts}
			out = append(out, ns)
			// a state that can proceed to the end completes a match now
			if final := e.finalAfterProceed(ed.target, cs); final >= 0 {
				ns.state = final
				out = append(out, ns)
			}
		}
	}
	if cs.isStartState() {
		out = append(out, *cs)
	}
	e.edgeBuf = edges[:0]
	return out
}

// decisionGraph follows PROCEED edges from cs's state and collects the TAKE
// and IGNORE edges whose conditions hold for the current event.
func (e *Engine) decisionGraph(cs *compState) []edge {
	edges := e.edgeBuf[:0]
	stack := append(e.stack[:0], cs.state)
	for len(stack) > 0 {
		s := e.nfa.states[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		for i := range s.trans {
			t := &s.trans[i]
			if !e.evalPred(t.cond, cs) {
				continue
			}
			if t.act == actProceed {
				stack = append(stack, t.target)
			} else {
				edges = append(edges, edge{act: t.act, target: t.target, source: t.source})
			}
		}
	}
	e.stack = stack[:0]
	return edges
}

// finalAfterProceed returns the final state reachable from state through
// PROCEED edges whose conditions hold, or -1.
func (e *Engine) finalAfterProceed(state int32, cs *compState) int32 {
	stack := append(e.stack2[:0], state)
	defer func() { e.stack2 = stack[:0] }()
	for len(stack) > 0 {
		s := e.nfa.states[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		for i := range s.trans {
			t := &s.trans[i]
			if t.act != actProceed || !e.evalPred(t.cond, cs) {
				continue
			}
			if e.nfa.states[t.target].kind == stFinal {
				return t.target
			}
			stack = append(stack, t.target)
		}
	}
	return -1
}

// advanceTime discards the partial matches whose window closed by ts
// (reporting them when asked), completes pending NotFollowedBy matches, and
// releases held matches the discarded ones were holding back.
func (e *Engine) advanceTime(p *partition, ts int64) {
	if e.nfa.window <= 0 || ts < p.deadline {
		return
	}
	p.deadline = math.MaxInt64
	potential := e.potBuf[:0]
	kept := p.partial[:0]
	for _, cs := range p.partial {
		if cs.isStartState() {
			kept = append(kept, cs)
			continue
		}
		if ts-cs.startTS < e.nfa.window {
			kept = append(kept, cs)
			p.deadline = min(p.deadline, cs.startTS+e.nfa.window)
			continue
		}
		if e.nfa.states[cs.state].kind == stPending {
			potential = append(potential, cs)
			continue
		}
		e.stats.Timeouts++
		if e.opts.EmitTimeouts {
			e.emit(e.materialize(p, cs.tail, cs.startTS+e.nfa.window, true))
		}
	}
	clear(p.partial[len(kept):])
	p.partial = kept
	e.potBuf = potential[:0]
	e.emitMatches(p, potential, ts)
	clear(potential)
}

// emitMatches emits completed matches. Without a skip strategy every match
// goes out at once. With one, a match waits until no partial match that
// started earlier is left (one of those could still complete first), and
// each emitted match prunes what the strategy says.
func (e *Engine) emitMatches(p *partition, potential []compState, now int64) {
	if len(potential) == 0 && len(p.completed) == 0 {
		return
	}
	slices.SortStableFunc(potential, func(a, b compState) int { return cmpU64(a.startPos, b.startPos) })
	if e.nfa.skip.kind == skipNone {
		for i := range potential {
			e.emitMatch(p, &potential[i], now)
		}
		return
	}
	p.completed = append(p.completed, potential...)
	slices.SortStableFunc(p.completed, func(a, b compState) int { return cmpU64(a.startPos, b.startPos) })
	for len(p.completed) > 0 {
		m := p.completed[0]
		if earliest := earliestPartial(p.partial); earliest != 0 && earliest < m.startPos {
			break
		}
		p.completed = slices.Delete(p.completed, 0, 1)
		if prune, strictly, ok := e.pruningPos(&m); ok {
			p.partial = pruneStates(p.partial, prune, strictly)
			p.completed = pruneStates(p.completed, prune, strictly)
		}
		e.emitMatch(p, &m, now)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func earliestPartial(partial []compState) uint64 {
	var min uint64
	for i := range partial {
		if s := partial[i].startPos; s != 0 && (min == 0 || s < min) {
			min = s
		}
	}
	return min
}

// pruningPos returns the event position the skip strategy prunes up to, and
// whether only starts strictly before it are pruned.
func (e *Engine) pruningPos(m *compState) (pos uint64, strictly, ok bool) {
	switch e.nfa.skip.kind {
	case skipToNext:
		return m.startPos, false, true
	case skipPastLast:
		return m.tail.rec.pos, false, true
	case skipToFirst, skipToLast:
		stage := int32(slices.Index(e.nfa.names, e.nfa.skip.name))
		var first, last uint64
		for n := m.tail; n != nil; n = n.prev {
			if n.stage == stage {
				if last == 0 {
					last = n.rec.pos
				}
				first = n.rec.pos
			}
		}
		if first == 0 {
			return 0, false, false
		}
		if e.nfa.skip.kind == skipToFirst {
			return first, true, true
		}
		return last, true, true
	}
	return 0, false, false
}

func pruneStates(states []compState, pos uint64, strictly bool) []compState {
	return slices.DeleteFunc(states, func(cs compState) bool {
		if cs.startPos == 0 {
			return false
		}
		if strictly {
			return cs.startPos < pos
		}
		return cs.startPos <= pos
	})
}

func (e *Engine) emitMatch(p *partition, m *compState, now int64) {
	e.stats.Matches++
	if e.nfa.states[m.state].kind == stPending {
		// a trailing NotFollowedBy completes when its window closes
		now = m.startTS + e.nfa.window
	}
	e.emit(e.materialize(p, m.tail, now, false))
}

// materialize turns a partial match into its events by stage name.
func (e *Engine) materialize(p *partition, tail *node, at int64, timedOut bool) Match {
	m := Match{
		Key:      p.key,
		Events:   make(map[string][]Event, len(e.nfa.names)),
		At:       time.Unix(0, at),
		TimedOut: timedOut,
	}
	if tail != nil {
		m.End = tail.rec.ev.Time
	}
	k := 0
	for n := tail; n != nil; n = n.prev {
		k++
	}
	recs := make([]*node, k)
	for n := tail; n != nil; n = n.prev {
		k--
		recs[k] = n
	}
	for i, n := range recs {
		name := e.nfa.names[n.stage]
		m.Events[name] = append(m.Events[name], n.rec.ev)
		if i == 0 {
			m.Start = n.rec.ev.Time
		}
	}
	return m
}
