package cep

import (
	"github.com/expr-lang/expr/ast"
)

// The fast path: conditions made only of number and string literals, the
// current event's typed fields (time excepted), a stage's last event's typed
// fields (e1.metricsValue), len(stage), arithmetic (+ - * /), comparisons
// and boolean operators are compiled into Go closures that neither box nor
// allocate. The closures follow the VM's rules: int op int stays int except
// for / (always float), mixed int and float compute in float, and reading a
// stage that accepted no event yet is a run-time error, which makes the
// whole condition false just as the VM's index error does. Anything else
// returns nil and runs on the VM. TestNativeMatchesVM and FuzzCondition hold
// the two paths to the same results.

type nativeBool func(*evalCtx) (v, ok bool)
type nativeInt func(*evalCtx) (int, bool)
type nativeFloat func(*evalCtx) (float64, bool)
type nativeString func(*evalCtx) (string, bool)

type nkind int8

const (
	nkBool nkind = iota + 1
	nkInt
	nkFloat
	nkString
)

type nexpr struct {
	kind nkind
	b    nativeBool
	i    nativeInt
	f    nativeFloat
	s    nativeString

	// Set for the shapes the comparison specialises: a literal, or a typed
	// field of the current event.
	isConst bool
	ci      int
	cf      float64
	cs      string
	field   fieldID
}

func compileNative(root ast.Node, stages map[string]int32) nativeBool {
	n, ok := nativeOf(root, stages)
	if !ok || n.kind != nkBool {
		return nil
	}
	return n.b
}

func (n nexpr) asFloat() nativeFloat {
	if n.kind == nkFloat {
		return n.f
	}
	i := n.i
	return func(c *evalCtx) (float64, bool) {
		v, ok := i(c)
		return float64(v), ok
	}
}

func constFloat(v float64) nexpr {
	return nexpr{kind: nkFloat, isConst: true, cf: v, field: fieldNone,
		f: func(*evalCtx) (float64, bool) { return v, true }}
}

func constInt(v int) nexpr {
	return nexpr{kind: nkInt, isConst: true, ci: v, cf: float64(v), field: fieldNone,
		i: func(*evalCtx) (int, bool) { return v, true }}
}

func nativeOf(node ast.Node, stages map[string]int32) (nexpr, bool) {
	switch n := node.(type) {
	case *ast.IntegerNode:
		return constInt(n.Value), true
	case *ast.FloatNode:
		return constFloat(n.Value), true
	case *ast.StringNode:
		v := n.Value
		return nexpr{kind: nkString, isConst: true, cs: v, field: fieldNone,
			s: func(*evalCtx) (string, bool) { return v, true }}, true
	case *ast.BoolNode:
		v := n.Value
		return nexpr{kind: nkBool, field: fieldNone, b: func(*evalCtx) (bool, bool) { return v, true }}, true
	case *ast.IdentifierNode:
		if _, isStage := stages[n.Value]; isStage {
			return nexpr{}, false
		}
		return fieldOf(lookupField(n.Value), nil)
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || n.Optional || n.Method {
			return nexpr{}, false
		}
		stage, ok := stages[id.Value]
		if !ok {
			return nexpr{}, false
		}
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			return nexpr{}, false
		}
		return fieldOf(lookupField(prop.Value), &stage)
	case *ast.BuiltinNode:
		if n.Name != "len" || len(n.Arguments) != 1 {
			return nexpr{}, false
		}
		id, ok := n.Arguments[0].(*ast.IdentifierNode)
		if !ok {
			return nexpr{}, false
		}
		stage, ok := stages[id.Value]
		if !ok {
			return nexpr{}, false
		}
		return nexpr{kind: nkInt, field: fieldNone, i: func(c *evalCtx) (int, bool) {
			return countOf(c.tail, stage), true
		}}, true
	case *ast.UnaryNode:
		return nativeUnary(n, stages)
	case *ast.BinaryNode:
		return nativeBinary(n, stages)
	}
	return nexpr{}, false
}

