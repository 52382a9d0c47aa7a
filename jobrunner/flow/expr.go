package flow

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/tidewatch/tidewatch/state"
)

// Record ownership in the stateless operators: Filter and KeyBy forward the
// record they were given (KeyBy after setting its Key and KeyGroup, the only
// fields a receiving operator may change); Map and FlatMap emit a record of
// their own, reused for every output, so a receiver that keeps a record must
// copy it, as the Emitter contract says. None keeps a record after Process
// returns.

// ErrExpr is wrapped by every error about an expression an operator could
// not compile; the *ExprError says which expression and what is wrong.
var ErrExpr = errors.New("flow: invalid expression")

// ErrRow is wrapped when a record does not have the shape of its schema, a
// bug upstream rather than bad data.
var ErrRow = errors.New("flow: record does not match its schema")

// ExprError reports an expression an operator rejected at construction.
type ExprError struct {
	Op   string // which operator and which part: "filter", "map field \"total\"", "key-by"
	Expr string
	Msg  string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("flow: %s expression %q: %s", e.Op, e.Expr, e.Msg)
}

// Unwrap lets callers test with errors.Is(err, ErrExpr).
func (e *ExprError) Unwrap() error { return ErrExpr }

// compiled is one expression compiled against a schema.
type compiled struct {
	src  string
	prog *vm.Program
	typ  reflect.Type // static result type; interface{} when only known at run time
	// reads are the schema positions the expression refers to, so that only
	// those are boxed into the env for each record.
	reads []int
	// field is the schema position when the expression is a bare field name,
	// which operators read directly without the VM; -1 otherwise.
	field int
}

// compileExpr compiles src once against the schema. The env holds a typed
// zero value per field, so the checker rejects unknown names and type
// mismatches here rather than on the first record.
func compileExpr(op, src string, in *Schema) (*compiled, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Op: op, Expr: src, Msg: "empty expression"}
	}
	if in == nil {
		return nil, &ExprError{Op: op, Expr: src, Msg: "no input schema"}
	}
	c := &compiled{src: src, field: -1}
	if i, ok := in.Index(strings.TrimSpace(src)); ok {
		c.field = i
		c.reads = []int{i}
		c.typ = goType(in.Kinds[i])
		return c, nil
	}
	env := make(map[string]any, len(in.Names))
	for i, n := range in.Names {
		env[n] = zeroOf(in.Kinds[i])
	}
	prog, err := expr.Compile(src, expr.Env(env))
	if err != nil {
		return nil, &ExprError{Op: op, Expr: src, Msg: exprMessage(err)}
	}
	c.prog = prog
	node := prog.Node()
	c.typ = node.Type()
	v := &identVisitor{in: in, seen: map[int]bool{}}
	ast.Walk(&node, v)
	c.reads = v.reads
	return c, nil
}

// exprMessage keeps expr's message and position but drops its multi-line
// source snippet: the error already quotes the expression.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Line > 0 {
			return fmt.Sprintf("%s (at %d:%d)", fe.Message, fe.Line, fe.Column+1)
		}
		return fe.Message
	}
	return err.Error()
}

type identVisitor struct {
	in    *Schema
	seen  map[int]bool
	reads []int
}

func (v *identVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	// A let-variable shadowing a field would also match; boxing that field
	// needlessly is harmless.
	if i, ok := v.in.Index(id.Value); ok && !v.seen[i] {
		v.seen[i] = true
		v.reads = append(v.reads, i)
	}
}

func zeroOf(k Kind) any {
	switch k {
	case KindInt:
		return int64(0)
	case KindFloat:
		return float64(0)
	case KindString:
		return ""
	case KindBool:
		return false
	}
	return nil
}

func goType(k Kind) reflect.Type {
	if z := zeroOf(k); z != nil {
		return reflect.TypeOf(z)
	}
	return anyType
}

var anyType = reflect.TypeFor[any]()

