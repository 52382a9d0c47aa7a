package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/tidewatch/tidewatch/monitor/cep"
)

// probeWindow stands in for a missing window while a part of a pattern is
// compiled on its own.
const probeWindow = time.Hour

// compile builds the rule's automaton once its fields and conditions are
// known to be right, attributing a sequence error to the first event at
// which the sequence becomes invalid.
func (d *decoder) compile(r *Rule, path string, patNode *yaml.Node, nodes []stageNodes) bool {
	if _, err := buildPattern(r, len(r.Pattern), false).Compile(); err != nil {
		// find the first event at which the sequence goes wrong
		for k := 1; k <= len(r.Pattern); k++ {
			if _, err := buildPattern(r, k, false).Compile(); err != nil {
				d.errorf(nodes[k-1].stage, fmt.Sprintf("%s.pattern[%d]", path, k-1), "%s", cepMessage(err))
				return false
			}
		}
	}
	nfa, err := buildPattern(r, len(r.Pattern), true).Compile()
	if err != nil {
		d.errorf(patNode, path+".pattern", "%s", cepMessage(err))
		return false
	}
	r.nfa = nfa
	r.fingerprint = fingerprint(r)
	return true
}

// checkConditions compiles every condition on its own, reporting each one
// that does not compile at its line. It needs only the stage names, so it
// runs even when other fields of the rule are wrong.
func (d *decoder) checkConditions(r *Rule, nodes []stageNodes) {
	names := r.StageNames()
	for i, sn := range nodes {
		for _, c := range sn.conds {
			if _, err := probeCondition(names, i, c.src); err != nil {
				// the field path names the condition already
				msg := strings.TrimPrefix(cepMessage(err), strconv.Quote(names[i])+".Where("+strconv.Quote(c.src)+"): ")
				d.errorf(c.node, c.path, "%s", msg)
			}
		}
	}
}

// probeCondition compiles one condition of stage at in a sequence of the
// rule's stage names, every other condition true, so that an error in it is
// told apart from errors elsewhere.
func probeCondition(names []string, at int, src string) (*cep.NFA, error) {
	p := cep.Begin(names[0])
	for i, n := range names {
		if i > 0 {
			p = p.FollowedBy(n)
		}
		if i == at {
			p = p.Where(src)
		} else {
			p = p.Where("true")
		}
	}
	return p.Within(probeWindow).Compile()
}

// buildPattern builds the rule's first n stages as a cep pattern. Unless
// full is set the conditions are all true, the window is never missing and
// the last stage is not greedy: what is left are the checks of the
// sequence up to stage n.
func buildPattern(r *Rule, n int, full bool) *cep.Pattern {
	var p *cep.Pattern
	for i, s := range r.Pattern[:n] {
		switch {
		case i == 0:
			p = cep.Begin(s.Name)
		case s.Not && s.Contiguity == cep.Strict:
			p = p.NotNext(s.Name)
		case s.Not:
			p = p.NotFollowedBy(s.Name)
		case s.Contiguity == cep.Strict:
			p = p.Next(s.Name)
		case s.Contiguity == cep.NonDeterministicRelaxed:
			p = p.FollowedByAny(s.Name)
		default:
			p = p.FollowedBy(s.Name)
		}
		if full {
			for _, w := range s.Where {
				p = p.Where(w)
			}
			for _, o := range s.Or {
				p = p.Or(o)
			}
		} else {
			p = p.Where("true")
		}
		switch {
		case s.TimesTo > 0 && s.TimesFrom == s.TimesTo:
			p = p.Times(s.TimesTo)
		case s.TimesTo > 0:
			p = p.TimesRange(s.TimesFrom, s.TimesTo)
		case s.TimesOrMore == 1:
			p = p.OneOrMore()
		case s.TimesOrMore > 1:
			p = p.TimesOrMore(s.TimesOrMore)
		}
		if s.Until != "" {
			if full {
				p = p.Until(s.Until)
			} else {
				p = p.Until("false")
			}
		}
		if s.Optional {
			p = p.Optional()
		}
		if s.Greedy && (full || i < n-1) {
			p = p.Greedy()
		}
		if s.Consecutive {
			p = p.Consecutive()
		}
		if s.AllowCombinations {
			p = p.AllowCombinations()
		}
	}
	switch {
	case r.Within > 0:
		p = p.Within(r.Within)
	case !full:
		p = p.Within(probeWindow)
	}
	if full {
		p = p.Skip(r.skip)
	}
	return p
}

