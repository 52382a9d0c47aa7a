package cep

import (
	"fmt"
	"time"
)

type action int8

const (
	actTake    action = iota // consume the event and move to the target
	actIgnore                // skip the event and move to the target
	actProceed               // move to the target without consuming (an epsilon edge)
)

type stateKind int8

const (
	stNormal  stateKind = iota
	stFinal             // a match is complete
	stStop              // a NOT stage fired: the branch is discarded
	stPending           // a trailing NotFollowedBy: the match completes when the window closes
)

type predOp int8

const (
	pTrue predOp = iota
	pAtom
	pNot
	pAnd
	pOr
)

// pred is an edge condition: a boolean formula over compiled conditions.
type pred struct {
	op   predOp
	atom int32
	a, b *pred
}

var predTrue = &pred{op: pTrue}

func pNotOf(a *pred) *pred { return &pred{op: pNot, a: a} }
func pAndOf(a, b *pred) *pred {
	return &pred{op: pAnd, a: a, b: b}
}
func pOrOf(a, b *pred) *pred { return &pred{op: pOr, a: a, b: b} }

type transition struct {
	act    action
	target int32
	source int32
	cond   *pred
}

// nstate is a state of the compiled automaton. stage is the pattern stage
// whose events the state's TAKE edges accept (-1 for final states).
type nstate struct {
	id       int32
	stage    int32
	kind     stateKind
	start    bool
	stopName string
	trans    []transition

	// used while compiling only
	edges []cedge
}

type cedge struct {
	act    action
	target *nstate
	cond   *pred
}

// NFA is a compiled pattern sequence. It is immutable and can back any
// number of Engines, also concurrently.
type NFA struct {
	stages []*stage
	names  []string // stage names by index
	conds  []*condition
	states []*nstate
	start  int32
	window int64 // nanoseconds; 0 means no window
	skip   SkipStrategy
	within time.Duration
}

// Compile validates the pattern sequence and compiles it and its conditions
// into an automaton.
func (p *Pattern) Compile() (*NFA, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	c := &compiler{
		stages: p.stages,
		stops:  map[string]*nstate{},
		index:  map[string]int32{},
	}
	for i, s := range p.stages {
		c.index[s.name] = int32(i)
	}
	n := &NFA{stages: p.stages, skip: p.skip, within: p.within, window: int64(p.within)}
	for _, s := range p.stages {
		n.names = append(n.names, s.name)
	}
	if err := c.compileConditions(); err != nil {
		return nil, err
	}
	n.conds = c.conds
	start := c.build()
	for i, s := range c.states {
		s.id = int32(i)
	}
	for _, s := range c.states {
		for _, e := range s.edges {
			s.trans = append(s.trans, transition{act: e.act, target: e.target.id, source: s.id, cond: e.cond})
		}
		s.edges = nil
	}
	n.states = c.states
	n.start = start.id
	return n, nil
}

// MustCompile is Compile for patterns fixed in code; it panics on error.
func (p *Pattern) MustCompile() *NFA {
	n, err := p.Compile()
	if err != nil {
		panic(err)
	}
	return n
}

// Within returns the window of the sequence, zero if it has none.
func (n *NFA) Within() time.Duration { return n.within }

// StageNames returns the names of the stages in sequence order.
func (n *NFA) StageNames() []string { return append([]string(nil), n.names...) }

// compiler turns a stage list into states the way Flink's NFACompiler does,
// walking the stages from the last to the first so that every state knows
// the state it leads to.
type compiler struct {
	stages []*stage
	index  map[string]int32
	states []*nstate
	stops  map[string]*nstate
	conds  []*condition

	takeConds  []*pred // per stage: the Where/Or formula
	untilConds []*pred // per stage: the Until condition, nil if none

	cur           int   // the stage being converted
	followingTake *pred // the take condition of what follows cur, for greedy stages
}

func (c *compiler) compileConditions() error {
	c.takeConds = make([]*pred, len(c.stages))
	c.untilConds = make([]*pred, len(c.stages))
	atom := func(s *stage, method, src string) (*pred, error) {
		cond, err := compileCondition(src, c.index)
		if err != nil {
			return nil, fmt.Errorf("%w: %q.%s(%q): %w", ErrMalformedPattern, s.name, method, src, err)
		}
		c.conds = append(c.conds, cond)
		return &pred{op: pAtom, atom: int32(len(c.conds) - 1)}, nil
	}
	for i, s := range c.stages {
		var take *pred
		for _, cs := range s.conds {
			method := "Where"
			if cs.op == condOr {
				method = "Or"
			}
			a, err := atom(s, method, cs.src)
			if err != nil {
				return err
			}
			switch {
			case take == nil:
				take = a
			case cs.op == condWhere:
				take = pAndOf(take, a)
			default:
				take = pOrOf(take, a)
			}
		}
		if take == nil {
			take = predTrue
		}
		c.takeConds[i] = take
		if s.hasUntil {
			a, err := atom(s, "Until", s.until)
			if err != nil {
				return err
			}
			c.untilConds[i] = a
		}
	}
	return nil
}