// fieldOf reads a typed field of the current event (stage nil) or of the
// last event a stage accepted.
func fieldOf(f fieldID, stage *int32) (nexpr, bool) {
	if f == fieldNone || f == fieldTime {
		return nexpr{}, false
	}
	if stage == nil {
		if f == fieldMetricsValue {
			return nexpr{kind: nkFloat, field: f, f: func(c *evalCtx) (float64, bool) {
				return c.rec.ev.MetricsValue, true
			}}, true
		}
		return nexpr{kind: nkString, field: f, s: func(c *evalCtx) (string, bool) {
			return c.rec.ev.stringField(f), true
		}}, true
	}
	st := *stage
	if f == fieldMetricsValue {
		return nexpr{kind: nkFloat, field: fieldNone, f: func(c *evalCtx) (float64, bool) {
			r := lastOf(c.tail, st)
			if r == nil {
				return 0, false
			}
			return r.ev.MetricsValue, true
		}}, true
	}
	return nexpr{kind: nkString, field: fieldNone, s: func(c *evalCtx) (string, bool) {
		r := lastOf(c.tail, st)
		if r == nil {
			return "", false
		}
		return r.ev.stringField(f), true
	}}, true
}

func nativeUnary(n *ast.UnaryNode, stages map[string]int32) (nexpr, bool) {
	x, ok := nativeOf(n.Node, stages)
	if !ok {
		return nexpr{}, false
	}
	switch n.Operator {
	case "!", "not":
		if x.kind != nkBool {
			return nexpr{}, false
		}
		b := x.b
		return nexpr{kind: nkBool, field: fieldNone, b: func(c *evalCtx) (bool, bool) {
			v, ok := b(c)
			return !v, ok
		}}, true
	case "-":
		switch x.kind {
		case nkInt:
			if x.isConst {
				return constInt(-x.ci), true
			}
			i := x.i
			return nexpr{kind: nkInt, field: fieldNone, i: func(c *evalCtx) (int, bool) {
				v, ok := i(c)
				return -v, ok
			}}, true
		case nkFloat:
			if x.isConst {
				return constFloat(-x.cf), true
			}
			f := x.f
			return nexpr{kind: nkFloat, field: fieldNone, f: func(c *evalCtx) (float64, bool) {
				v, ok := f(c)
				return -v, ok
			}}, true
		}
	case "+":
		if x.kind == nkInt || x.kind == nkFloat {
			return x, true
		}
	}
	return nexpr{}, false
}

func nativeBinary(n *ast.BinaryNode, stages map[string]int32) (nexpr, bool) {
	l, ok := nativeOf(n.Left, stages)
	if !ok {
		return nexpr{}, false
	}
	r, ok := nativeOf(n.Right, stages)
	if !ok {
		return nexpr{}, false
	}
	switch n.Operator {
	case "&&", "and", "||", "or":
		if l.kind != nkBool || r.kind != nkBool {
			return nexpr{}, false
		}
		lb, rb := l.b, r.b
		if n.Operator == "&&" || n.Operator == "and" {
			return nexpr{kind: nkBool, field: fieldNone, b: func(c *evalCtx) (bool, bool) {
				v, ok := lb(c)
				if !ok || !v {
					return false, ok
				}
				return rb(c)
			}}, true
		}
		return nexpr{kind: nkBool, field: fieldNone, b: func(c *evalCtx) (bool, bool) {
			v, ok := lb(c)
			if !ok || v {
				return v, ok
			}
			return rb(c)
		}}, true
	case "+", "-", "*", "/":
		return nativeArith(n.Operator, l, r)
	case "==", "!=", "<", "<=", ">", ">=":
		return nativeCompare(n.Operator, l, r)
	}
	return nexpr{}, false
}

func isNum(k nkind) bool { return k == nkInt || k == nkFloat }

func nativeArith(op string, l, r nexpr) (nexpr, bool) {
	if !isNum(l.kind) || !isNum(r.kind) {
		return nexpr{}, false
	}
	if l.kind == nkInt && r.kind == nkInt && op != "/" {
		li, ri := l.i, r.i
		var fn nativeInt
		switch op {
		case "+":
			fn = func(c *evalCtx) (int, bool) {
				a, ok1 := li(c)
				b, ok2 := ri(c)
				return a + b, ok1 && ok2
			}
		case "-":
			fn = func(c *evalCtx) (int, bool) {
				a, ok1 := li(c)
				b, ok2 := ri(c)
				return a - b, ok1 && ok2
			}
		default:
			fn = func(c *evalCtx) (int, bool) {
				a, ok1 := li(c)
				b, ok2 := ri(c)
				return a * b, ok1 && ok2
			}
		}
		return nexpr{kind: nkInt, field: fieldNone, i: fn}, true
	}
	lf, rf := l.asFloat(), r.asFloat()
	var fn nativeFloat
	switch op {
	case "+":
		fn = func(c *evalCtx) (float64, bool) {
			a, ok1 := lf(c)
			b, ok2 := rf(c)
			return a + b, ok1 && ok2
		}
	case "-":
		fn = func(c *evalCtx) (float64, bool) {
			a, ok1 := lf(c)
			b, ok2 := rf(c)
			return a - b, ok1 && ok2
		}
	case "*":
		fn = func(c *evalCtx) (float64, bool) {
			a, ok1 := lf(c)
			b, ok2 := rf(c)
			return a * b, ok1 && ok2
		}
	default:
		fn = func(c *evalCtx) (float64, bool) {
			a, ok1 := lf(c)
			b, ok2 := rf(c)
			return a / b, ok1 && ok2
		}
	}
	return nexpr{kind: nkFloat, field: fieldNone, f: fn}, true
}

