package connectors

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

var codecFields = []Field{{"id", "int"}, {"amount", "float"}, {"name", "string"}, {"ok", "bool"}, {"at", "string"}}

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		line  string
		want  []flow.Value
		time  int64
		field string // expected bad field; "-" for a malformed line
	}{
		{`{"id":1,"amount":2.5,"name":"a","ok":true,"at":"2024-01-02T03:04:05Z"}`,
			[]flow.Value{flow.Int(1), flow.Float(2.5), flow.String("a"), flow.Bool(true), flow.String("2024-01-02T03:04:05Z")}, 1704164645000, ""},
		{`{"id":3.0,"amount":7,"at":"2024-01-02T03:04:05.5+01:00","extra":[1]}`,
			[]flow.Value{flow.Int(3), flow.Float(7), flow.Null(), flow.Null(), flow.String("2024-01-02T03:04:05.5+01:00")}, 1704161045500, ""},
		{`{"id":"1","at":"2024-01-02T03:04:05Z"}`, nil, 0, "id"},
		{`{"id":1.5,"at":"2024-01-02T03:04:05Z"}`, nil, 0, "id"},
		{`{"amount":"x","at":"2024-01-02T03:04:05Z"}`, nil, 0, "amount"},
		{`{"ok":1,"at":"2024-01-02T03:04:05Z"}`, nil, 0, "ok"},
		{`{"name":{},"at":"2024-01-02T03:04:05Z"}`, nil, 0, "name"},
		{`{"at":"yesterday"}`, nil, 0, "at"},
		{`{"id":1}`, nil, 0, "at"},
		{`{"id":1`, nil, 0, "-"},
		{`[1,2]`, nil, 0, "-"},
	} {
		d, err := newDecoder(codecFields, "at")
		if err != nil {
			t.Fatal(err)
		}
		row := make([]flow.Value, len(codecFields))
		ts, err := d.decodeJSON([]byte(tc.line), row)
		if tc.field != "" {
			le := lineError("f.jsonl", 9, err)
			if err == nil || (tc.field != "-" && le.Field != tc.field) || (tc.field == "-" && le.Field != "") {
				t.Errorf("%s: error %v, want one naming field %q", tc.line, err, tc.field)
			}
			if !errors.Is(le, ErrBadRecord) || !strings.HasPrefix(le.Error(), "f.jsonl:9: ") {
				t.Errorf("%s: %q does not say f.jsonl:9 or match ErrBadRecord", tc.line, le)
			}
			continue
		}
		if err != nil || ts != tc.time || !reflect.DeepEqual(row, tc.want) {
			t.Errorf("%s: %v at %d (%v), want %v at %d", tc.line, row, ts, err, tc.want, tc.time)
		}
	}
}