var (
	outputAsRE    = regexp.MustCompile(`(?is)^\s*(.*\S)\s+as\s+([A-Za-z_][A-Za-z0-9_]*)\s*$`)
	outputFieldRE = regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_]*(?:\[-?[0-9]+\])?\.([A-Za-z_][A-Za-z0-9_]*)\s*$`)
)

// parseOutput reads "EXPR as NAME", or "e1.field", named field.
func parseOutput(s string) (Output, error) {
	if m := outputAsRE.FindStringSubmatch(s); m != nil {
		return Output{Expr: m[1], Name: m[2]}, nil
	}
	if m := outputFieldRE.FindStringSubmatch(s); m != nil {
		return Output{Expr: s, Name: m[1]}, nil
	}
	return Output{}, fmt.Errorf(`must be "EXPR as NAME" or "e1.field", got %q`, s)
}

// compileOutput compiles an output expression over the matched events:
// every stage name is the list of its events, and e1.field reads the most
// recent one, as in conditions.
func compileOutput(src string, stages []string) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, fmt.Errorf("does not compile: %v", r)
		}
	}()
	if len(src) > 4096 {
		return nil, fmt.Errorf("longer than 4096 bytes")
	}
	env := map[string]any{}
	known := map[string]bool{}
	for _, s := range stages {
		env[s] = []map[string]any{}
		known[s] = true
	}
	return expr.Compile(src, expr.Env(env), expr.AllowUndefinedVariables(), expr.Patch(lastPatcher{stages: known}))
}

// lastPatcher rewrites e1.field into e1[-1].field.
type lastPatcher struct{ stages map[string]bool }

func (p lastPatcher) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || !p.stages[id.Value] {
		return
	}
	if _, ok := m.Property.(*ast.StringNode); !ok {
		return
	}
	last := &ast.MemberNode{Node: &ast.IdentifierNode{Value: id.Value}, Property: &ast.IntegerNode{Value: -1}}
	last.SetLocation(id.Location())
	last.Node.SetLocation(id.Location())
	last.Property.SetLocation(id.Location())
	m.Node = last
}

// EvalOutputs computes the rule's output fields over a match's events. An
// output whose expression fails (a stage without events, a missing label)
// is nil.
func (r *Rule) EvalOutputs(events map[string][]cep.Event) map[string]any {
	if len(r.Outputs) == 0 {
		return nil
	}
	env := make(map[string]any, len(r.Pattern))
	for _, s := range r.Pattern {
		evs := events[s.Name]
		views := make([]map[string]any, len(evs))
		for i := range evs {
			views[i] = EventView(&evs[i])
		}
		env[s.Name] = views
	}
	out := make(map[string]any, len(r.Outputs))
	for _, o := range r.Outputs {
		v, err := expr.Run(o.prog, env)
		if err != nil {
			v = nil
		}
		out[o.Name] = v
	}
	return out
}

// EventView is an event as expressions see it: its labels and its typed
// fields by their expression names.
func EventView(ev *cep.Event) map[string]any {
	m := make(map[string]any, 7+len(ev.Labels))
	for k, v := range ev.Labels {
		m[k] = v
	}
	m["time"] = ev.Time
	m["jobID"] = ev.JobID
	m["tmID"] = ev.TMID
	m["hostname"] = ev.Hostname
	m["metricsName"] = ev.MetricsName
	m["metricsKey"] = ev.MetricsKey
	m["metricsValue"] = ev.MetricsValue
	return m
}

// fingerprint hashes what a rule's automaton state depends on.
func fingerprint(r *Rule) string {
	b, _ := json.Marshal(struct {
		Scope       Scope
		Metrics     []string
		PartitionBy []string
		Within      time.Duration
		Skip        string
		Pattern     []Stage
	}{r.Scope, r.Metrics, r.PartitionBy, r.Within, r.Skip, r.Pattern})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}