func nativeCompare(op string, l, r nexpr) (nexpr, bool) {
	switch {
	case isNum(l.kind) && isNum(r.kind):
		if l.kind == nkInt && r.kind == nkInt {
			return compareInts(op, l.i, r.i), true
		}
		// metricsValue OP literal: the threshold shape, one closure.
		if l.field == fieldMetricsValue && r.isConst {
			return compareValueConst(op, r.cf), true
		}
		if r.field == fieldMetricsValue && l.isConst {
			return compareValueConst(flip(op), l.cf), true
		}
		return compareFloats(op, l.asFloat(), r.asFloat()), true
	case l.kind == nkString && r.kind == nkString:
		if l.field.isString() && r.isConst && (op == "==" || op == "!=") {
			f, k, eq := l.field, r.cs, op == "=="
			return nexpr{kind: nkBool, field: fieldNone, b: func(c *evalCtx) (bool, bool) {
				return (c.rec.ev.stringField(f) == k) == eq, true
			}}, true
		}
		return compareStrings(op, l.s, r.s), true
	case l.kind == nkBool && r.kind == nkBool && (op == "==" || op == "!="):
		lb, rb, eq := l.b, r.b, op == "=="
		return nexpr{kind: nkBool, field: fieldNone, b: func(c *evalCtx) (bool, bool) {
			a, ok1 := lb(c)
			if !ok1 {
				return false, false
			}
			b, ok2 := rb(c)
			return (a == b) == eq, ok2
		}}, true
	}
	return nexpr{}, false
}

// flip mirrors a comparison so that its operands can be swapped.
func flip(op string) string {
	switch op {
	case "<":
		return ">"
	case "<=":
		return ">="
	case ">":
		return "<"
	case ">=":
		return "<="
	}
	return op
}

func compareValueConst(op string, k float64) nexpr {
	var fn nativeBool
	switch op {
	case "==":
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue == k, true }
	case "!=":
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue != k, true }
	case "<":
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue < k, true }
	case "<=":
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue <= k, true }
	case ">":
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue > k, true }
	default:
		fn = func(c *evalCtx) (bool, bool) { return c.rec.ev.MetricsValue >= k, true }
	}
	return nexpr{kind: nkBool, field: fieldNone, b: fn}
}

func compareFloats(op string, l, r nativeFloat) nexpr {
	var fn nativeBool
	switch op {
	case "==":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a == b, ok1 && ok2 }
	case "!=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a != b, ok1 && ok2 }
	case "<":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a < b, ok1 && ok2 }
	case "<=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a <= b, ok1 && ok2 }
	case ">":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a > b, ok1 && ok2 }
	default:
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a >= b, ok1 && ok2 }
	}
	return nexpr{kind: nkBool, field: fieldNone, b: fn}
}

func compareInts(op string, l, r nativeInt) nexpr {
	var fn nativeBool
	switch op {
	case "==":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a == b, ok1 && ok2 }
	case "!=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a != b, ok1 && ok2 }
	case "<":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a < b, ok1 && ok2 }
	case "<=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a <= b, ok1 && ok2 }
	case ">":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a > b, ok1 && ok2 }
	default:
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a >= b, ok1 && ok2 }
	}
	return nexpr{kind: nkBool, field: fieldNone, b: fn}
}

func compareStrings(op string, l, r nativeString) nexpr {
	var fn nativeBool
	switch op {
	case "==":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a == b, ok1 && ok2 }
	case "!=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a != b, ok1 && ok2 }
	case "<":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a < b, ok1 && ok2 }
	case "<=":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a <= b, ok1 && ok2 }
	case ">":
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a > b, ok1 && ok2 }
	default:
		fn = func(c *evalCtx) (bool, bool) { a, ok1 := l(c); b, ok2 := r(c); return a >= b, ok1 && ok2 }
	}
	return nexpr{kind: nkBool, field: fieldNone, b: fn}
}
