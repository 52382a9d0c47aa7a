package mlforecast

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestReadCSV(t *testing.T) {
	in := "timestamp,value\n2015-02-26 21:42:53,57\n2015-02-26 21:47:53,\n\n2015-02-26 21:52:53,NaN\n2015-02-26 21:57:53,4.5e1\n"
	s, err := ReadCSV(strings.NewReader(in), CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "value" || s.Len() != 4 {
		t.Fatalf("got %+v", s)
	}
	if s.Values[0] != 57 || !math.IsNaN(s.Values[1]) || !math.IsNaN(s.Values[2]) || s.Values[3] != 45 {
		t.Errorf("values %v", s.Values)
	}
	if want := time.Date(2015, 2, 26, 21, 42, 53, 0, time.UTC); !s.Times[0].Equal(want) {
		t.Errorf("time %v", s.Times[0])
	}
	if s.Step() != 5*time.Minute {
		t.Errorf("step %v", s.Step())
	}
}

func TestReadCSVColumns(t *testing.T) {
	in := "Time;cpu;mem\n2024-01-01T00:00:00Z;1;10\n2024-01-01T00:01:00Z;2;20\n"
	s, err := ReadCSV(strings.NewReader(in), CSVOptions{ValueColumn: "mem", Comma: ';'})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "mem" || s.Values[1] != 20 || s.Times[1].Sub(s.Times[0]) != time.Minute {
		t.Errorf("got %+v", s)
	}
	s, err = ReadCSV(strings.NewReader("rate\n1\n2\n"), CSVOptions{})
	if err != nil || s.Times != nil || s.Values[1] != 2 {
		t.Errorf("value-only file: %+v, %v", s, err)
	}
	s, err = ReadCSV(strings.NewReader("ts,value\n1700000000,1\n1700000060.5,2\n"), CSVOptions{TimeColumn: "ts"})
	if err != nil || s.Times[1].Sub(s.Times[0]) != 60500*time.Millisecond {
		t.Errorf("unix seconds: %+v, %v", s, err)
	}
}

func TestReadCSVErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		opts   CSVOptions
		line   int
		column string
		nonFin bool
	}{
		{"empty", "", CSVOptions{}, 1, "", false},
		{"bad number", "timestamp,value\n2020-01-01,1\n2020-01-02,abc\n", CSVOptions{}, 3, "value", false},
		{"infinite", "timestamp,value\n2020-01-01,1\n2020-01-02,2\n2020-01-03,+Inf\n", CSVOptions{}, 4, "value", true},
		{"overflow", "value\n1e999\n", CSVOptions{}, 2, "value", true},
		{"bad time", "timestamp,value\nyesterday,1\n", CSVOptions{}, 2, "timestamp", false},
		{"time goes back", "timestamp,value\n2020-01-02,1\n2020-01-01,2\n", CSVOptions{}, 3, "timestamp", false},
		{"field count", "timestamp,value\n2020-01-01,1\n2020-01-02,1,3\n", CSVOptions{}, 3, "", false},
		{"missing column", "timestamp,value\n2020-01-01,1\n", CSVOptions{ValueColumn: "cpu"}, 1, "", false},
		{"ambiguous", "timestamp,a,b\n2020-01-01,1,2\n", CSVOptions{}, 1, "", false},
		{"quote", "timestamp,value\n2020-01-01,\"1\n", CSVOptions{}, 2, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tc.in), tc.opts)
			var ce *CSVError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCSV) {
				t.Fatalf("err = %v, want a *CSVError", err)
			}
			if ce.Line != tc.line || ce.Column != tc.column {
				t.Errorf("line %d column %q, want %d %q (%v)", ce.Line, ce.Column, tc.line, tc.column, err)
			}
			if tc.nonFin != errors.Is(err, ErrNonFinite) {
				t.Errorf("errors.Is(err, ErrNonFinite) = %v (%v)", !tc.nonFin, err)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("message %q lacks the line", err)
			}
		})
	}
}

func TestReadNAB(t *testing.T) {
	s := loadNAB(t, "realTraffic/speed_t4013.csv") // has a repeated timestamp
	if s.Len() != 2495 || s.Step() != 5*time.Minute {
		t.Errorf("len %d step %v", s.Len(), s.Step())
	}
}

// FuzzParseSeries: arbitrary files give a series or a *CSVError, never a
// panic, and every value read is finite or NaN.
func FuzzParseSeries(f *testing.F) {
	f.Add("timestamp,value\n2015-02-26 21:42:53,57\n2015-02-26 21:47:53,43\n", "")
	f.Add("a,b,value\n1,2,3\n", "value")
	f.Add("value\n1e999\nNaN\n\n", "")
	f.Add("time,x\n\"2020-01-01T00:00:00Z\",\"1\"\n", "x")
	f.Fuzz(func(t *testing.T, in, col string) {
		s, err := ReadCSV(strings.NewReader(in), CSVOptions{ValueColumn: col})
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CSVError", err)
			}
			return
		}
		for _, v := range s.Values {
			if math.IsInf(v, 0) {
				t.Fatalf("infinite value read from %q", in)
			}
		}
		if s.Times != nil && len(s.Times) != len(s.Values) {
			t.Fatalf("%d times for %d values", len(s.Times), len(s.Values))
		}
	})
}