// kindOfType maps an expression's static type to a field kind. known is
// false for interface{} (decided per record); ok is false for types that
// can never be a field value (lists, maps, structs, functions).
func kindOfType(t reflect.Type) (k Kind, known, ok bool) {
	if t == nil || t.Kind() == reflect.Interface {
		return KindNull, false, true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return KindInt, true, true
	case reflect.Float32, reflect.Float64:
		return KindFloat, true, true
	case reflect.String:
		return KindString, true, true
	case reflect.Bool:
		return KindBool, true, true
	}
	return KindNull, false, false
}

// toValue converts an expression result; it accepts every Go type the
// checker may call int, unlike FromAny.
func toValue(x any) (Value, error) {
	switch t := x.(type) {
	case int8:
		return Int(int64(t)), nil
	case int16:
		return Int(int64(t)), nil
	case uint:
		return Int(int64(t)), nil
	case uint8:
		return Int(int64(t)), nil
	case uint16:
		return Int(int64(t)), nil
	case uint32:
		return Int(int64(t)), nil
	case uint64:
		return Int(int64(t)), nil
	}
	return FromAny(x)
}

// exprEnv is the run-time side of one operator instance: one env map and
// one VM reused for every record, so evaluation allocates no map.
type exprEnv struct {
	in    *Schema
	env   map[string]any
	reads []int
	vm    vm.VM
}

func newExprEnv(in *Schema, cs ...*compiled) *exprEnv {
	e := &exprEnv{in: in, env: make(map[string]any, len(in.Names))}
	seen := map[int]bool{}
	for _, c := range cs {
		if c.prog == nil {
			continue // bare field: read directly
		}
		for _, i := range c.reads {
			if !seen[i] {
				seen[i] = true
				e.reads = append(e.reads, i)
			}
		}
	}
	return e
}

// load puts the fields the expressions read into the env.
func (e *exprEnv) load(r *Record) error {
	if len(r.Row) != len(e.in.Names) {
		return fmt.Errorf("%w: %d fields, schema has %d", ErrRow, len(r.Row), len(e.in.Names))
	}
	for _, i := range e.reads {
		e.env[e.in.Names[i]] = r.Row[i].Any()
	}
	return nil
}

// eval evaluates c on the loaded record.
func (e *exprEnv) eval(c *compiled, r *Record) (Value, error) {
	if c.prog == nil {
		return r.Row[c.field], nil
	}
	out, err := e.vm.Run(c.prog, e.env)
	if err != nil {
		return Value{}, fmt.Errorf("flow: expression %q: %s", c.src, exprMessage(err))
	}
	v, err := toValue(out)
	if err != nil {
		return Value{}, fmt.Errorf("flow: expression %q: %w", c.src, err)
	}
	return v, nil
}

// Filter forwards the records for which a boolean expression is true. It
// forwards the record it was given, unchanged.
type Filter struct {
	c   *compiled
	env *exprEnv
	out Emitter
}

// NewFilter compiles a boolean expression over the fields of in, e.g.
// `amount > 100 && country == "NL"`.
func NewFilter(src string, in *Schema, out Emitter) (*Filter, error) {
	c, err := compileExpr("filter", src, in)
	if err != nil {
		return nil, err
	}
	k, known, _ := kindOfType(c.typ)
	if (known && k != KindBool) || (!known && c.typ != nil && c.typ.Kind() != reflect.Interface) {
		return nil, &ExprError{Op: "filter", Expr: src, Msg: fmt.Sprintf("result is %v, want bool", c.typ)}
	}
	return &Filter{c: c, env: newExprEnv(in, c), out: out}, nil
}

// Process evaluates the predicate and forwards r if it holds.
func (f *Filter) Process(r *Record) error {
	if err := f.env.load(r); err != nil {
		return err
	}
	v, err := f.env.eval(f.c, r)
	if err != nil {
		return err
	}
	if v.Kind != KindBool {
		return fmt.Errorf("flow: filter expression %q: result is %v, want bool", f.c.src, v.Kind)
	}
	if v.Int() == 0 {
		return nil
	}
	return f.out.Emit(r)
}

