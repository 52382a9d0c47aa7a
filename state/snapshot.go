package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// The key group snapshot format is described in the package documentation
// (doc.go). The decoder bounds every length it reads.
const (
	snapshotMagic = "TWKG"
	// SnapshotVersion is the version of the format SnapshotKeyGroup writes.
	SnapshotVersion = 1

	flagTimestamps   = 1
	maxEntryKeyLen   = 1 << 20
	maxEntryValueLen = 1 << 28
	snapshotChunk    = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of RestoreKeyGroup.
var (
	// ErrCorruptSnapshot is wrapped by every CorruptSnapshotError.
	ErrCorruptSnapshot = errors.New("state: corrupt key group snapshot")
	// ErrSnapshotMismatch means a well-formed snapshot does not fit the
	// store: another key group, a state the store does not have, or a
	// state of another kind.
	ErrSnapshotMismatch = errors.New("state: snapshot does not match the store")
)

// CorruptSnapshotError reports input that is not a valid key group
// snapshot: truncated, altered, or of an unknown version.
type CorruptSnapshotError struct {
	Offset int64  // the byte at which the problem showed
	Reason string // what is wrong
	Err    error  // the cause, if any (io.ErrUnexpectedEOF, a decode error)
}

func (e *CorruptSnapshotError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("corrupt snapshot at byte %d: %s: %v", e.Offset, e.Reason, e.Err)
	}
	return fmt.Sprintf("corrupt snapshot at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorruptSnapshot) hold, and reaches the cause.
func (e *CorruptSnapshotError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorruptSnapshot, e.Err}
	}
	return []error{ErrCorruptSnapshot}
}

// SnapshotKeyGroup writes the canonical snapshot of key group kg, every
// state's live entries, to w, on the calling goroutine. On Pebble it
// includes the key group's buffered writes without flushing them.
func (s *Store) SnapshotKeyGroup(kg int, w io.Writer) error {
	i, err := s.index(kg)
	if err != nil {
		return err
	}
	b := s.backend(s.route[i])
	now := s.nowMillis()
	sw := &snapWriter{w: w, buf: make([]byte, 0, snapshotChunk)}
	sw.buf = append(sw.buf, snapshotMagic...)
	sw.uvarint(SnapshotVersion)
	sw.uvarint(uint64(kg))
	states := s.sortedStates()
	sw.uvarint(uint64(len(states)))
	for _, ks := range states {
		base := ks.base()
		sw.uvarint(uint64(len(base.name)))
		sw.buf = append(sw.buf, base.name...)
		var flags byte
		if base.ttl != 0 {
			flags |= flagTimestamps
		}
		sw.buf = append(sw.buf, byte(base.kind), flags)
		err := b.scan(ks, kg, now, func(key []byte, ts int64, val []byte) error {
			sw.uvarint(uint64(len(key)))
			sw.buf = append(sw.buf, key...)
			if flags&flagTimestamps != 0 {
				sw.buf = binary.AppendVarint(sw.buf, ts)
			}
			sw.uvarint(uint64(len(val)))
			sw.buf = append(sw.buf, val...)
			return sw.maybeFlush()
		})
		if err != nil {
			return fmt.Errorf("state: snapshot key group %d: state %q: %w", kg, base.name, err)
		}
		sw.uvarint(0)
	}
	if err := sw.finish(); err != nil {
		return fmt.Errorf("state: snapshot key group %d: write: %w", kg, err)
	}
	return nil
}

// snapWriter buffers a snapshot and checksums what it writes.
type snapWriter struct {
	w   io.Writer
	buf []byte
	crc uint32
}

func (sw *snapWriter) uvarint(x uint64) { sw.buf = binary.AppendUvarint(sw.buf, x) }

func (sw *snapWriter) maybeFlush() error {
	if len(sw.buf) < snapshotChunk {
		return nil
	}
	return sw.flush()
}

