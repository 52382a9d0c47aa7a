package ipc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/digestmd5"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// recordedPasswords maps the identifiers of every token the recordings use
// to their passwords: the AMRM tokens of the two token files and the NM
// tokens handed out in recorded allocate responses.
func recordedPasswords(t *testing.T) map[string]token.Token {
	t.Helper()
	out := map[string]token.Token{}
	var files [][]byte
	for _, f := range []string{"../token/testdata/container_tokens.bin", "../token/testdata/container_tokens_probe.bin"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	b, err := recorded.File("privacy/container_tokens.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append(files, b) {
		c, err := token.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.AMRMToken()
		if err != nil {
			t.Fatal(err)
		}
		out[string(tok.Identifier)] = tok
	}
	for _, name := range recorded.Names() {
		s, err := recorded.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range s.FramesIn(recorded.S2C) {
			if len(fr.Parts) != 2 || fr.Parts[1].Type != "AllocateResponseProto" {
				continue
			}
			f, err := SplitFrame(fr.Raw[4:])
			if err != nil {
				t.Fatal(err)
			}
			var ar hadoopproto.AllocateResponseProto
			if err := proto.Unmarshal(f[1], &ar); err != nil {
				t.Fatal(err)
			}
			for _, nt := range ar.GetNmTokens() {
				out[string(nt.GetToken().GetIdentifier())] = token.FromProto(nt.GetToken())
			}
		}
	}
	return out
}

// saslOf extracts the SASL messages of a session: challenge, INITIATE token
// and SUCCESS token (nil when absent).
func saslOf(t *testing.T, s *recorded.Session) (challenge, initiate, success []byte) {
	t.Helper()
	for _, fr := range s.Frames {
		if len(fr.Parts) != 2 || fr.Parts[1].Type != "RpcSaslProto" {
			continue
		}
		f, err := SplitFrame(fr.Raw[4:])
		if err != nil {
			t.Fatal(err)
		}
		var m hadoopproto.RpcSaslProto
		if err := proto.Unmarshal(f[1], &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case fr.Dir == recorded.S2C && m.GetState() == hadoopproto.RpcSaslProto_NEGOTIATE:
			challenge = m.GetAuths()[0].GetChallenge()
		case fr.Dir == recorded.C2S && m.GetState() == hadoopproto.RpcSaslProto_INITIATE:
			initiate = m.GetToken()
		case fr.Dir == recorded.S2C && m.GetState() == hadoopproto.RpcSaslProto_SUCCESS:
			success = m.GetToken()
		}
	}
	return challenge, initiate, success
}

// TestRecordedSASLExchanges recomputes response and rspauth of every SASL
// handshake in the recordings from the real tokens. The probe with a wrong
// password must not verify.
func TestRecordedSASLExchanges(t *testing.T) {
	toks := recordedPasswords(t)
	checked := 0
	for _, name := range recorded.Names() {
		s, err := recorded.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		challenge, initiate, success := saslOf(t, s)
		if initiate == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ch, err := digestmd5.ParseChallenge(challenge)
			if err != nil {
				t.Fatal(err)
			}
			r, err := digestmd5.ParseResponse(initiate)
			if err != nil {
				t.Fatal(err)
			}
			if r.Nonce != ch.Nonce || r.DigestURI != "/default" || r.Realm != "default" || r.NC != digestmd5.NC {
				t.Fatalf("response %+v does not answer challenge %+v", r, ch)
			}
			id, err := base64.StdEncoding.DecodeString(r.Username)
			if err != nil {
				t.Fatal(err)
			}
			tok, ok := toks[string(id)]
			if !ok {
				t.Fatalf("no recorded token for username %s", r.Username)
			}
			ok = digestmd5.ComputeResponse(tok.SASLPassword(), r) == r.Response
			if wantOK := strings.Contains(name, "wrong-password") == false; ok != wantOK {
				t.Fatalf("response verifies = %v, want %v", ok, wantOK)
			}
			if success != nil {
				got, err := digestmd5.ParseRspAuth(success)
				if err != nil {
					t.Fatal(err)
				}
				if want := digestmd5.ComputeRspAuth(tok.SASLPassword(), r); got != want {
					t.Errorf("rspauth %s, want %s", got, want)
				}
			}
			checked++
		})
	}
	if checked < 10 {
		t.Errorf("checked %d handshakes", checked)
	}
}

