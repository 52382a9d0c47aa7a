package flow

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/state"
)

// orderSchema is the input of the expression tests.
func orderSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema(
		[]string{"amount", "price", "country", "vip", "tags"},
		[]Kind{KindInt, KindFloat, KindString, KindBool, KindString})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func order(amount int64, price float64, country string, vip bool, tags string) Record {
	return Record{Time: 42, Row: []Value{Int(amount), Float(price), String(country), Bool(vip), String(tags)}}
}

// collect is an Emitter that copies what it receives, as an emitter that
// keeps records must.
type collect struct{ recs []Record }

func (c *collect) Emit(r *Record) error {
	cp := *r
	cp.Row = slices.Clone(r.Row)
	c.recs = append(c.recs, cp)
	return nil
}

func TestFilter(t *testing.T) {
	in := orderSchema(t)
	rows := []Record{
		order(5, 1.5, "NL", false, ""),
		order(50, 10, "DE", true, "x"),
		order(500, 0.25, "NL", true, "y,z"),
	}
	tests := []struct {
		expr string
		want []int64 // amounts passing
	}{
		{"amount > 10", []int64{50, 500}},
		{`country == "NL"`, []int64{5, 500}},
		{"vip", []int64{50, 500}},
		{"amount * price >= 100", []int64{50, 500}},
		{`vip && country != "DE"`, []int64{500}},
		{`tags contains "z" || amount < 10`, []int64{5, 500}},
		{"false", nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			var c collect
			f, err := NewFilter(tt.expr, in, &c)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				r := rows[i]
				if err := f.Process(&r); err != nil {
					t.Fatal(err)
				}
			}
			var got []int64
			for _, r := range c.recs {
				got = append(got, r.Row[0].Int())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("passed %v, want %v", got, tt.want)
			}
		})
	}
}

// TestExprCompileErrors checks that each bad expression fails at
// construction, names the expression, and says what is wrong.
func TestExprCompileErrors(t *testing.T) {
	in := orderSchema(t)
	discard := EmitterFunc(func(*Record) error { return nil })
	tests := []struct {
		name  string
		build func(src string) error
		src   string
		want  string // in the message
	}{
		{"filter unknown field", filterBuilder(in, discard), "amonut > 1", "unknown name amonut"},
		{"filter type mismatch", filterBuilder(in, discard), `amount > "10"`, "mismatched types int64 and string"},
		{"filter not boolean", filterBuilder(in, discard), "amount + 1", "result is int, want bool"},
		{"filter bare non-bool field", filterBuilder(in, discard), "country", "result is string, want bool"},
		{"filter syntax", filterBuilder(in, discard), "amount >", "unexpected token"},
		{"filter empty", filterBuilder(in, discard), " ", "empty expression"},
		{"map unknown field", mapBuilder(in, discard), "cost * 2", "unknown name cost"},
		{"map type mismatch", mapBuilder(in, discard), `country * 2`, "mismatched types string and int"},
		{"map list", mapBuilder(in, discard), "[amount, price]", "cannot be a field value"},
		{"map run-time type", mapBuilder(in, discard), `vip ? 1 : "no"`, "only known at run time"},
		{"key-by unknown field", keyByBuilder(in, discard), "customer", "unknown name customer"},
		{"key-by list", keyByBuilder(in, discard), `split(tags, ",")`, "cannot be a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build(tt.src)
			if !errors.Is(err, ErrExpr) {
				t.Fatalf("err = %v, want an ErrExpr", err)
			}
			var ee *ExprError
			if !errors.As(err, &ee) || ee.Expr != tt.src {
				t.Fatalf("err = %v, want an *ExprError for %q", err, tt.src)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), strconv.Quote(tt.src)) {
				t.Errorf("message %q does not name the expression and %q", err, tt.want)
			}
		})
	}
}

func filterBuilder(in *Schema, out Emitter) func(string) error {
	return func(src string) error { _, err := NewFilter(src, in, out); return err }
}

func mapBuilder(in *Schema, out Emitter) func(string) error {
	return func(src string) error {
		_, err := NewMap([]FieldExpr{{Name: "x", Expr: src}}, in, out)
		return err
	}
}

func keyByBuilder(in *Schema, out Emitter) func(string) error {
	return func(src string) error { _, err := NewKeyBy(src, in, 128, out); return err }
}

func TestMap(t *testing.T) {
	in := orderSchema(t)
	var c collect
	m, err := NewMap([]FieldExpr{
		{Name: "country"},                              // copy
		{Name: "n", Expr: "amount"},                    // copy, renamed
		{Name: "total", Expr: "float(amount) * price"}, // float
		{Name: "next", Expr: "amount + 1"},             // int
		{Name: "label", Expr: `country + ":" + string(amount)`},
		{Name: "big", Expr: "amount >= 100"},
		{Name: "half", Expr: "amount / 2"}, // expr's / is float division
	}, in, &c)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"country", "n", "total", "next", "label", "big", "half"}
	wantKinds := []Kind{KindString, KindInt, KindFloat, KindInt, KindString, KindBool, KindFloat}
	if s := m.OutSchema(); !slices.Equal(s.Names, wantNames) || !slices.Equal(s.Kinds, wantKinds) {
		t.Fatalf("schema %v %v, want %v %v", s.Names, s.Kinds, wantNames, wantKinds)
	}
	r := order(150, 0.5, "NL", false, "")
	r.Key, r.KeyGroup = "k", 7
	if err := m.Process(&r); err != nil {
		t.Fatal(err)
	}
	r2 := order(3, 2, "DE", true, "")
	if err := m.Process(&r2); err != nil {
		t.Fatal(err)
	}
	want := [][]Value{
		{String("NL"), Int(150), Float(75), Int(151), String("NL:150"), Bool(true), Float(75)},
		{String("DE"), Int(3), Float(6), Int(4), String("DE:3"), Bool(false), Float(1.5)},
	}
	if len(c.recs) != 2 {
		t.Fatalf("%d records, want 2", len(c.recs))
	}
	for i, rec := range c.recs {
		if !slices.Equal(rec.Row, want[i]) {
			t.Errorf("record %d = %v, want %v", i, rec.Row, want[i])
		}
	}
	if got := c.recs[0]; got.Time != 42 || got.Key != "k" || got.KeyGroup != 7 {
		t.Errorf("time/key/group %d/%q/%d not carried over", got.Time, got.Key, got.KeyGroup)
	}
	if _, err := NewMap([]FieldExpr{{Name: "a", Expr: "amount"}, {Name: "a", Expr: "price"}}, in, &c); err == nil {
		t.Error("duplicate output field accepted")
	}
}

