package state

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func roundTrip[T any](t *testing.T, ser Serializer[T], v T, eq func(a, b T) bool) []byte {
	t.Helper()
	enc := ser.Append([]byte("prefix"), v)
	if !bytes.HasPrefix(enc, []byte("prefix")) {
		t.Fatalf("Append(%v) overwrote dst", v)
	}
	enc = enc[len("prefix"):]
	got, err := ser.Decode(enc)
	if err != nil {
		t.Fatalf("Decode(Append(%v)): %v", v, err)
	}
	if !eq(got, v) {
		t.Fatalf("Decode(Append(%v)) = %v", v, got)
	}
	return enc
}

func TestSerializersRoundTrip(t *testing.T) {
	eqInt := func(a, b int64) bool { return a == b }
	ints := []int64{math.MinInt64, -1 << 40, -1, 0, 1, 255, 256, 1 << 40, math.MaxInt64}
	var prev []byte
	for i, v := range ints {
		enc := roundTrip(t, Int64Serializer{}, v, eqInt)
		if i > 0 && bytes.Compare(prev, enc) >= 0 {
			t.Fatalf("int64 %d does not encode above %d", v, ints[i-1])
		}
		prev = enc
	}

	eqFloat := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
	floats := []float64{math.Inf(-1), -math.MaxFloat64, -1.5, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, 1.5, math.MaxFloat64, math.Inf(1)}
	prev = nil
	for i, v := range floats {
		enc := roundTrip(t, Float64Serializer{}, v, eqFloat)
		if i > 0 && bytes.Compare(prev, enc) >= 0 {
			t.Fatalf("float64 %g does not encode above %g", v, floats[i-1])
		}
		prev = enc
	}
	roundTrip(t, Float64Serializer{}, math.NaN(), eqFloat)

	eqStr := func(a, b string) bool { return a == b }
	for _, v := range []string{"", "a", "héllo\x00world", strings.Repeat("x", 1000)} {
		roundTrip(t, StringSerializer{}, v, eqStr)
	}
	for _, v := range [][]byte{{}, {0}, []byte("bytes")} {
		roundTrip(t, BytesSerializer{}, v, bytes.Equal)
	}
	src := []byte("aliased")
	got, _ := BytesSerializer{}.Decode(src)
	src[0] = 'X'
	if string(got) != "aliased" {
		t.Fatal("BytesSerializer.Decode retains its input")
	}

	// Lists, with elements whose lengths need one, two and three bytes.
	ls := listSerializer[string]{elem: StringSerializer{}}
	eqList := func(a, b []string) bool { return slices.Equal(a, b) }
	for _, v := range [][]string{nil, {""}, {"a", "", "b"}, {strings.Repeat("y", 127), strings.Repeat("z", 128), strings.Repeat("w", 20000)}} {
		enc := roundTrip(t, ls, v, eqList)
		if len(v) == 0 && len(enc) != 0 {
			t.Fatalf("empty list encodes as %x", enc)
		}
	}
}

func TestSerializersRejectBadInput(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{}
	check := func(name string, err error) {
		t.Helper()
		cases = append(cases, struct {
			name string
			err  error
		}{name, err})
	}
	_, err := Int64Serializer{}.Decode([]byte{1, 2, 3})
	check("int64 of 3 bytes", err)
	_, err = Int64Serializer{}.Decode(make([]byte, 9))
	check("int64 of 9 bytes", err)
	_, err = Float64Serializer{}.Decode(nil)
	check("float64 of 0 bytes", err)
	ls := listSerializer[int64]{elem: Int64Serializer{}}
	_, err = ls.Decode([]byte{8, 1, 2})
	check("list element longer than the list", err)
	_, err = ls.Decode([]byte{0x80})
	check("list element length truncated", err)
	_, err = ls.Decode([]byte{2, 1, 2})
	check("list element that does not decode", err)
	_, err = ls.Decode([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	check("list element length of 2^64-1", err)
	for _, c := range cases {
		if !errors.Is(c.err, ErrDecode) {
			t.Errorf("%s: error %v does not wrap ErrDecode", c.name, c.err)
		}
	}
}
