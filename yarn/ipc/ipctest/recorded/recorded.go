// Package recorded gives tests access to the real Hadoop 3.3.6 IPC sessions
// recorded in testdata/ (copied from samples/yarn/ipc): the raw byte stream
// of each direction and, parsed from the matching .frames.txt, the list of
// frames with their direction, raw bytes and message layout. Tests feed the
// byte streams to the frame reader and compare with the listed frames, and
// replay sessions against the client.
package recorded

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed testdata
var files embed.FS

// Direction of a frame.
type Direction int

const (
	C2S Direction = iota // client to server
	S2C                  // server to client
)

func (d Direction) String() string {
	if d == C2S {
		return "C->S"
	}
	return "S->C"
}

// Part is one varint-delimited message of a frame as listed in the layout.
type Part struct {
	Len  int
	Type string // e.g. "RpcRequestHeaderProto", "AllocateRequestProto"
}

// Frame is one frame listed in a .frames.txt file.
type Frame struct {
	Index int
	Dir   Direction
	Title string // e.g. "SASL NEGOTIATE", "CALL 1 allocate request"
	Raw   []byte // the whole frame, length prefix included
	Parts []Part
}

// Session is one recorded connection.
type Session struct {
	Name     string
	Preamble []byte
	Frames   []Frame // in capture order, preamble excluded
	C2S, S2C []byte  // the byte streams as captured; for Wrapped sessions, unwrapped

	// Wrapped sessions ran with a SASL security layer (privacy/: qop
	// auth-conf, cipher 3des). WireC2S and WireS2C are their streams as
	// captured, with every byte after SASL SUCCESS inside WRAP frames;
	// Frames and C2S/S2C are the plain frames inside.
	Wrapped          bool
	WireC2S, WireS2C []byte
}

// File returns a raw file from testdata, e.g. "digest-md5-vector.txt".
func File(name string) ([]byte, error) { return files.ReadFile(path.Join("testdata", name)) }

// Names lists the recorded sessions (e.g. "am-rm", "probe/rm-6-full-session").
func Names() []string {
	var out []string
	_ = fs.WalkDir(files, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".frames.txt") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(p, "testdata/"), ".frames.txt"))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

var (
	frameRe    = regexp.MustCompile(`^=== frame (\d+)\s+(C->S|S->C)\s.*?\(\d+ bytes on the wire\)\s*(.*)$`)
	preambleRe = regexp.MustCompile(`^\s+CONNECTION PREAMBLE: ([0-9a-f ]+)$`)
	hexLineRe  = regexp.MustCompile(`^\s+[0-9a-f]{4}: (.*)$`)
	partRe     = regexp.MustCompile(`^\s+varint [0-9a-f ]+ \(= (\d+)\) \+ (\w+)$`)
)

// Load reads a session by name.
func Load(name string) (*Session, error) {
	txt, err := File(name + ".frames.txt")
	if err != nil {
		return nil, err
	}
	s := &Session{Name: name}
	plain := name
	if s.WireC2S, err = File(name + ".wire.c2s.bin"); err == nil {
		s.Wrapped, plain = true, name+".plain"
		if s.WireS2C, err = File(name + ".wire.s2c.bin"); err != nil {
			return nil, err
		}
	}
	if s.C2S, err = File(plain + ".c2s.bin"); err != nil {
		return nil, err
	}
	if s.S2C, err = File(plain + ".s2c.bin"); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(txt))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur *Frame
	state := "" // "", "raw", "layout"
	flush := func() {
		if cur != nil && cur.Raw != nil {
			s.Frames = append(s.Frames, *cur)
		}
		cur = nil
	}
	for sc.Scan() {
		line := sc.Text()
		if m := frameRe.FindStringSubmatch(line); m != nil {
			flush()
			idx, _ := strconv.Atoi(m[1])
			dir := C2S
			if m[2] == "S->C" {
				dir = S2C
			}
			cur = &Frame{Index: idx, Dir: dir, Title: strings.TrimSpace(m[3])}
			state = ""
			continue
		}
		if cur == nil {
			continue
		}
		if m := preambleRe.FindStringSubmatch(line); m != nil {
			b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
			if err != nil {
				return nil, fmt.Errorf("recorded %s: preamble: %v", name, err)
			}
			s.Preamble = b
			continue
		}
		switch {
		case strings.HasPrefix(line, "  raw frame:"):
			state = "raw"
			cur.Raw = []byte{}
			continue
		case strings.HasPrefix(line, "  layout:"):
			state = "layout"
			continue
		}
		switch state {
		case "raw":
			m := hexLineRe.FindStringSubmatch(line)
			if m == nil {
				state = ""
				continue
			}
			for _, tok := range strings.Fields(m[1]) {
				if strings.HasPrefix(tok, "|") {
					break
				}
				b, err := hex.DecodeString(tok)
				if err != nil || len(b) != 1 {
					return nil, fmt.Errorf("recorded %s frame %d: bad hex %q", name, cur.Index, tok)
				}
				cur.Raw = append(cur.Raw, b[0])
			}
		case "layout":
			m := partRe.FindStringSubmatch(line)
			if m == nil {
				state = ""
				continue
			}
			n, _ := strconv.Atoi(m[1])
			cur.Parts = append(cur.Parts, Part{Len: n, Type: m[2]})
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s.Frames) == 0 {
		return nil, fmt.Errorf("recorded %s: no frames found", name)
	}
	return s, nil
}

// Frames returns the session's frames in one direction.
func (s *Session) FramesIn(d Direction) []Frame {
	var out []Frame
	for _, f := range s.Frames {
		if f.Dir == d {
			out = append(out, f)
		}
	}
	return out
}