func (c *compiler) newState(stage int, kind stateKind) *nstate {
	s := &nstate{stage: int32(stage), kind: kind}
	c.states = append(c.states, s)
	return s
}

func (s *nstate) add(act action, target *nstate, cond *pred) {
	s.edges = append(s.edges, cedge{act: act, target: target, cond: cond})
}

func (c *compiler) build() *nstate {
	last := len(c.stages) - 1
	sink := c.newState(-1, stFinal)
	c.cur = last
	for c.cur > 0 {
		s := c.stages[c.cur]
		switch s.kind {
		case stageNotFollowedBy:
			if sink.kind == stFinal {
				// A trailing NotFollowedBy: wait in a pending state until the
				// window closes, dying if a NOT event comes first.
				pending := c.newState(c.cur, stPending)
				notCond := c.takeConds[c.cur]
				pending.add(actProceed, c.stopState(c.cur), notCond)
				pending.add(actIgnore, pending, pNotOf(notCond))
				sink = pending
			}
			// Otherwise the stage becomes edge conditions of its neighbours.
		case stageNotNext:
			notNext := c.newState(c.cur, stNormal)
			notCond := c.takeConds[c.cur]
			if sink.kind == stFinal {
				// an IGNORE, so that reaching the final state needs an event
				notNext.add(actIgnore, sink, pNotOf(notCond))
			} else {
				notNext.add(actProceed, sink, pNotOf(notCond))
			}
			notNext.add(actProceed, c.stopState(c.cur), notCond)
			sink = notNext
		default:
			sink = c.convert(sink)
		}
		c.cur--
	}
	start := c.convert(sink)
	start.start = true
	return start
}

func (c *compiler) stage() *stage { return c.stages[c.cur] }

func (c *compiler) stopState(notStage int) *nstate {
	name := c.stages[notStage].name
	if s, ok := c.stops[name]; ok {
		return s
	}
	s := c.newState(notStage, stStop)
	s.stopName = name
	s.add(actTake, s, c.takeConds[notStage])
	c.stops[name] = s
	return s
}

type notCond struct {
	cond  *pred
	stage int
}

// currentNotConditions returns the NotFollowedBy stages that still guard
// the current stage: the one right before it, and those reached back through
// optional stages.
func (c *compiler) currentNotConditions() []notCond {
	var out []notCond
	for i := c.cur - 1; i >= 0; i-- {
		s := c.stages[i]
		if !s.optional && s.kind != stageNotFollowedBy {
			break
		}
		if s.kind == stageNotFollowedBy {
			out = append(out, notCond{cond: c.takeConds[i], stage: i})
		}
	}
	return out
}

func (c *compiler) convert(sink *nstate) *nstate {
	s := c.stage()
	var last *nstate
	switch s.quant {
	case quantLooping:
		looping := c.createLooping(c.copyWithoutTransitiveNots(sink))
		last = c.createTimes(looping, sink, s.from, s.from)
	case quantTimes:
		last = c.createTimes(sink, sink, s.from, s.to)
	default:
		last = c.createSingleton(sink, sink, c.takeConds[c.cur], c.ignoreCond(s.contiguity), s.optional)
	}
	c.addStopStates(last)
	return last
}

// ignoreCond is the condition of the IGNORE edge for a contiguity: none for
// strict, the negated take condition for relaxed, always for
// non-deterministic relaxed.
func (c *compiler) ignoreCond(ct Contiguity) *pred {
	switch ct {
	case Strict:
		return nil
	case NonDeterministicRelaxed:
		return predTrue
	}
	return pNotOf(c.takeConds[c.cur])
}

func (c *compiler) innerIgnoreCond() *pred { return c.ignoreCond(c.stage().inner) }

func (c *compiler) withUntil(cond *pred, isTake bool) *pred {
	until := c.untilConds[c.cur]
	switch {
	case until != nil && cond != nil:
		return pAndOf(pNotOf(until), cond)
	case until != nil && isTake:
		return pNotOf(until)
	}
	return cond
}

func (c *compiler) createTimes(sink, proceed *nstate, from, to int) *nstate {
	last := sink
	innerIgnore := c.withUntil(c.innerIgnoreCond(), false)
	take := c.withUntil(c.takeConds[c.cur], true)
	for i := from; i < to; i++ {
		last = c.createSingleton(last, proceed, take, innerIgnore, true)
		c.addStopStateToLooping(last)
	}
	for i := 0; i < from-1; i++ {
		last = c.createSingleton(last, nil, take, innerIgnore, false)
		c.addStopStateToLooping(last)
	}
	return c.createSingleton(last, proceed, take, c.ignoreCond(c.stage().contiguity), c.stage().optional)
}

