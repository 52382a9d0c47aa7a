package mlforecast

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Series is one metric read from a file: values in time order, NaN where
// a value is missing.
type Series struct {
	Name   string      // the value column's name
	Times  []time.Time // nil when the file has no time column
	Values []float64
}

// Len returns the number of points.
func (s *Series) Len() int { return len(s.Values) }

// Step returns the median spacing of the timestamps, or 0 without them.
func (s *Series) Step() time.Duration {
	if len(s.Times) < 2 {
		return 0
	}
	d := make([]time.Duration, len(s.Times)-1)
	for i := 1; i < len(s.Times); i++ {
		d[i-1] = s.Times[i].Sub(s.Times[i-1])
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// CSVOptions selects the columns of a series file. The zero value reads
// `timestamp,value` files such as NAB's.
type CSVOptions struct {
	// TimeColumn names the timestamp column. Empty means the first of
	// "timestamp", "time", "date" (any case) present; a file without any
	// of them has no times.
	TimeColumn string
	// ValueColumn names the value column. Empty means "value", or the only
	// column that is not the time column.
	ValueColumn string
	// Comma is the field separator; 0 means ','.
	Comma rune
}

// Accepted timestamp layouts, tried in order (no zone means UTC). Plain
// numbers are Unix seconds.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ReadCSVFile reads a series from the named file (see ReadCSV).
func ReadCSVFile(path string, opts CSVOptions) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mlforecast: %w", err)
	}
	defer f.Close()
	return ReadCSV(f, opts)
}

// ReadCSV reads a series from CSV with a header line naming the columns
// (`timestamp,value` for instance). Empty cells and NaN, NA, null mean a
// missing value; ±Inf is rejected. Timestamps must not decrease (repeats
// are kept: real exports have them).
// Every error is a *CSVError with the 1-based line number.
func ReadCSV(r io.Reader, opts CSVOptions) (*Series, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, &CSVError{Line: 1, Err: errors.New("empty file: want a header line")}
	}
	if err != nil {
		return nil, csvReadError(err)
	}
	header := make([]string, len(rec))
	for i, h := range rec {
		header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	}
	ti, vi, err := pickColumns(header, opts)
	if err != nil {
		return nil, &CSVError{Line: 1, Err: err}
	}
	s := &Series{Name: header[vi]}
	if ti >= 0 {
		s.Times = []time.Time{}
	}
	s.Values = []float64{}
	for {
		rec, err = cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvReadError(err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" && len(header) > 1 {
			continue // blank line
		}
		if len(rec) != len(header) {
			return nil, &CSVError{Line: line, Err: fmt.Errorf("%d fields, header has %d", len(rec), len(header))}
		}
		v, err := parseValue(rec[vi])
		if err != nil {
			var nf *NonFiniteError
			if errors.As(err, &nf) {
				nf.Index = len(s.Values)
			}
			return nil, &CSVError{Line: line, Column: header[vi], Err: err}
		}
		if ti >= 0 {
			t, err := parseTime(rec[ti])
			if err != nil {
				return nil, &CSVError{Line: line, Column: header[ti], Err: err}
			}
			if n := len(s.Times); n > 0 && t.Before(s.Times[n-1]) {
				return nil, &CSVError{Line: line, Column: header[ti],
					Err: fmt.Errorf("timestamp %s is before %s", t.Format(time.RFC3339Nano), s.Times[n-1].Format(time.RFC3339Nano))}
			}
			s.Times = append(s.Times, t)
		}
		s.Values = append(s.Values, v)
	}
	return s, nil
}

func csvReadError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &CSVError{Line: pe.Line, Err: pe.Err}
	}
	return &CSVError{Err: err}
}

func pickColumns(header []string, opts CSVOptions) (ti, vi int, err error) {
	find := func(name string) int {
		for i, h := range header {
			if strings.EqualFold(h, name) {
				return i
			}
		}
		return -1
	}
	ti = -1
	if opts.TimeColumn != "" {
		if ti = find(opts.TimeColumn); ti < 0 {
			return 0, 0, fmt.Errorf("no time column %q in header %q", opts.TimeColumn, header)
		}
	} else {
		for _, n := range []string{"timestamp", "time", "date"} {
			if ti = find(n); ti >= 0 {
				break
			}
		}
	}
	vi = -1
	switch {
	case opts.ValueColumn != "":
		if vi = find(opts.ValueColumn); vi < 0 {
			return 0, 0, fmt.Errorf("no value column %q in header %q", opts.ValueColumn, header)
		}
	case find("value") >= 0:
		vi = find("value")
	default:
		var rest []int
		for i := range header {
			if i != ti {
				rest = append(rest, i)
			}
		}
		if len(rest) != 1 {
			return 0, 0, fmt.Errorf("cannot tell the value column in header %q: name it", header)
		}
		vi = rest[0]
	}
	if vi == ti {
		return 0, 0, fmt.Errorf("column %q cannot be both time and value", header[vi])
	}
	return ti, vi, nil
}

func parseValue(f string) (float64, error) {
	f = strings.TrimSpace(f)
	switch strings.ToLower(f) {
	case "", "nan", "na", "null", "none":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, &NonFiniteError{Value: v}
		}
		return 0, fmt.Errorf("invalid number %q", f)
	}
	if math.IsInf(v, 0) {
		return 0, &NonFiniteError{Value: v}
	}
	if math.IsNaN(v) {
		return math.NaN(), nil
	}
	return v, nil
}

func parseTime(f string) (time.Time, error) {
	f = strings.TrimSpace(f)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, f); err == nil {
			return t, nil
		}
	}
	if sec, err := strconv.ParseFloat(f, 64); err == nil && !math.IsNaN(sec) && math.Abs(sec) < 1e11 {
		whole, frac := math.Modf(sec)
		return time.Unix(int64(whole), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("invalid timestamp %q", f)
}