func TestFlatMap(t *testing.T) {
	in := orderSchema(t)
	tests := []struct {
		name, field, sep, as string
		tags                 Value
		wantSchema           []string
		wantParts            []string
		wantErr              bool
	}{
		{name: "append", field: "tags", sep: ",", as: "tag", tags: String("a,b,,c,"),
			wantSchema: []string{"amount", "price", "country", "vip", "tags", "tag"}, wantParts: []string{"a", "b", "c"}},
		{name: "replace", field: "tags", sep: ",", as: "tags", tags: String("a,b"),
			wantSchema: []string{"amount", "price", "country", "vip", "tags"}, wantParts: []string{"a", "b"}},
		{name: "replace other field", field: "tags", sep: "::", as: "amount", tags: String("x::y"),
			wantSchema: []string{"amount", "price", "country", "vip", "tags"}, wantParts: []string{"x", "y"}},
		{name: "no separator in value", field: "tags", sep: ",", as: "tag", tags: String("solo"),
			wantSchema: []string{"amount", "price", "country", "vip", "tags", "tag"}, wantParts: []string{"solo"}},
		{name: "empty value", field: "tags", sep: ",", as: "tag", tags: String(""),
			wantSchema: []string{"amount", "price", "country", "vip", "tags", "tag"}},
		{name: "null value", field: "tags", sep: ",", as: "tag", tags: Null(),
			wantSchema: []string{"amount", "price", "country", "vip", "tags", "tag"}},
		{name: "non-string field", field: "amount", sep: ",", as: "x", wantErr: true},
		{name: "unknown field", field: "nope", sep: ",", as: "x", wantErr: true},
		{name: "empty separator", field: "tags", sep: "", as: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collect
			f, err := NewFlatMap(tt.field, tt.sep, tt.as, in, &c)
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.OutSchema().Names, tt.wantSchema) {
				t.Fatalf("schema %v, want %v", f.OutSchema().Names, tt.wantSchema)
			}
			asIdx, _ := f.OutSchema().Index(tt.as)
			if f.OutSchema().Kinds[asIdx] != KindString {
				t.Errorf("%s is %v, want string", tt.as, f.OutSchema().Kinds[asIdx])
			}
			r := order(1, 2, "NL", true, "")
			r.Row[4] = tt.tags
			if err := f.Process(&r); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, rec := range c.recs {
				parts = append(parts, rec.Row[asIdx].S)
				if rec.Row[2].S != "NL" || rec.Time != 42 {
					t.Errorf("other fields not carried: %v", rec)
				}
			}
			if !slices.Equal(parts, tt.wantParts) {
				t.Errorf("parts %q, want %q", parts, tt.wantParts)
			}
		})
	}
}

func TestKeyBy(t *testing.T) {
	in := orderSchema(t)
	tests := []struct {
		expr    string
		r       Record
		wantKey string
	}{
		{"country", order(1, 1, "NL", false, ""), "NL"},
		{"amount", order(17, 1, "NL", false, ""), "17"},
		{"price", order(1, 3, "NL", false, ""), "3"}, // whole floats key like ints
		{"price", order(1, 2.5, "NL", false, ""), "2.5"},
		{"vip", order(1, 1, "NL", true, ""), "true"},
		{`country + "/" + string(amount)`, order(9, 1, "DE", false, ""), "DE/9"},
		{"amount % 3", order(10, 1, "DE", false, ""), "1"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			var c collect
			k, err := NewKeyBy(tt.expr, in, 128, &c)
			if err != nil {
				t.Fatal(err)
			}
			r := tt.r
			if err := k.Process(&r); err != nil {
				t.Fatal(err)
			}
			if r.Key != tt.wantKey || r.KeyGroup != state.KeyGroup(tt.wantKey, 128) {
				t.Errorf("key %q group %d, want %q %d", r.Key, r.KeyGroup, tt.wantKey, state.KeyGroup(tt.wantKey, 128))
			}
			if len(c.recs) != 1 || c.recs[0].Key != tt.wantKey {
				t.Errorf("forwarded %v", c.recs)
			}
		})
	}
	if _, err := NewKeyBy("country", in, 0, &collect{}); err == nil {
		t.Error("max parallelism 0 accepted")
	}
}

// TestExprRowShape: a record that does not match the schema is an error,
// not a panic.
func TestExprRowShape(t *testing.T) {
	in := orderSchema(t)
	f, err := NewFilter("amount > 1", in, &collect{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Process(&Record{Row: []Value{Int(1)}}); !errors.Is(err, ErrRow) {
		t.Errorf("err = %v, want ErrRow", err)
	}
}
