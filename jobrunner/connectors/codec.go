package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// Format names an input or output encoding.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// Field is one field of the records a file or ingest source produces.
type Field struct {
	Name string
	// Type is int, float, string or bool.
	Type string
}

// validateFields checks fields and the time field; prefix names the config
// field in errors.
func validateFields(prefix string, fields []Field, timeField string) error {
	if len(fields) == 0 {
		return configError(prefix+"Fields", "at least one field is required")
	}
	seen := map[string]bool{}
	for i, f := range fields {
		name := fmt.Sprintf("%sFields[%d]", prefix, i)
		if f.Name == "" {
			return configError(name+".Name", "empty")
		}
		if seen[f.Name] {
			return configError(name+".Name", "%q appears twice", f.Name)
		}
		seen[f.Name] = true
		if _, err := flow.ParseKind(f.Type); err != nil {
			return configError(name+".Type", "%v", err)
		}
	}
	if timeField != "" {
		k, ok := fieldKind(fields, timeField)
		if !ok {
			return configError(prefix+"TimeField", "%q is not one of the fields", timeField)
		}
		if k != flow.KindInt && k != flow.KindString {
			return configError(prefix+"TimeField", "%q must be an int (epoch ms) or a string (RFC 3339), not %s", timeField, k)
		}
	}
	return nil
}

func fieldKind(fields []Field, name string) (flow.Kind, bool) {
	for _, f := range fields {
		if f.Name == name {
			k, err := flow.ParseKind(f.Type)
			return k, err == nil
		}
	}
	return flow.KindNull, false
}

// fieldsSchema builds the schema of validated fields.
func fieldsSchema(fields []Field) (*flow.Schema, error) {
	names := make([]string, len(fields))
	kinds := make([]flow.Kind, len(fields))
	for i, f := range fields {
		k, err := flow.ParseKind(f.Type)
		if err != nil {
			return nil, err
		}
		names[i], kinds[i] = f.Name, k
	}
	return flow.NewSchema(names, kinds)
}

// fieldError is a decoding error of one field; the caller adds file and line.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("field %q: %v", e.field, e.err)
}

func (e *fieldError) Unwrap() error { return e.err }

// lineError turns a decoding error into a LineError.
func lineError(file string, line int, err error) *LineError {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &LineError{File: file, Line: line, Field: fe.field, Err: fe.err}
	}
	return &LineError{File: file, Line: line, Err: err}
}

// decoder turns JSON objects or CSV lines into rows of a schema.
type decoder struct {
	schema  *flow.Schema
	timeIdx int // -1 without a time field
	// arrivalKey, when set, is the JSON key holding the record time when
	// there is no time field (the ingest log's arrival time).
	arrivalKey string
	// colIdx maps CSV columns to schema positions (-1 ignores a column);
	// nil means the columns are the fields in order.
	colIdx []int
	cells  [][]byte
	obj    map[string]json.RawMessage
}

func newDecoder(fields []Field, timeField string) (*decoder, error) {
	s, err := fieldsSchema(fields)
	if err != nil {
		return nil, err
	}
	d := &decoder{schema: s, timeIdx: -1}
	if timeField != "" {
		d.timeIdx, _ = s.Index(timeField)
	}
	return d, nil
}

// eventTime returns the record time from a decoded row.
func (d *decoder) eventTime(row []flow.Value) (int64, error) {
	if d.timeIdx < 0 {
		if d.arrivalKey != "" {
			if t, err := strconv.ParseInt(string(d.obj[d.arrivalKey]), 10, 64); err == nil {
				return t, nil
			}
		}
		return 0, nil
	}
	v := row[d.timeIdx]
	name := d.schema.Names[d.timeIdx]
	switch v.Kind {
	case flow.KindInt:
		return v.Int(), nil
	case flow.KindString:
		t, err := time.Parse(time.RFC3339Nano, v.S)
		if err != nil {
			return 0, &fieldError{name, fmt.Errorf("event time %q is not RFC 3339", v.S)}
		}
		return t.UnixMilli(), nil
	}
	return 0, &fieldError{name, errors.New("event time missing")}
}

// decodeJSON decodes one JSON object into row (len = number of fields) and
// returns its event time. Missing and null fields are null; other fields of
// the object are ignored.
func (d *decoder) decodeJSON(line []byte, row []flow.Value) (int64, error) {
	clear(d.obj)
	if d.obj == nil {
		d.obj = make(map[string]json.RawMessage, len(row))
	}
	if err := json.Unmarshal(line, &d.obj); err != nil {
		return 0, &fieldError{"", fmt.Errorf("not a JSON object: %v", err)}
	}
	for i, name := range d.schema.Names {
		v, err := jsonValue(d.obj[name], d.schema.Kinds[i])
		if err != nil {
			return 0, &fieldError{name, err}
		}
		row[i] = v
	}
	return d.eventTime(row)
}

func jsonValue(raw json.RawMessage, k flow.Kind) (flow.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return flow.Null(), nil
	}
	got := jsonKind(raw)
	switch k {
	case flow.KindInt:
		if got == "number" {
			if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				return flow.Int(i), nil
			}
			if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return flow.Int(int64(f)), nil
			}
			return flow.Null(), fmt.Errorf("want int, got %s", raw)
		}
	case flow.KindFloat:
		if got == "number" {
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return flow.Null(), fmt.Errorf("want float, got %s", raw)
			}
			return flow.Float(f), nil
		}
	case flow.KindString:
		if got == "string" {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return flow.Null(), fmt.Errorf("bad string: %v", err)
			}
			return flow.String(s), nil
		}
	case flow.KindBool:
		if got == "bool" {
			return flow.Bool(raw[0] == 't'), nil
		}
	}
	return flow.Null(), fmt.Errorf("want %s, got %s", k, got)
}