// FieldExpr is one output field of a Map: Name = Expr. An empty Expr means
// the field of that name, copied.
type FieldExpr struct {
	Name string
	Expr string
}

// Map computes a new record per input record: exactly the listed fields, in
// order. It emits a record of its own (reused for every input), carrying the
// input's Time, Key and KeyGroup.
type Map struct {
	cols []mapCol
	env  *exprEnv
	sch  *Schema
	out  Emitter
	rec  Record
}

type mapCol struct {
	c    *compiled
	kind Kind
}

// NewMap compiles each field expression against in. An expression that is
// just a field name copies that field; otherwise the field's kind is the
// expression's static type (int, float, string or bool), and an expression
// whose type is unknown until run time or is not a scalar is rejected.
func NewMap(fields []FieldExpr, in *Schema, out Emitter) (*Map, error) {
	if len(fields) == 0 {
		return nil, errors.New("flow: map needs at least one field")
	}
	m := &Map{out: out}
	names := make([]string, len(fields))
	kinds := make([]Kind, len(fields))
	cs := make([]*compiled, len(fields))
	for i, f := range fields {
		if f.Name == "" {
			return nil, fmt.Errorf("flow: map field %d has no name", i)
		}
		src := f.Expr
		if strings.TrimSpace(src) == "" {
			src = f.Name
		}
		op := fmt.Sprintf("map field %q", f.Name)
		c, err := compileExpr(op, src, in)
		if err != nil {
			return nil, err
		}
		var k Kind
		if c.prog == nil {
			k = in.Kinds[c.field]
		} else {
			kk, known, ok := kindOfType(c.typ)
			switch {
			case !ok:
				return nil, &ExprError{Op: op, Expr: src, Msg: fmt.Sprintf("result is %v, which cannot be a field value (want int, float, string or bool)", c.typ)}
			case !known:
				return nil, &ExprError{Op: op, Expr: src, Msg: "result type is only known at run time; convert it with int(), float() or string()"}
			}
			k = kk
		}
		names[i], kinds[i], cs[i] = f.Name, k, c
		m.cols = append(m.cols, mapCol{c: c, kind: k})
	}
	sch, err := NewSchema(names, kinds)
	if err != nil {
		return nil, fmt.Errorf("flow: map: %w", err)
	}
	m.sch = sch
	m.env = newExprEnv(in, cs...)
	m.rec.Row = make([]Value, len(fields))
	return m, nil
}

// OutSchema is the schema of the emitted records.
func (m *Map) OutSchema() *Schema { return m.sch }

// Process computes and emits the output record.
func (m *Map) Process(r *Record) error {
	if err := m.env.load(r); err != nil {
		return err
	}
	row := m.rec.Row
	for i := range m.cols {
		v, err := m.env.eval(m.cols[i].c, r)
		if err != nil {
			return err
		}
		// The checker may type an expression float that yields an int
		// constant at run time (and int/uint widths vary); settle on the
		// schema's kind.
		if m.cols[i].kind == KindFloat && v.Kind == KindInt {
			v = Float(float64(v.Int()))
		}
		row[i] = v
	}
	m.rec.Time, m.rec.Key, m.rec.KeyHash, m.rec.KeyGroup = r.Time, r.Key, r.KeyHash, r.KeyGroup
	return m.out.Emit(&m.rec)
}

// FlatMap splits a string field by a separator and emits one record per
// non-empty part, with the part in field As. It emits a record of its own,
// reused for every part.
type FlatMap struct {
	field, as int
	sep       string
	n         int
	sch       *Schema
	out       Emitter
	rec       Record
}

