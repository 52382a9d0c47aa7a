package monitor

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/tidewatch/tidewatch/monitor/rules"
)

// A guard is a rule's first condition compiled to a plain Go function of
// the event's value. The evaluator uses it to spare the rule's engine the
// events that cannot matter to it: an event that cannot begin a match, in
// a series where no match has begun within the rule's window, can neither
// start nor extend a partial match. Most samples of a healthy job are such
// events for most rules (a heap at 45% for the rules about 85%, 75% and
// 10%), so most deliveries are skipped and most rules hold no state at all
// for most jobs.
//
// A guard must be true whenever the engine's condition is: it is built only
// for a small subset of conditions (numeric literals, metricsValue,
// arithmetic, comparisons, boolean operators), which it evaluates with
// Go's float64 arithmetic as the expression language does, and only for a
// rule
//   - that reads one metric (a partial match then sees one series only),
//   - whose partitions are at least as fine as a series (partitionBy holds
//     jobID, tmID and metricsKey), so that no match spans series,
//   - with a window (a partial match ends by its first event's time plus
//     the window),
//   - whose first event is required (not optional, at least one).
type guard func(v float64) bool

// compileGuard returns the guard of r, nil if r cannot have one or its
// first condition is always true.
func compileGuard(r *rules.Rule) guard {
	if len(r.Metrics) != 1 || r.Within <= 0 || len(r.Pattern) == 0 {
		return nil
	}
	for _, f := range []string{"jobID", "tmID", "metricsKey"} {
		if !slices.Contains(r.PartitionBy, f) {
			return nil
		}
	}
	first := r.Pattern[0]
	if first.Optional || first.TimesTo > 0 && first.TimesFrom == 0 || first.Not {
		return nil
	}
	var where, or []guard
	for _, src := range first.Where {
		g, ok := guardOf(src)
		if !ok {
			return nil
		}
		where = append(where, g)
	}
	for _, src := range first.Or {
		g, ok := guardOf(src)
		if !ok {
			return nil
		}
		or = append(or, g)
	}
	g := func(v float64) bool {
		all := true
		for _, w := range where {
			if !w(v) {
				all = false
				break
			}
		}
		if all {
			return true
		}
		for _, o := range or {
			if o(v) {
				return true
			}
		}
		return false
	}
	if len(where) == 1 && len(or) == 0 {
		g = where[0]
	}
	return g
}

func guardOf(src string) (guard, bool) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, false
	}
	n, ok := gnode(tree.Node)
	if !ok || n.b == nil {
		return nil, false
	}
	if n.constant {
		return nil, false // always true or always false: nothing to gain or to trust
	}
	return n.b, true
}

// gexpr is a compiled subexpression: a number (f) or a boolean (b).
type gexpr struct {
	f        func(v float64) float64
	b        func(v float64) bool
	constant bool
}

func gnode(node ast.Node) (gexpr, bool) {
	switch n := node.(type) {
	case *ast.IntegerNode:
		c := float64(n.Value)
		return gexpr{f: func(float64) float64 { return c }, constant: true}, true
	case *ast.FloatNode:
		c := n.Value
		return gexpr{f: func(float64) float64 { return c }, constant: true}, true
	case *ast.BoolNode:
		c := n.Value
		return gexpr{b: func(float64) bool { return c }, constant: true}, true
	case *ast.IdentifierNode:
		if n.Value == "metricsValue" {
			return gexpr{f: func(v float64) float64 { return v }}, true
		}
	case *ast.UnaryNode:
		x, ok := gnode(n.Node)
		if !ok {
			return gexpr{}, false
		}
		switch {
		case (n.Operator == "!" || n.Operator == "not") && x.b != nil:
			b := x.b
			return gexpr{b: func(v float64) bool { return !b(v) }, constant: x.constant}, true
		case n.Operator == "-" && x.f != nil:
			f := x.f
			return gexpr{f: func(v float64) float64 { return -f(v) }, constant: x.constant}, true
		case n.Operator == "+" && x.f != nil:
			return x, true
		}
	case *ast.BinaryNode:
		l, ok1 := gnode(n.Left)
		r, ok2 := gnode(n.Right)
		if !ok1 || !ok2 {
			return gexpr{}, false
		}
		c := l.constant && r.constant
		if l.b != nil && r.b != nil {
			a, b := l.b, r.b
			switch n.Operator {
			case "&&", "and":
				return gexpr{b: func(v float64) bool { return a(v) && b(v) }, constant: c}, true
			case "||", "or":
				return gexpr{b: func(v float64) bool { return a(v) || b(v) }, constant: c}, true
			}
			return gexpr{}, false
		}
		if l.f == nil || r.f == nil {
			return gexpr{}, false
		}
		a, b := l.f, r.f
		switch n.Operator {
		case "<":
			return gexpr{b: func(v float64) bool { return a(v) < b(v) }, constant: c}, true
		case "<=":
			return gexpr{b: func(v float64) bool { return a(v) <= b(v) }, constant: c}, true
		case ">":
			return gexpr{b: func(v float64) bool { return a(v) > b(v) }, constant: c}, true
		case ">=":
			return gexpr{b: func(v float64) bool { return a(v) >= b(v) }, constant: c}, true
		case "==":
			return gexpr{b: func(v float64) bool { return a(v) == b(v) }, constant: c}, true
		case "!=":
			return gexpr{b: func(v float64) bool { return a(v) != b(v) }, constant: c}, true
		case "+":
			return gexpr{f: func(v float64) float64 { return a(v) + b(v) }, constant: c}, true
		case "-":
			return gexpr{f: func(v float64) float64 { return a(v) - b(v) }, constant: c}, true
		case "*":
			return gexpr{f: func(v float64) float64 { return a(v) * b(v) }, constant: c}, true
		case "/":
			return gexpr{f: func(v float64) float64 { return a(v) / b(v) }, constant: c}, true
		}
	}
	return gexpr{}, false
}