func jsonKind(raw []byte) string {
	switch raw[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "number"
}

// setCSVHeader maps the columns of a header line to fields; fields the
// header lacks are null.
func (d *decoder) setCSVHeader(line []byte) error {
	cells, err := splitCSV(line, d.cells[:0])
	d.cells = cells
	if err != nil {
		return &fieldError{"", fmt.Errorf("bad CSV header: %v", err)}
	}
	d.colIdx = make([]int, len(cells))
	for i, c := range cells {
		d.colIdx[i] = -1
		if j, ok := d.schema.Index(string(c)); ok {
			d.colIdx[i] = j
		}
	}
	return nil
}

// decodeCSV decodes one CSV line into row and returns its event time. Empty
// cells of non-string fields are null.
func (d *decoder) decodeCSV(line []byte, row []flow.Value) (int64, error) {
	cells, err := splitCSV(line, d.cells[:0])
	d.cells = cells
	if err != nil {
		return 0, &fieldError{"", err}
	}
	if d.colIdx == nil && len(cells) != len(row) {
		return 0, &fieldError{"", fmt.Errorf("%d columns, want %d", len(cells), len(row))}
	}
	if d.colIdx != nil {
		if len(cells) != len(d.colIdx) {
			return 0, &fieldError{"", fmt.Errorf("%d columns, the header has %d", len(cells), len(d.colIdx))}
		}
		for i := range row {
			row[i] = flow.Null()
		}
	}
	for c, cell := range cells {
		i := c
		if d.colIdx != nil {
			if i = d.colIdx[c]; i < 0 {
				continue
			}
		}
		v, err := csvValue(cell, d.schema.Kinds[i])
		if err != nil {
			return 0, &fieldError{d.schema.Names[i], err}
		}
		row[i] = v
	}
	return d.eventTime(row)
}

func csvValue(cell []byte, k flow.Kind) (flow.Value, error) {
	if k == flow.KindString {
		return flow.String(string(cell)), nil
	}
	if len(cell) == 0 {
		return flow.Null(), nil
	}
	s := string(cell)
	switch k {
	case flow.KindInt:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return flow.Null(), fmt.Errorf("want int, got %q", s)
		}
		return flow.Int(i), nil
	case flow.KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return flow.Null(), fmt.Errorf("want float, got %q", s)
		}
		return flow.Float(f), nil
	case flow.KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return flow.Null(), fmt.Errorf("want bool, got %q", s)
		}
		return flow.Bool(b), nil
	}
	return flow.Null(), fmt.Errorf("unsupported type %s", k)
}

// splitCSV splits one CSV line (RFC 4180 quoting, no embedded newlines) into
// cells, appended to cells. Cells alias line unless they were quoted.
func splitCSV(line []byte, cells [][]byte) ([][]byte, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	for pos := 0; ; {
		if pos < len(line) && line[pos] == '"' {
			var cell []byte
			i := pos + 1
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					return cells, errors.New("unterminated quoted cell")
				}
				cell = append(cell, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' { // escaped quote
					cell = append(cell, '"')
					i++
					continue
				}
				break
			}
			if cell == nil {
				cell = []byte{}
			}
			cells = append(cells, cell)
			if i == len(line) {
				return cells, nil
			}
			if line[i] != ',' {
				return cells, fmt.Errorf("text after a quoted cell at column %d", i+1)
			}
			pos = i + 1
			continue
		}
		j := bytes.IndexByte(line[pos:], ',')
		if j < 0 {
			cell := line[pos:]
			if bytes.IndexByte(cell, '"') >= 0 {
				return cells, fmt.Errorf("quote inside an unquoted cell at column %d", pos+1)
			}
			return append(cells, cell), nil
		}
		cell := line[pos : pos+j]
		if bytes.IndexByte(cell, '"') >= 0 {
			return cells, fmt.Errorf("quote inside an unquoted cell at column %d", pos+1)
		}
		cells = append(cells, cell)
		pos += j + 1
	}
}

// appendJSON appends r as one JSON object line using the schema's names.
// NaN and infinities, which JSON cannot carry, are written as null.
func appendJSON(b []byte, names []string, row []flow.Value) []byte {
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		var v flow.Value
		if i < len(row) {
			v = row[i]
		}
		b = appendJSONValue(b, v)
	}
	return append(b, '}')
}

func appendJSONValue(b []byte, v flow.Value) []byte {
	switch v.Kind {
	case flow.KindInt:
		return strconv.AppendInt(b, v.Int(), 10)
	case flow.KindFloat:
		if math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.Float(), 'g', -1, 64)
	case flow.KindString:
		s, _ := json.Marshal(v.S) // valid UTF-8 and HTML-safe escaping
		return append(b, s...)
	case flow.KindBool:
		return strconv.AppendBool(b, v.Int() != 0)
	}
	return append(b, "null"...)
}

// appendCSV appends one CSV line of cells.
func appendCSV(b []byte, row []flow.Value) []byte {
	for i, v := range row {
		if i > 0 {
			b = append(b, ',')
		}
		switch v.Kind {
		case flow.KindString:
			b = appendCSVCell(b, v.S)
		case flow.KindFloat:
			b = strconv.AppendFloat(b, v.Float(), 'g', -1, 64)
		case flow.KindNull:
		default:
			b = append(b, v.KeyString()...)
		}
	}
	return append(b, '\n')
}

func appendCSVCell(b []byte, s string) []byte {
	if s == "" || !bytes.ContainsAny([]byte(s), ",\"\r\n") && s[0] != ' ' {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// csvHeader is the header line of a schema.
func csvHeader(names []string) []byte {
	var b []byte
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCSVCell(b, n)
	}
	return append(b, '\n')
}
