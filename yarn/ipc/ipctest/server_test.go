package ipctest

import (
	"bytes"
	"io"
	"net"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
)

// The FATAL answers of the test server are byte-identical to what the real
// 3.3.6 RM sent in the probe recordings.
func TestFatalHeadersMatchRecordings(t *testing.T) {
	tests := []struct {
		session string
		callID  int32
		class   string
		msg     string
	}{
		{"probe/rm-1-simple-auth-rejected", ipc.CallIDAuthFailed, ipc.ClassAccessControl, MsgSimpleNotEnabled},
		{"probe/rm-2-sasl-wrong-password", ipc.CallIDSASL, ipc.ClassSaslException, MsgMismatched},
		{"probe/rm-3-sasl-echo-without-protocol", ipc.CallIDSASL, ipc.ClassAccessControl, MsgTokenNotEnabled},
	}
	for _, tt := range tests {
		t.Run(tt.session, func(t *testing.T) {
			s, err := recorded.Load(tt.session)
			if err != nil {
				t.Fatal(err)
			}
			fr := s.FramesIn(recorded.S2C)
			last := fr[len(fr)-1]
			got, err := ipc.MarshalFrame(FatalHeader(tt.callID, tt.class, tt.msg, hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, last.Raw) {
				t.Errorf("FATAL frame\n got % x\nwant % x", got, last.Raw)
			}
		})
	}
}

// The SASL NEGOTIATE and SUCCESS headers are the recorded ones.
func TestSASLHeaderMatchesRecording(t *testing.T) {
	s, err := recorded.Load("am-rm")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ipc.SplitFrame(s.FramesIn(recorded.S2C)[0].Raw[4:])
	if err != nil {
		t.Fatal(err)
	}
	h := saslHeader()
	h.ServerIpcVersionNum = proto.Uint32(9)
	b, _ := proto.Marshal(h)
	if !bytes.Equal(b, f[0]) {
		t.Errorf("SASL header % x, recorded % x", b, f[0])
	}
}

// Playing the probe client's recorded bytes to the test server gets the
// recorded FATAL answer back, byte for byte.
func TestRecordedProbesAgainstServer(t *testing.T) {
	for _, name := range []string{"probe/rm-1-simple-auth-rejected", "probe/rm-3-sasl-echo-without-protocol"} {
		t.Run(name, func(t *testing.T) {
			s, err := recorded.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := NewServer(Options{Secrets: func([]byte) ([]byte, string, error) { return []byte("x"), "u", nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(s.C2S); err != nil {
				t.Fatal(err)
			}
			if tc, ok := nc.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			got, err := io.ReadAll(nc)
			if err != nil {
				t.Fatal(err)
			}
			fr := s.FramesIn(recorded.S2C)
			want := fr[len(fr)-1].Raw
			if !bytes.HasSuffix(got, want) {
				t.Errorf("server answered\n% x\nwant it to end with\n% x", got, want)
			}
			if srv.Stats().AuthFailures != 1 || srv.Stats().Calls != 0 {
				t.Errorf("stats %+v", srv.Stats())
			}
		})
	}
}
