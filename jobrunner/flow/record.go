package flow

import (
	"fmt"
	"math"
	"strconv"
)

// Kind is the type of a Value.
type Kind uint8

// Kinds of values.
const (
	KindNull Kind = iota
	KindInt
	KindFloat
	KindString
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	}
	return "null"
}

// ParseKind parses a type name of a spec: int, float, string, bool.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "int":
		return KindInt, nil
	case "float":
		return KindFloat, nil
	case "string":
		return KindString, nil
	case "bool":
		return KindBool, nil
	}
	return KindNull, fmt.Errorf("unknown type %q (want int, float, string or bool)", s)
}

// Value is one field of a record. It is a small struct rather than an
// interface so that records carry numbers without allocating, and numbers
// share one word so that a value is 32 bytes: rows are copied between
// subtasks.
type Value struct {
	Kind Kind
	n    uint64 // KindInt and KindBool (0 or 1): the int64; KindFloat: the float64's bits
	S    string // KindString
}

// Int, Float, String, Bool and Null build values.
func Int(i int64) Value     { return Value{Kind: KindInt, n: uint64(i)} }
func Float(f float64) Value { return Value{Kind: KindFloat, n: math.Float64bits(f)} }
func String(s string) Value { return Value{Kind: KindString, S: s} }
func Null() Value           { return Value{} }
func Bool(b bool) Value {
	if b {
		return Value{Kind: KindBool, n: 1}
	}
	return Value{Kind: KindBool}
}

// Int is the number of a KindInt value, 1 or 0 for a KindBool, else 0.
func (v Value) Int() int64 {
	if v.Kind == KindFloat {
		return 0
	}
	return int64(v.n)
}

// Float is the number of a KindFloat value, else 0.
func (v Value) Float() float64 {
	if v.Kind != KindFloat {
		return 0
	}
	return math.Float64frombits(v.n)
}

// Number returns the value as a float64, and false if it is not numeric.
func (v Value) Number() (float64, bool) {
	switch v.Kind {
	case KindInt:
		return float64(v.Int()), true
	case KindFloat:
		return v.Float(), true
	}
	return 0, false
}

// Any returns the value as a Go value (int64, float64, string, bool or nil),
// the form expressions work on.
func (v Value) Any() any {
	switch v.Kind {
	case KindInt:
		return v.Int()
	case KindFloat:
		return v.Float()
	case KindString:
		return v.S
	case KindBool:
		return v.Int() != 0
	}
	return nil
}

// FromAny converts a Go value produced by an expression or a JSON decoder.
func FromAny(x any) (Value, error) {
	switch t := x.(type) {
	case nil:
		return Null(), nil
	case int:
		return Int(int64(t)), nil
	case int64:
		return Int(t), nil
	case int32:
		return Int(int64(t)), nil
	case float64:
		return Float(t), nil
	case float32:
		return Float(float64(t)), nil
	case string:
		return String(t), nil
	case bool:
		return Bool(t), nil
	}
	return Null(), fmt.Errorf("a %T cannot be a field value", x)
}

// KeyString is the text form of a value used as a key.
func (v Value) KeyString() string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int(), 10)
	case KindFloat:
		if v.Float() == math.Trunc(v.Float()) && math.Abs(v.Float()) < 1e15 {
			return strconv.FormatInt(int64(v.Float()), 10)
		}
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case KindString:
		return v.S
	case KindBool:
		return strconv.FormatBool(v.Int() != 0)
	}
	return ""
}

// Schema names the fields of the records of one stream, in order.
type Schema struct {
	Names []string
	Kinds []Kind
	index map[string]int
}

// NewSchema builds a schema; names must be distinct.
func NewSchema(names []string, kinds []Kind) (*Schema, error) {
	if len(names) != len(kinds) {
		return nil, fmt.Errorf("flow: %d field names, %d kinds", len(names), len(kinds))
	}
	s := &Schema{Names: names, Kinds: kinds, index: make(map[string]int, len(names))}
	for i, n := range names {
		if _, dup := s.index[n]; dup {
			return nil, fmt.Errorf("field %q appears twice", n)
		}
		s.index[n] = i
	}
	return s, nil
}

// Index returns the position of a field, and false if the schema lacks it.
func (s *Schema) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Record is one element of a stream.
type Record struct {
	// Time is the record's event time (or processing time) in epoch ms.
	Time int64
	// Key, KeyHash (state.KeyHash of Key) and KeyGroup are set by key-by.
	Key      string
	KeyHash  uint64
	KeyGroup int
	// Row holds the fields, in the order of the stream's schema.
	Row []Value
}

// Batch is the unit handed from one subtask to another.
type Batch struct {
	Records []Record
}

// Emitter receives records from an operator. The record (and its Row) may be
// reused by the caller after Emit returns; an emitter that keeps it copies it.
type Emitter interface {
	Emit(r *Record) error
}

// EmitterFunc adapts a function to Emitter.
type EmitterFunc func(r *Record) error

// Emit implements Emitter.
func (f EmitterFunc) Emit(r *Record) error { return f(r) }