func (sw *snapWriter) flush() error {
	sw.crc = crc32.Update(sw.crc, castagnoli, sw.buf)
	_, err := sw.w.Write(sw.buf)
	sw.buf = sw.buf[:0]
	return err
}

func (sw *snapWriter) finish() error {
	if err := sw.flush(); err != nil {
		return err
	}
	_, err := sw.w.Write(binary.BigEndian.AppendUint32(sw.buf[:0], sw.crc))
	return err
}

// RestoreKeyGroup replaces the content of key group kg, in whichever
// backend kg is on, with the snapshot r holds (as SnapshotKeyGroup writes
// it, from either backend). States of the store that the snapshot lacks
// become empty in kg; entries that have expired by now are dropped. On
// error nothing changes.
//
// The snapshot is untrusted input: truncated or altered snapshots fail with
// a CorruptSnapshotError, lengths are bounded and memory grows only with
// the bytes actually read. If r is an io.ByteReader (a *bufio.Reader, a
// *bytes.Reader) RestoreKeyGroup reads exactly the snapshot from it, so
// snapshots can be read back to back from one stream; otherwise it may
// read ahead.
func (s *Store) RestoreKeyGroup(kg int, r io.Reader) error {
	i, err := s.index(kg)
	if err != nil {
		return err
	}
	ld, err := s.backend(s.route[i]).newLoader(kg, true)
	if err != nil {
		return fmt.Errorf("state: restore key group %d: %w", kg, err)
	}
	if err := s.readSnapshot(kg, newSnapReader(r), ld); err != nil {
		ld.abort()
		return fmt.Errorf("state: restore key group %d: %w", kg, err)
	}
	if err := ld.commit(); err != nil {
		return fmt.Errorf("state: restore key group %d: %w", kg, err)
	}
	return nil
}

// readSnapshot reads a snapshot of key group kg into ld.
func (s *Store) readSnapshot(kg int, r *snapReader, ld groupLoader) error {
	magic, err := r.read(nil, len(snapshotMagic), "magic")
	if err != nil {
		return err
	}
	if string(magic) != snapshotMagic {
		return r.corrupt(0, fmt.Sprintf("magic %q is not %q", magic, snapshotMagic), nil)
	}
	if v, err := r.uvarint("version"); err != nil {
		return err
	} else if v != SnapshotVersion {
		return r.corrupt(len(magic), fmt.Sprintf("unknown version %d (this build reads %d)", v, SnapshotVersion), nil)
	}
	if g, err := r.uvarint("key group"); err != nil {
		return err
	} else if g != uint64(kg) {
		return fmt.Errorf("snapshot is of key group %d: %w", g, ErrSnapshotMismatch)
	}
	n, err := r.uvarint("state count")
	if err != nil {
		return err
	}
	now := s.nowMillis()
	var prevName string
	var key, prevKey, val []byte
	for si := uint64(0); si < n; si++ {
		l, err := r.uvarint("state name length")
		if err != nil {
			return err
		}
		if l == 0 || l > maxStateNameLen {
			return r.corrupt(0, fmt.Sprintf("state %d: name length %d outside [1, %d]", si, l, maxStateNameLen), nil)
		}
		nb, err := r.read(nil, int(l), "state name")
		if err != nil {
			return err
		}
		name := string(nb)
		if si > 0 && name <= prevName {
			return r.corrupt(0, fmt.Sprintf("state %q follows %q: states out of order", name, prevName), nil)
		}
		prevName = name
		ks := s.names[name]
		if ks == nil {
			return fmt.Errorf("snapshot has state %q, which the store does not: %w", name, ErrSnapshotMismatch)
		}
		base := ks.base()
		hdr, err := r.read(nil, 2, "state kind and flags")
		if err != nil {
			return err
		}
		if k := kind(hdr[0]); k != base.kind {
			return fmt.Errorf("snapshot has state %q as a %s state, the store as a %s state: %w", name, k, base.kind, ErrSnapshotMismatch)
		}
		flags := hdr[1]
		if flags&^flagTimestamps != 0 {
			return r.corrupt(1, fmt.Sprintf("state %q: unknown flags %#x", name, flags), nil)
		}
		prevKey = prevKey[:0]
		for e := 0; ; e++ {
			kl, err := r.uvarint("entry key length")
			if err != nil {
				return err
			}
			if kl == 0 {
				break
			}
			if kl > maxEntryKeyLen {
				return r.corrupt(0, fmt.Sprintf("state %q entry %d: key length %d exceeds %d", name, e, kl, maxEntryKeyLen), nil)
			}
			if key, err = r.read(key, int(kl), "entry key"); err != nil {
				return err
			}
			if e > 0 && bytes.Compare(key, prevKey) <= 0 {
				return r.corrupt(int(kl), fmt.Sprintf("state %q entry %d: keys out of order", name, e), nil)
			}
			var ts int64
			if flags&flagTimestamps != 0 {
				x, err := r.uvarint("entry timestamp")
				if err != nil {
					return err
				}
				ts = int64(x>>1) ^ -int64(x&1) // zig-zag, as binary.AppendVarint
			}
			switch {
			case base.ttl == 0:
				ts = 0
			case flags&flagTimestamps == 0:
				ts = now // a state that has gained a TTL: its entries start now
			}
			vl, err := r.uvarint("entry value length")
			if err != nil {
				return err
			}
			if vl > maxEntryValueLen {
				return r.corrupt(0, fmt.Sprintf("state %q entry %d: value length %d exceeds %d", name, e, vl, maxEntryValueLen), nil)
			}
			if val, err = r.read(val, int(vl), "entry value"); err != nil {
				return err
			}
			if base.live(ts, now) {
				if err := ld.add(ks, key, ts, val); err != nil {
					return r.corrupt(0, fmt.Sprintf("state %q entry %d", name, e), err)
				}
			}
			key, prevKey = prevKey, key
		}
	}
	sum := r.crc
	trailer, err := r.read(nil, 4, "checksum")
	if err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(trailer); got != sum {
		return r.corrupt(4, fmt.Sprintf("checksum %08x, want %08x", got, sum), nil)
	}
	return nil
}

