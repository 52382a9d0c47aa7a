package ipc

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
)

// messageType finds a message of the recorded layout by its short name in
// yarn/hadoopproto's tidewatch.hadoop.common or tidewatch.hadoop.yarn (Hadoop's
// hadoop.common and hadoop.yarn, renamed; the wire carries no type names).
func messageType(t *testing.T, name string) protoreflect.MessageType {
	t.Helper()
	for _, pkg := range []string{"tidewatch.hadoop.common.", "tidewatch.hadoop.yarn."} {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(pkg + name)); err == nil {
			return mt
		}
	}
	t.Fatalf("message %s is not in yarn/hadoopproto", name)
	return nil
}

// unknownFields returns the paths of messages in m that carry unknown fields.
func unknownFields(m protoreflect.Message, path string) []string {
	var out []string
	if len(m.GetUnknown()) > 0 {
		out = append(out, path)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		p := path + "." + string(fd.Name())
		if fd.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				out = append(out, unknownFields(v.List().Get(i).Message(), p+"["+strconv.Itoa(i)+"]")...)
			}
		} else {
			out = append(out, unknownFields(v.Message(), p)...)
		}
		return true
	})
	return out
}

var (
	titleCallRe     = regexp.MustCompile(`^CALL (\d+) (\w+) (request|response)`)
	titleResponseRe = regexp.MustCompile(`^RESPONSE callId (-?\d+) status (\w+) (\S+)`)
)

// TestRecordedStreamsParse feeds every recorded byte stream to the frame
// reader and expects exactly the frames of the matching .frames.txt: same
// bytes, same message layout, headers that say what the listing says, and
// bodies that decode with yarn/hadoopproto without unknown fields and
// re-encode to the captured bytes.
func TestRecordedStreamsParse(t *testing.T) {
	for _, name := range recorded.Names() {
		t.Run(name, func(t *testing.T) {
			s, err := recorded.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			c2s := bytes.NewReader(s.C2S)
			p, err := ReadPreamble(c2s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Bytes(), s.Preamble) {
				t.Fatalf("preamble % x, listing says % x", p.Bytes(), s.Preamble)
			}
			if p.Version != RPCVersion {
				t.Errorf("preamble version %d", p.Version)
			}
			streams := map[recorded.Direction]io.Reader{recorded.C2S: c2s, recorded.S2C: bytes.NewReader(s.S2C)}
			for dir, r := range streams {
				fr := NewFrameReader(r, 0)
				want := s.FramesIn(dir)
				for i := 0; ; i++ {
					f, err := fr.ReadFrame()
					if errors.Is(err, io.EOF) {
						if i != len(want) {
							t.Fatalf("%v: stream holds %d frames, listing %d", dir, i, len(want))
						}
						break
					}
					if err != nil {
						t.Fatalf("%v frame %d: %v", dir, i, err)
					}
					if i >= len(want) {
						t.Fatalf("%v: stream holds more frames than the %d listed", dir, len(want))
					}
					checkRecordedFrame(t, dir, want[i], f)
				}
			}
		})
	}
}

func checkRecordedFrame(t *testing.T, dir recorded.Direction, want recorded.Frame, f Frame) {
	t.Helper()
	if got := AppendFrame(nil, f...); !bytes.Equal(got, want.Raw) {
		t.Fatalf("frame %d (%s): bytes differ from the listing", want.Index, want.Title)
	}
	if len(f) != len(want.Parts) {
		t.Fatalf("frame %d: %d messages, listing has %d", want.Index, len(f), len(want.Parts))
	}
	for j, part := range want.Parts {
		if len(f[j]) != part.Len {
			t.Fatalf("frame %d message %d: %d bytes, listing %d", want.Index, j, len(f[j]), part.Len)
		}
		mt := messageType(t, part.Type)
		m := mt.New().Interface()
		if err := proto.Unmarshal(f[j], m); err != nil {
			t.Fatalf("frame %d: decode %s: %v", want.Index, part.Type, err)
		}
		if u := unknownFields(m.ProtoReflect(), part.Type); len(u) > 0 {
			t.Errorf("frame %d: %s has unknown fields at %v", want.Index, part.Type, u)
		}
		re, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("frame %d: re-encode %s: %v", want.Index, part.Type, err)
		}
		if !bytes.Equal(re, f[j]) {
			t.Errorf("frame %d: %s re-encodes differently:\n got % x\nwant % x", want.Index, part.Type, re, f[j])
		}
	}
	if dir == recorded.C2S {
		h, err := DecodeRequestHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		var wantID int32
		switch m := titleCallRe.FindStringSubmatch(want.Title); {
		case m != nil:
			n, _ := strconv.Atoi(m[1])
			wantID = int32(n)
			var rh hadoopproto.RequestHeaderProto
			if err := proto.Unmarshal(f[1], &rh); err != nil {
				t.Fatal(err)
			}
			if rh.GetMethodName() != m[2] {
				t.Errorf("frame %d: method %q, listing %q", want.Index, rh.GetMethodName(), m[2])
			}
			if h.GetRetryCount() != 0 || len(h.GetClientId()) != 16 {
				t.Errorf("frame %d: call header retry %d clientId %d bytes", want.Index, h.GetRetryCount(), len(h.GetClientId()))
			}
		case want.Title == "CONNECTION CONTEXT":
			wantID = CallIDConnectionContext
		default: // SASL
			wantID = CallIDSASL
			if len(h.GetClientId()) != 0 || h.GetRetryCount() != -1 || h.ClientId == nil {
				t.Errorf("frame %d: SASL header clientId %x retry %d", want.Index, h.GetClientId(), h.GetRetryCount())
			}
		}
		if h.GetCallId() != wantID {
			t.Errorf("frame %d (%s): callId %d, want %d", want.Index, want.Title, h.GetCallId(), wantID)
		}
		if h.RpcKind == nil || h.RpcOp == nil {
			t.Errorf("frame %d: rpcKind/rpcOp not present", want.Index)
		}
		return
	}
	h, err := DecodeResponseHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	id := ResponseCallID(h)
	if m := titleCallRe.FindStringSubmatch(want.Title); m != nil {
		n, _ := strconv.Atoi(m[1])
		if id != int32(n) || h.GetStatus() != hadoopproto.RpcResponseHeaderProto_SUCCESS {
			t.Errorf("frame %d: callId %d status %v, listing %s", want.Index, id, h.GetStatus(), want.Title)
		}
	} else if m := titleResponseRe.FindStringSubmatch(want.Title); m != nil {
		n, _ := strconv.Atoi(m[1])
		re := remoteErrorFrom(h, "")
		if id != int32(n) || re.Status.String() != m[2] || re.Class != m[3] {
			t.Errorf("frame %d: %v, listing %s", want.Index, re, want.Title)
		}
	} else if id != CallIDSASL {
		t.Errorf("frame %d (%s): callId %d", want.Index, want.Title, id)
	}
}