type replayCase struct {
	name string
	auth AuthMethod
	user string
	// corruptRspAuth replaces the server's rspauth; the client must refuse.
	corruptRspAuth bool
}

// TestClientReplaysRecordedSessions runs the client against a scripted
// server that plays the recorded server bytes. With the recorded clientId,
// cnonce and call ids injected, every byte the client sends must equal what
// the Java client (or the probe client) sent, and every response must decode
// to the recorded message or RemoteException.
func TestClientReplaysRecordedSessions(t *testing.T) {
	cases := []replayCase{
		{name: "am-rm"},
		{name: "am-nm-1-start-c02"},
		{name: "am-nm-2-status-c02"},
		{name: "am-nm-5-stop-c02"},
		{name: "rm-nm-launch-am"},
		{name: "probe/nm-7-full-session"},
		{name: "probe/rm-5-allocate-before-register"},
		{name: "probe/rm-6-full-session"},
		{name: "probe/rm-1-simple-auth-rejected", auth: AuthSimple, user: "root"},
		{name: "am-rm", corruptRspAuth: true},
		// hadoop.rpc.protection=privacy: qop auth-conf, cipher 3des.
		{name: "privacy/am-rm"},
		{name: "privacy/am-nm-1-start-c02"},
		{name: "privacy/am-nm-2-status-c02"},
		{name: "privacy/am-nm-3-stop-c02"},
		{name: "privacy/rm-nm-launch-am"},
		{name: "privacy/rm-nm-cleanup-am"},
	}
	toks := recordedPasswords(t)
	for _, tc := range cases {
		name := tc.name
		if tc.corruptRspAuth {
			name += "/corrupt-rspauth"
		}
		t.Run(name, func(t *testing.T) { replay(t, tc, toks) })
	}
}

var responseTypes = map[string]func() proto.Message{
	hadoopproto.MethodRegisterApplicationMaster: func() proto.Message { return &hadoopproto.RegisterApplicationMasterResponseProto{} },
	hadoopproto.MethodAllocate:                  func() proto.Message { return &hadoopproto.AllocateResponseProto{} },
	hadoopproto.MethodFinishApplicationMaster:   func() proto.Message { return &hadoopproto.FinishApplicationMasterResponseProto{} },
	hadoopproto.MethodStartContainers:           func() proto.Message { return &hadoopproto.StartContainersResponseProto{} },
	hadoopproto.MethodStopContainers:            func() proto.Message { return &hadoopproto.StopContainersResponseProto{} },
	hadoopproto.MethodGetContainerStatuses:      func() proto.Message { return &hadoopproto.GetContainerStatusesResponseProto{} },
}