func TestDecodeCSV(t *testing.T) {
	fields := []Field{{"id", "int"}, {"amount", "float"}, {"name", "string"}, {"ok", "bool"}}
	for _, tc := range []struct {
		header, line string
		want         []flow.Value
		field        string
	}{
		{"", `1,2.5,"a, ""b""",true`, []flow.Value{flow.Int(1), flow.Float(2.5), flow.String(`a, "b"`), flow.Bool(true)}, ""},
		{"", "1,,,\r", []flow.Value{flow.Int(1), flow.Null(), flow.String(""), flow.Null()}, ""},
		{"ok,zzz,id", "false,ignored,7", []flow.Value{flow.Int(7), flow.Null(), flow.Null(), flow.Bool(false)}, ""},
		{"", "x,1,a,true", nil, "id"},
		{"", "1,1e,a,true", nil, "amount"},
		{"", "1,1,a,maybe", nil, "ok"},
		{"", "1,1,a", nil, "-"},
		{"", `1,1,"a,true`, nil, "-"},
		{"", `1,1,a"b,true`, nil, "-"},
		{"id,ok", "1", nil, "-"},
	} {
		d, _ := newDecoder(fields, "")
		if tc.header != "" {
			if err := d.setCSVHeader([]byte(tc.header)); err != nil {
				t.Fatal(err)
			}
		}
		row := make([]flow.Value, len(fields))
		_, err := d.decodeCSV([]byte(tc.line), row)
		if tc.field != "" {
			le := lineError("", 2, err)
			if err == nil || (tc.field != "-" && le.Field != tc.field) || (tc.field == "-" && le.Field != "") {
				t.Errorf("%q: error %v, want one naming field %q", tc.line, err, tc.field)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(row, tc.want) {
			t.Errorf("%q: %v (%v), want %v", tc.line, row, err, tc.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	fields := []Field{{"i", "int"}, {"f", "float"}, {"s", "string"}, {"b", "bool"}}
	d, _ := newDecoder(fields, "")
	row := []flow.Value{flow.Int(-4), flow.Float(0.1), flow.String("q\"u,o\u2028te\t"), flow.Bool(true)}
	got := make([]flow.Value, 4)
	if _, err := d.decodeJSON(appendJSON(nil, d.schema.Names, row), got); err != nil || !reflect.DeepEqual(got, row) {
		t.Fatalf("JSON round trip: %v (%v), want %v", got, err, row)
	}
	line := appendCSV(nil, row)
	if _, err := d.decodeCSV(line[:len(line)-1], got); err != nil || !reflect.DeepEqual(got, row) {
		t.Fatalf("CSV round trip of %q: %v (%v), want %v", line, got, err, row)
	}
}

// Decoders of outside input never panic, and what they accept re-encodes to
// something they accept again as the same row.
func FuzzDecodeJSONLine(f *testing.F) {
	for _, s := range []string{`{"id":1,"amount":2.5,"name":"a","ok":true,"at":"2024-01-02T03:04:05Z"}`, `{"id":1e3}`, `{"name":"\ud800"}`, `[]`, `{`, `{"at":12}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d, _ := newDecoder(codecFields, "at")
		row := make([]flow.Value, len(codecFields))
		if _, err := d.decodeJSON([]byte(line), row); err != nil {
			if !json.Valid([]byte(line)) && lineError("x", 1, err).Field != "" {
				t.Fatalf("invalid JSON %q blamed on a field: %v", line, err)
			}
			return
		}
		again := make([]flow.Value, len(row))
		if _, err := d.decodeJSON(appendJSON(nil, d.schema.Names, row), again); err != nil || !reflect.DeepEqual(again, row) {
			t.Fatalf("%q decoded to %v, re-encoded decodes to %v (%v)", line, row, again, err)
		}
	})
}

func FuzzDecodeCSVLine(f *testing.F) {
	for _, s := range []string{`1,2.5,"a, ""b""",true`, `,,,`, `"`, `1,2,3,4,5`, "a\r"} {
		f.Add(s, false)
	}
	f.Add("ok,id", true)
	fields := []Field{{"id", "int"}, {"amount", "float"}, {"name", "string"}, {"ok", "bool"}}
	f.Fuzz(func(t *testing.T, line string, header bool) {
		if strings.ContainsAny(line, "\n") {
			return // one line at a time
		}
		d, _ := newDecoder(fields, "")
		if header {
			if err := d.setCSVHeader([]byte(line)); err != nil {
				return
			}
		}
		row := make([]flow.Value, len(fields))
		if _, err := d.decodeCSV([]byte(line), row); err != nil {
			return
		}
		if d.colIdx != nil {
			return // a header reorders columns: no simple round trip
		}
		enc := appendCSV(nil, row)
		again := make([]flow.Value, len(row))
		if _, err := d.decodeCSV(enc[:len(enc)-1], again); err != nil {
			t.Fatalf("%q decoded to %v, re-encoded as %q fails: %v", line, row, enc, err)
		}
		for i := range row {
			if row[i] != again[i] && !(row[i].Kind == flow.KindFloat && row[i].Float() != row[i].Float()) {
				t.Fatalf("%q decoded to %v, re-encoded decodes to %v", line, row, again)
			}
		}
	})
}
