package token

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendVLong appends v in Hadoop's WritableUtils.writeVLong encoding
// (HADOOP_PROTOCOLS.md §3.1). writeVInt is the same function.
func AppendVLong(dst []byte, v int64) []byte {
	if v >= -112 && v <= 127 {
		return append(dst, byte(v))
	}
	l := -112
	if v < 0 {
		v = ^v
		l = -120
	}
	n := 0
	for tmp := v; tmp != 0; tmp >>= 8 {
		n++
	}
	l -= n
	dst = append(dst, byte(int8(l)))
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return append(dst, buf[8-n:]...)
}

// ReadVLong decodes one VLong from the start of b and returns it with the
// number of bytes used.
func ReadVLong(b []byte) (int64, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: VLong: unexpected end of data", ErrMalformed)
	}
	first := int8(b[0])
	if first >= -112 {
		return int64(first), 1, nil
	}
	var size int
	neg := first < -120
	if neg {
		size = -119 - int(first)
	} else {
		size = -111 - int(first)
	}
	if len(b) < size {
		return 0, 0, fmt.Errorf("%w: VLong: need %d bytes, have %d", ErrMalformed, size, len(b))
	}
	var i uint64
	for _, c := range b[1:size] {
		i = i<<8 | uint64(c)
	}
	v := int64(i)
	if neg {
		v = ^v
	}
	return v, size, nil
}

// ReadVInt decodes a VInt: a VLong that must fit in an int32.
func ReadVInt(b []byte) (int32, int, error) {
	v, n, err := ReadVLong(b)
	if err != nil {
		return 0, 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%w: VInt %d does not fit in 32 bits", ErrMalformed, v)
	}
	return int32(v), n, nil
}

// decoder reads Writable fields from a byte slice.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) vint(what string) (int32, error) {
	v, n, err := ReadVInt(d.b[d.off:])
	if err != nil {
		return 0, fmt.Errorf("%s at offset %d: %w", what, d.off, err)
	}
	d.off += n
	return v, nil
}

// bytes reads a VInt length and that many bytes (copied).
func (d *decoder) bytes(what string) ([]byte, error) {
	n, err := d.vint(what + " length")
	if err != nil {
		return nil, err
	}
	if n < 0 || int(n) > len(d.b)-d.off {
		return nil, fmt.Errorf("%w: %s at offset %d: length %d exceeds the %d bytes left", ErrMalformed, what, d.off, n, len(d.b)-d.off)
	}
	out := make([]byte, n)
	copy(out, d.b[d.off:d.off+int(n)])
	d.off += int(n)
	return out, nil
}

// text reads a Hadoop Text: VInt byte length, then UTF-8 bytes.
func (d *decoder) text(what string) (string, error) {
	b, err := d.bytes(what)
	return string(b), err
}

// AppendText appends s as a Hadoop Text.
func AppendText(dst []byte, s string) []byte {
	dst = AppendVLong(dst, int64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = AppendVLong(dst, int64(len(b)))
	return append(dst, b...)
}