func (c *compiler) createSingleton(sink, proceed *nstate, take, ignore *pred, optional bool) *nstate {
	s := c.stage()
	st := c.newState(c.cur, stNormal)
	// accepting an event ends the reach of the NOT stages before an optional one
	target := c.copyWithoutTransitiveNots(sink)
	st.add(actTake, target, take)

	proceedCond := predTrue
	if optional {
		if s.greedy {
			proceedCond = c.greedyCond(take, ignore)
		}
		st.add(actProceed, proceed, proceedCond)
	}
	if ignore != nil {
		ignoreState := st
		if optional {
			// a twin without the PROCEED edge, so that a branch proceeds
			// only once however many events it ignores
			ignoreState = c.newState(c.cur, stNormal)
			ignoreState.add(actTake, target, take)
			ignoreState.add(actIgnore, ignoreState, ignore)
			c.addStopStates(ignoreState)
			if s.greedy {
				ignoreState.add(actProceed, proceed, proceedCond)
			}
		}
		st.add(actIgnore, ignoreState, ignore)
	}
	c.followingTake = c.nextFollowingTake(take, optional)
	return st
}

func (c *compiler) createLooping(sink *nstate) *nstate {
	s := c.stage()
	ignore := c.withUntil(c.innerIgnoreCond(), false)
	take := c.withUntil(c.takeConds[c.cur], true)
	proceedCond := predTrue
	if s.greedy {
		proceedCond = c.greedyCond(take, ignore)
	}
	looping := c.newState(c.cur, stNormal)
	looping.add(actProceed, sink, proceedCond)
	looping.add(actTake, looping, take)
	c.addStopStateToLooping(looping)
	if ignore != nil {
		ignoreState := c.newState(c.cur, stNormal)
		ignoreState.add(actTake, looping, take)
		ignoreState.add(actIgnore, ignoreState, ignore)
		looping.add(actIgnore, ignoreState, ignore)
		if s.greedy {
			ignoreState.add(actProceed, sink, proceedCond)
		}
		c.addStopStateToLooping(ignoreState)
	}
	c.followingTake = c.nextFollowingTake(take, true)
	return looping
}

// greedyCond lets a greedy stage proceed only on an event it does not take
// and the stage after it does, or on an event that ends it anyway.
func (c *compiler) greedyCond(take, ignore *pred) *pred {
	g := pNotOf(take)
	if c.followingTake != nil {
		g = pAndOf(g, c.followingTake)
	}
	if ignore != nil {
		return pOrOf(g, pNotOf(pOrOf(take, ignore)))
	}
	return pOrOf(g, pNotOf(take))
}

func (c *compiler) nextFollowingTake(take *pred, optional bool) *pred {
	if optional && c.followingTake != nil {
		return pOrOf(take, c.followingTake)
	}
	return take
}

func (c *compiler) addStopStates(st *nstate) {
	for _, nc := range c.currentNotConditions() {
		st.add(actProceed, c.stopState(nc.stage), nc.cond)
	}
}

func (c *compiler) addStopStateToLooping(st *nstate) {
	if c.cur+1 < len(c.stages) && c.stages[c.cur+1].kind == stageNotFollowedBy {
		st.add(actProceed, c.stopState(c.cur+1), c.takeConds[c.cur+1])
	}
}

// copyWithoutTransitiveNots returns sink, or, when the current stage is
// optional and NotFollowedBy stages before it still apply, a copy of sink
// without their stop edges: once the optional stage accepted an event those
// NOT stages no longer guard what follows. For a.notFollowedBy(b).
// followedByAny(c).optional().followedByAny(d), "a c b d" matches and
// "a b d" does not.
func (c *compiler) copyWithoutTransitiveNots(sink *nstate) *nstate {
	nots := c.currentNotConditions()
	if len(nots) == 0 || !c.stage().optional {
		return sink
	}
	cp := c.newState(int(sink.stage), sink.kind)
	cp.stopName = sink.stopName
	for _, e := range sink.edges {
		if e.act != actProceed {
			target := e.target
			if target == sink {
				target = cp
			}
			cp.add(e.act, target, e.cond)
			continue
		}
		target := e.target
		if target.kind == stStop {
			guarded := false
			for _, nc := range nots {
				if c.stages[nc.stage].name == target.stopName {
					guarded = true
				}
			}
			if guarded {
				continue
			}
		} else {
			target = c.copyWithoutTransitiveNots(target)
		}
		cp.add(actProceed, target, e.cond)
	}
	return cp
}
