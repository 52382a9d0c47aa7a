package ipc

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
)

// FuzzFrameReader feeds arbitrary streams to the frame reader: it must not
// panic, must respect the length limit, and every frame it returns must
// re-encode to exactly the bytes it consumed.
func FuzzFrameReader(f *testing.F) {
	for _, name := range []string{"am-rm", "am-nm-1-start-c02", "probe/rm-1-simple-auth-rejected"} {
		s, err := recorded.Load(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.S2C)
		f.Add(s.C2S[7:])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 2, 5, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		r := bytes.NewReader(b)
		fr := NewFrameReader(r, limit)
		consumed := 0
		for {
			frame, err := fr.ReadFrame()
			if err != nil {
				if errors.Is(err, io.EOF) && consumed != len(b) {
					t.Fatalf("EOF after %d of %d bytes", consumed, len(b))
				}
				return
			}
			enc := AppendFrame(nil, frame...)
			if len(enc)-4 > limit {
				t.Fatalf("frame of %d bytes passed the %d limit", len(enc)-4, limit)
			}
			if !bytes.Equal(enc, b[consumed:consumed+len(enc)]) {
				t.Fatalf("frame does not re-encode to its bytes")
			}
			consumed += len(enc)
			if _, err := DecodeResponseHeader(frame); err != nil && !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("header decode error not classified: %v", err)
			}
		}
	})
}
