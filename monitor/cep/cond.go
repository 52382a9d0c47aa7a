package cep

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// maxConditionLen bounds the source of one condition; conditions come from
// rule files, and a bound keeps a hostile file from costing unbounded time.
const maxConditionLen = 4096

type identKind int8

const (
	identField identKind = iota // a typed field of the current event
	identLabel                  // a label of the current event
	identRef                    // the events a stage accepted earlier in the partial match
)

type identUse struct {
	name  string
	kind  identKind
	field fieldID
	stage int32
}

// condition is one compiled Where, Or or Until expression. program runs it
// on the expression VM; native, when the expression is in the subset the
// fast path understands, computes the same result without the VM and
// without allocating.
type condition struct {
	src     string
	program *vm.Program
	native  nativeBool
	uses    []identUse
	refs    bool // depends on the partial match, not only on the event
}

// refType is the type of a stage reference in the expression environment:
// the accepted events, oldest first, each as a map of its fields.
var refType = []map[string]any{}

// compileCondition compiles src once. stages maps stage names to their
// index; those names are the identifiers that refer to earlier events.
func compileCondition(src string, stages map[string]int32) (c *condition, err error) {
	defer func() {
		// rule files are outside input: a panic in the expression compiler
		// must not take the caller down
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("condition does not compile: %v", r)
		}
	}()
	if len(src) > maxConditionLen {
		return nil, fmt.Errorf("condition longer than %d bytes", maxConditionLen)
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, err
	}
	c = &condition{src: src}
	locals := map[string]bool{}
	callees := map[ast.Node]bool{}
	collectLocals(tree.Node, locals, callees)
	seen := map[string]bool{}
	var walkErr error
	visitAll(tree.Node, func(n ast.Node) {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || callees[n] || locals[id.Value] || seen[id.Value] {
			return
		}
		seen[id.Value] = true
		if idx, ok := stages[id.Value]; ok {
			c.uses = append(c.uses, identUse{name: id.Value, kind: identRef, stage: idx})
			c.refs = true
			return
		}
		if f := lookupField(id.Value); f != fieldNone {
			c.uses = append(c.uses, identUse{name: id.Value, kind: identField, field: f})
			return
		}
		if len(id.Value) > 0 && id.Value[0] == '$' {
			walkErr = fmt.Errorf("identifier %q is reserved", id.Value)
			return
		}
		c.uses = append(c.uses, identUse{name: id.Value, kind: identLabel})
	})
	if walkErr != nil {
		return nil, walkErr
	}

	env := map[string]any{
		fieldNames[fieldTime]:         time.Time{},
		fieldNames[fieldJobID]:        "",
		fieldNames[fieldTMID]:         "",
		fieldNames[fieldHostname]:     "",
		fieldNames[fieldMetricsName]:  "",
		fieldNames[fieldMetricsKey]:   "",
		fieldNames[fieldMetricsValue]: 0.0,
	}
	for name := range stages {
		env[name] = refType
	}
	c.program, err = expr.Compile(src,
		expr.Env(env),
		expr.AllowUndefinedVariables(),
		expr.AsBool(),
		expr.Patch(refPatcher{stages: stages}),
		// The optimizer folds "x && false" to false even where x would
		// fail at run time; without it a condition fails exactly when an
		// operand it evaluates fails, which the fast path reproduces.
		expr.Optimize(false),
	)
	if err != nil {
		return nil, err
	}
	c.native = compileNative(tree.Node, stages)
	return c, nil
}

// refPatcher rewrites e1.field, where e1 names a stage, into e1[-1].field:
// a stage reference is the list of its accepted events, and member access
// on it reads the most recent one.
type refPatcher struct{ stages map[string]int32 }

func (r refPatcher) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	if _, ok := r.stages[id.Value]; !ok {
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

// collectLocals finds the names bound by let and the identifiers that name
// called functions: neither is an event field.
func collectLocals(root ast.Node, locals map[string]bool, callees map[ast.Node]bool) {
	visitAll(root, func(n ast.Node) {
		switch n := n.(type) {
		case *ast.VariableDeclaratorNode:
			locals[n.Name] = true
		case *ast.CallNode:
			callees[n.Callee] = true
		}
	})
}

type funcVisitor func(ast.Node)

func (f funcVisitor) Visit(n *ast.Node) { f(*n) }

func visitAll(root ast.Node, f func(ast.Node)) {
	ast.Walk(&root, funcVisitor(f))
}

// evalCtx is what a condition sees: the event under test and the partial
// match it would extend.
type evalCtx struct {
	rec  *record
	tail *node
}

// lastOf returns the most recent event accepted by stage in the partial
// match ending at tail.
func lastOf(tail *node, stage int32) *record {
	for n := tail; n != nil; n = n.prev {
		if n.stage == stage {
			return n.rec
		}
	}
	return nil
}

func countOf(tail *node, stage int32) int {
	k := 0
	for n := tail; n != nil; n = n.prev {
		if n.stage == stage {
			k++
		}
	}
	return k
}

// refViews returns the events accepted by stage, oldest first, as the
// expression VM sees them.
func refViews(tail *node, stage int32) []map[string]any {
	k := countOf(tail, stage)
	out := make([]map[string]any, k)
	for n := tail; n != nil; n = n.prev {
		if n.stage == stage {
			k--
			out[k] = n.rec.exprView()
		}
	}
	return out
}

// boxField returns a typed field as the VM sees it.
func boxField(ev *Event, f fieldID) any {
	switch {
	case f == fieldTime:
		return ev.Time
	case f == fieldMetricsValue:
		return ev.MetricsValue
	}
	return ev.stringField(f)
}

// condRuntime runs conditions on the expression VM. It is owned by one
// Engine: the VM and the environment map are reused between runs.
type condRuntime struct {
	vm  vm.VM
	env map[string]any
}

// evalVM runs c on the VM; ok is false when the expression failed at run
// time (a missing label compared with a number, an empty stage reference).
func (rt *condRuntime) evalVM(c *condition, ctx *evalCtx) (result, ok bool) {
	if rt.env == nil {
		rt.env = make(map[string]any)
	}
	for _, u := range c.uses {
		switch u.kind {
		case identField:
			rt.env[u.name] = boxField(&ctx.rec.ev, u.field)
		case identLabel:
			rt.env[u.name] = ctx.rec.ev.Labels[u.name]
		case identRef:
			rt.env[u.name] = refViews(ctx.tail, u.stage)
		}
	}
	out, err := rt.vm.Run(c.program, rt.env)
	if err != nil {
		return false, false
	}
	b, isBool := out.(bool)
	return b, isBool
}
