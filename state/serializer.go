package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrDecode is wrapped by every error of a Serializer's Decode: the bytes
// are not an encoding of the type.
var ErrDecode = errors.New("state: cannot decode value")

// Serializer encodes values of type T for the Pebble backend and for
// snapshots. The heap backend keeps typed values and uses a state's
// serializer only to snapshot or migrate a key group.
//
// Append appends the encoding of v to dst and returns the extended slice.
// Decode decodes src, which holds exactly one encoding; it must not retain
// src (it aliases Pebble's or a snapshot's buffers) and must return an error
// wrapping ErrDecode, never panic, when src is not an encoding. Encodings
// must be deterministic: equal values give equal bytes, which is what makes
// snapshots canonical. A serializer of map user keys must also give
// different bytes to different keys.
type Serializer[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(src []byte) (T, error)
}

// Int64Serializer encodes an int64 in 8 bytes, big-endian with the sign bit
// flipped, so that byte order is numeric order (map states on Pebble
// iterate int64 user keys in ascending order).
type Int64Serializer struct{}

// Append appends the 8-byte encoding of v.
func (Int64Serializer) Append(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

// Decode decodes an 8-byte encoding.
func (Int64Serializer) Decode(src []byte) (int64, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("%w: int64 needs 8 bytes, got %d", ErrDecode, len(src))
	}
	return int64(binary.BigEndian.Uint64(src) ^ (1 << 63)), nil
}

// Float64Serializer encodes a float64 in 8 bytes whose byte order is the
// numeric order (negative numbers have every bit flipped, the others only
// the sign bit). Every bit pattern round-trips, NaNs included.
type Float64Serializer struct{}

// Append appends the 8-byte encoding of v.
func (Float64Serializer) Append(dst []byte, v float64) []byte {
	b := math.Float64bits(v)
	if b>>63 == 1 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, b)
}

// Decode decodes an 8-byte encoding.
func (Float64Serializer) Decode(src []byte) (float64, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("%w: float64 needs 8 bytes, got %d", ErrDecode, len(src))
	}
	b := binary.BigEndian.Uint64(src)
	if b>>63 == 1 {
		b &^= 1 << 63
	} else {
		b = ^b
	}
	return math.Float64frombits(b), nil
}

// StringSerializer encodes a string as its bytes.
type StringSerializer struct{}

// Append appends the bytes of v.
func (StringSerializer) Append(dst []byte, v string) []byte { return append(dst, v...) }

// Decode returns src as a string (a copy).
func (StringSerializer) Decode(src []byte) (string, error) { return string(src), nil }

// BytesSerializer encodes a byte slice as itself.
type BytesSerializer struct{}

// Append appends v.
func (BytesSerializer) Append(dst []byte, v []byte) []byte { return append(dst, v...) }

// Decode returns a copy of src (never nil).
func (BytesSerializer) Decode(src []byte) ([]byte, error) {
	return append(make([]byte, 0, len(src)), src...), nil
}

// listSerializer encodes a list as its elements, each preceded by its
// length as a uvarint. Appending an element to an encoded list is appending
// its length and encoding, which is how the Pebble backend adds to a list
// without decoding it.
type listSerializer[V any] struct {
	elem Serializer[V]
}

func (l listSerializer[V]) Append(dst []byte, vs []V) []byte {
	for _, v := range vs {
		dst = appendLenPrefixed(dst, l.elem, v)
	}
	return dst
}

func (l listSerializer[V]) Decode(src []byte) ([]V, error) {
	n := 0 // count first: the slice is never larger than the input warrants
	for rest := src; len(rest) > 0; n++ {
		_, r, err := nextListElem(rest)
		if err != nil {
			return nil, fmt.Errorf("list element %d: %w", n, err)
		}
		rest = r
	}
	vs := make([]V, 0, n)
	for rest := src; len(rest) > 0; {
		e, r, _ := nextListElem(rest)
		v, err := l.elem.Decode(e)
		if err != nil {
			return nil, fmt.Errorf("list element %d: %w", len(vs), err)
		}
		vs, rest = append(vs, v), r
	}
	return vs, nil
}

// nextListElem splits the first length-prefixed element off an encoded list.
func nextListElem(src []byte) (elem, rest []byte, err error) {
	n, w := binary.Uvarint(src)
	if w <= 0 || n > uint64(len(src)-w) {
		return nil, nil, fmt.Errorf("%w: bad list element length", ErrDecode)
	}
	end := w + int(n)
	return src[w:end], src[end:], nil
}

// appendLenPrefixed appends uvarint(len(enc)) | enc, where enc is v's
// encoding, encoding v in place rather than through a scratch buffer.
func appendLenPrefixed[V any](dst []byte, ser Serializer[V], v V) []byte {
	start := len(dst)
	dst = ser.Append(append(dst, 0), v)
	n := len(dst) - start - 1
	if n < 0x80 { // the usual case: a one-byte length
		dst[start] = byte(n)
		return dst
	}
	var hdr [binary.MaxVarintLen64]byte
	w := binary.PutUvarint(hdr[:], uint64(n))
	dst = append(dst, hdr[:w-1]...)
	copy(dst[start+w:], dst[start+1:start+1+n])
	copy(dst[start:], hdr[:w])
	return dst
}

var (
	_ Serializer[int64]   = Int64Serializer{}
	_ Serializer[float64] = Float64Serializer{}
	_ Serializer[string]  = StringSerializer{}
	_ Serializer[[]byte]  = BytesSerializer{}
	_ Serializer[[]int64] = listSerializer[int64]{}
)