// snapReader reads a snapshot, counting and checksumming what it reads.
type snapReader struct {
	r   io.Reader
	br  io.ByteReader
	off int64
	crc uint32
	one [1]byte
}

func newSnapReader(r io.Reader) *snapReader {
	br, ok := r.(io.ByteReader)
	if !ok {
		b := bufio.NewReader(r)
		r, br = b, b
	}
	return &snapReader{r: r, br: br}
}

// corrupt returns a CorruptSnapshotError for a problem in the back bytes
// last read.
func (r *snapReader) corrupt(back int, reason string, err error) error {
	return &CorruptSnapshotError{Offset: r.off - int64(back), Reason: reason, Err: err}
}

// ioErr turns a read error into a truncation (corrupt) or read failure.
func (r *snapReader) ioErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return r.corrupt(0, "truncated in "+what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read snapshot at byte %d (%s): %w", r.off, what, err)
}

func (r *snapReader) uvarint(what string) (uint64, error) {
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, r.ioErr(what, err)
		}
		r.one[0] = b
		r.crc = crc32.Update(r.crc, castagnoli, r.one[:])
		r.off++
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, r.corrupt(0, what+": varint overflows 64 bits", nil)
}

// read reads n bytes into dst (reusing its array) and returns them. It
// grows dst as the bytes arrive, never to more than twice what was read,
// whatever n a corrupt length field claims.
func (r *snapReader) read(dst []byte, n int, what string) ([]byte, error) {
	dst = dst[:0]
	for len(dst) < n {
		m := len(dst)
		c := min(n-m, snapshotChunk)
		dst = slices.Grow(dst, c)[:m+c]
		if _, err := io.ReadFull(r.r, dst[m:]); err != nil {
			return nil, r.ioErr(what, err)
		}
		r.crc = crc32.Update(r.crc, castagnoli, dst[m:])
		r.off += int64(c)
	}
	return dst, nil
}