// NewFlatMap builds the "split" flat-map. If as names a field of in, that
// field is replaced (and becomes a string); otherwise as is appended.
func NewFlatMap(field, separator, as string, in *Schema, out Emitter) (*FlatMap, error) {
	if in == nil {
		return nil, errors.New("flow: flat-map: no input schema")
	}
	fi, ok := in.Index(field)
	if !ok {
		return nil, fmt.Errorf("flow: flat-map: unknown field %q", field)
	}
	if in.Kinds[fi] != KindString {
		return nil, fmt.Errorf("flow: flat-map: field %q is %v, want string", field, in.Kinds[fi])
	}
	if separator == "" {
		return nil, errors.New("flow: flat-map: empty separator")
	}
	if as == "" {
		return nil, errors.New("flow: flat-map: empty output field name")
	}
	names := append([]string(nil), in.Names...)
	kinds := append([]Kind(nil), in.Kinds...)
	ai, ok := in.Index(as)
	if ok {
		kinds[ai] = KindString
	} else {
		ai = len(names)
		names = append(names, as)
		kinds = append(kinds, KindString)
	}
	sch, err := NewSchema(names, kinds)
	if err != nil {
		return nil, fmt.Errorf("flow: flat-map: %w", err)
	}
	return &FlatMap{field: fi, as: ai, sep: separator, n: len(in.Names), sch: sch, out: out,
		rec: Record{Row: make([]Value, len(names))}}, nil
}

// OutSchema is the schema of the emitted records.
func (f *FlatMap) OutSchema() *Schema { return f.sch }

// Process emits one record per non-empty part; a null field emits nothing.
func (f *FlatMap) Process(r *Record) error {
	if len(r.Row) != f.n {
		return fmt.Errorf("%w: %d fields, schema has %d", ErrRow, len(r.Row), f.n)
	}
	v := r.Row[f.field]
	if v.Kind != KindString {
		return nil
	}
	copy(f.rec.Row, r.Row)
	s := v.S
	for {
		part, rest, found := strings.Cut(s, f.sep)
		if part != "" {
			f.rec.Row[f.as] = String(part)
			// Reset per part: a downstream key-by sets Key/KeyGroup on the
			// record it is handed.
			f.rec.Time, f.rec.Key, f.rec.KeyHash, f.rec.KeyGroup = r.Time, r.Key, r.KeyHash, r.KeyGroup
			if err := f.out.Emit(&f.rec); err != nil {
				return err
			}
		}
		if !found {
			return nil
		}
		s = rest
	}
}

// KeyBy sets each record's Key (the key expression's KeyString) and
// KeyGroup, and forwards the same record. Inside a subtask it precedes the
// shuffle by key group and the keyed operators.
type KeyBy struct {
	c      *compiled
	env    *exprEnv
	maxPar int
	out    Emitter
}

// NewKeyBy compiles the key expression; a bare field name is read directly.
func NewKeyBy(src string, in *Schema, maxParallelism int, out Emitter) (*KeyBy, error) {
	if maxParallelism < state.MinMaxParallelism || maxParallelism > state.MaxMaxParallelism {
		return nil, fmt.Errorf("flow: key-by: max parallelism %d outside [%d, %d]",
			maxParallelism, state.MinMaxParallelism, state.MaxMaxParallelism)
	}
	c, err := compileExpr("key-by", src, in)
	if err != nil {
		return nil, err
	}
	if _, _, ok := kindOfType(c.typ); !ok {
		return nil, &ExprError{Op: "key-by", Expr: src, Msg: fmt.Sprintf("result is %v, which cannot be a key (want int, float, string or bool)", c.typ)}
	}
	return &KeyBy{c: c, env: newExprEnv(in, c), maxPar: maxParallelism, out: out}, nil
}

// Process keys r and forwards it.
func (k *KeyBy) Process(r *Record) error {
	var v Value
	if k.c.prog == nil {
		if k.c.field >= len(r.Row) {
			return fmt.Errorf("%w: %d fields, key field at %d", ErrRow, len(r.Row), k.c.field)
		}
		v = r.Row[k.c.field]
	} else {
		if err := k.env.load(r); err != nil {
			return err
		}
		var err error
		if v, err = k.env.eval(k.c, r); err != nil {
			return err
		}
	}
	r.Key = v.KeyString()
	r.KeyHash = state.KeyHash(r.Key)
	r.KeyGroup = state.KeyGroupOfHash(r.KeyHash, k.maxPar)
	return k.out.Emit(r)
}