func replay(t *testing.T, tc replayCase, toks map[string]token.Token) {
	s, err := recorded.Load(tc.name)
	if err != nil {
		t.Fatal(err)
	}
	frames := append([]recorded.Frame(nil), s.Frames...)
	split := func(fr recorded.Frame) Frame {
		f, err := SplitFrame(fr.Raw[4:])
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	// What the recording tells us about the client side.
	var (
		clientID []byte
		callIDs  []int32
		protocol string
		calls    []Frame
	)
	for _, fr := range frames {
		if fr.Dir != recorded.C2S {
			continue
		}
		f := split(fr)
		h, err := DecodeRequestHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		switch id := h.GetCallId(); {
		case id == CallIDConnectionContext:
			clientID = h.GetClientId()
			var cc hadoopproto.IpcConnectionContextProto
			if err := proto.Unmarshal(f[1], &cc); err != nil {
				t.Fatal(err)
			}
			protocol = cc.GetProtocol()
		case id >= 0:
			callIDs = append(callIDs, id)
			calls = append(calls, f)
		}
	}
	_, initiate, _ := saslOf(t, s)
	opts := Options{Addrs: []string{"recorded.invalid:1"}, Protocol: protocol, Auth: tc.auth, User: tc.user}
	if tc.auth == AuthToken {
		r, err := digestmd5.ParseResponse(initiate)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := base64.StdEncoding.DecodeString(r.Username)
		opts.Token = toks[string(id)]
	}
	if tc.corruptRspAuth {
		for i, fr := range frames {
			if fr.Dir != recorded.S2C || !strings.Contains(fr.Title, "SUCCESS") || len(fr.Parts) != 2 || fr.Parts[1].Type != "RpcSaslProto" {
				continue
			}
			f := split(fr)
			var m hadoopproto.RpcSaslProto
			_ = proto.Unmarshal(f[1], &m)
			m.Token = []byte("rspauth=00000000000000000000000000000000")
			b, _ := proto.Marshal(&m)
			frames[i].Raw = AppendFrame(nil, f[0], b)
		}
	}

	clientEnd, serverEnd := net.Pipe()
	opts.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) { return clientEnd, nil }
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.clientID = clientID
	if initiate != nil {
		r, _ := digestmd5.ParseResponse(initiate)
		c.newCNonce = func() (string, error) { return r.CNonce, nil }
	}
	var mu sync.Mutex
	next := 0
	c.nextCallID = func() int32 {
		mu.Lock()
		defer mu.Unlock()
		id := callIDs[next]
		next++
		return id
	}

	script := frames
	if s.Wrapped {
		script = wireScript(t, s)
	}

	// The scripted server.
	scriptErr := make(chan error, 1)
	go func() {
		defer serverEnd.Close()
		pre := make([]byte, 7)
		if _, err := io.ReadFull(serverEnd, pre); err != nil {
			scriptErr <- err
			return
		}
		if !bytes.Equal(pre, s.Preamble) {
			scriptErr <- errors.New("preamble differs")
			return
		}
		fr := NewFrameReader(serverEnd, 0)
		for _, want := range script {
			if want.Dir == recorded.S2C {
				if _, err := serverEnd.Write(want.Raw); err != nil {
					scriptErr <- err
					return
				}
				continue
			}
			got, err := fr.ReadFrame()
			if err != nil {
				scriptErr <- err
				return
			}
			if b := AppendFrame(nil, got...); !bytes.Equal(b, want.Raw) {
				scriptErr <- errors.New("client frame differs from recorded frame " + want.Title + ":\n got " + hexs(b) + "\nwant " + hexs(want.Raw))
				return
			}
		}
		scriptErr <- nil
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, f := range calls {
		var rh hadoopproto.RequestHeaderProto
		if err := proto.Unmarshal(f[1], &rh); err != nil {
			t.Fatal(err)
		}
		newResp, ok := responseTypes[rh.GetMethodName()]
		if !ok {
			t.Fatalf("no response type for %s", rh.GetMethodName())
		}
		req := requestFor(t, rh.GetMethodName())
		if err := proto.Unmarshal(f[2], req); err != nil {
			t.Fatal(err)
		}
		resp := newResp()
		err := c.Call(ctx, rh.GetMethodName(), req, resp)
		want := findResponse(t, frames, callIDs[i])
		if tc.corruptRspAuth {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("call with a bad rspauth: err %v, want ErrAuth", err)
			}
			break
		}
		if want == nil {
			t.Fatalf("no recorded response for callId %d", callIDs[i])
		}
		h, _ := DecodeResponseHeader(want)
		switch h.GetStatus() {
		case hadoopproto.RpcResponseHeaderProto_SUCCESS:
			if err != nil {
				t.Fatalf("call %d %s: %v", callIDs[i], rh.GetMethodName(), err)
			}
			wantResp := newResp()
			_ = proto.Unmarshal(want[1], wantResp)
			if !proto.Equal(resp, wantResp) {
				t.Errorf("call %d: response differs from the recording", callIDs[i])
			}
		default:
			var re *RemoteError
			if !errors.As(err, &re) || re.Class != h.GetExceptionClassName() || re.Status != h.GetStatus() || re.Message != h.GetErrorMsg() {
				t.Fatalf("call %d: err %v, want RemoteException %s", callIDs[i], err, h.GetExceptionClassName())
			}
			if re.Fatal() && re.CallID < 0 && !errors.Is(err, ErrAuth) {
				t.Errorf("FATAL during setup is not ErrAuth: %v", err)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-scriptErr; err != nil && !tc.corruptRspAuth {
		t.Fatal(err)
	}
}

// wireScript returns the frames of a wrapped session as they crossed the
// wire: the SASL exchange as listed, then the WRAP frames of both
// directions, which alternate (each call's request, then its response).
func wireScript(t *testing.T, s *recorded.Session) []recorded.Frame {
	t.Helper()
	var out []recorded.Frame
	for _, fr := range s.Frames {
		out = append(out, fr)
		if fr.Dir == recorded.S2C && strings.Contains(fr.Title, "SASL SUCCESS") {
			break
		}
	}
	wrapFrames := func(stream []byte, dir recorded.Direction, skip int) []recorded.Frame {
		fr := NewFrameReader(bytes.NewReader(stream), 0)
		var out []recorded.Frame
		for i := 0; ; i++ {
			f, err := fr.ReadFrame()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			if i >= skip {
				out = append(out, recorded.Frame{Dir: dir, Title: "WRAP", Raw: AppendFrame(nil, f...)})
			}
		}
	}
	handshake := func(d recorded.Direction) int {
		n := 0
		for _, fr := range out {
			if fr.Dir == d {
				n++
			}
		}
		return n
	}
	c2s := wrapFrames(s.WireC2S[7:], recorded.C2S, handshake(recorded.C2S))
	s2c := wrapFrames(s.WireS2C, recorded.S2C, handshake(recorded.S2C))
	if len(c2s) != len(s2c) || len(c2s) == 0 {
		t.Fatalf("%d client and %d server WRAP frames do not alternate", len(c2s), len(s2c))
	}
	for i := range c2s {
		out = append(out, c2s[i], s2c[i])
	}
	return out
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

func requestFor(t *testing.T, method string) proto.Message {
	switch method {
	case hadoopproto.MethodRegisterApplicationMaster:
		return &hadoopproto.RegisterApplicationMasterRequestProto{}
	case hadoopproto.MethodAllocate:
		return &hadoopproto.AllocateRequestProto{}
	case hadoopproto.MethodFinishApplicationMaster:
		return &hadoopproto.FinishApplicationMasterRequestProto{}
	case hadoopproto.MethodStartContainers:
		return &hadoopproto.StartContainersRequestProto{}
	case hadoopproto.MethodStopContainers:
		return &hadoopproto.StopContainersRequestProto{}
	case hadoopproto.MethodGetContainerStatuses:
		return &hadoopproto.GetContainerStatusesRequestProto{}
	}
	t.Fatalf("unknown method %s", method)
	return nil
}

// findResponse returns the recorded server frame answering callID: the
// response with that id, or a FATAL setup error (negative id).
func findResponse(t *testing.T, frames []recorded.Frame, callID int32) Frame {
	for _, fr := range frames {
		if fr.Dir != recorded.S2C {
			continue
		}
		f, err := SplitFrame(fr.Raw[4:])
		if err != nil {
			t.Fatal(err)
		}
		h, _ := DecodeResponseHeader(f)
		if id := ResponseCallID(h); id == callID || (id < 0 && id != CallIDSASL && h.GetStatus() == hadoopproto.RpcResponseHeaderProto_FATAL) {
			return f
		}
	}
	return nil
}
