package ipc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
	"github.com/tidewatch/tidewatch/yarn/token"
)

const testProtocol = hadoopproto.ApplicationMasterProtocolName

func testToken(id, pw string) token.Token {
	return token.Token{Identifier: []byte(id), Password: []byte(pw), Kind: token.KindAMRM}
}

// secrets accepts the given tokens; the user is "user-" + identifier.
func secrets(toks ...token.Token) ipctest.SecretFunc {
	return func(identifier []byte) ([]byte, string, error) {
		for _, t := range toks {
			if string(t.Identifier) == string(identifier) {
				return t.Password, "user-" + string(identifier), nil
			}
		}
		return nil, "", ipctest.ErrUnknownToken
	}
}

func newServer(t *testing.T, opts ipctest.Options) *ipctest.Server {
	t.Helper()
	s, err := ipctest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClient(t *testing.T, s *ipctest.Server, mod func(*ipc.Options)) *ipc.Client {
	t.Helper()
	o := ipc.DefaultOptions()
	o.Addrs = []string{s.Addr()}
	o.Protocol = testProtocol
	o.Token = testToken("id-1", "pw-1")
	if mod != nil {
		mod(&o)
	}
	c, err := ipc.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// echoAllocate answers allocate with response_id+1 and records the caller.
func echoAllocate(s *ipctest.Server, seen func(ipctest.CallInfo)) {
	ipctest.Handle(s, testProtocol, hadoopproto.MethodAllocate,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
			if seen != nil {
				seen(call)
			}
			return &hadoopproto.AllocateResponseProto{ResponseId: proto.Int32(req.GetResponseId() + 1)}, nil
		})
}

func allocate(ctx context.Context, c *ipc.Client, id int32) (int32, error) {
	var resp hadoopproto.AllocateResponseProto
	err := c.Call(ctx, hadoopproto.MethodAllocate, &hadoopproto.AllocateRequestProto{ResponseId: proto.Int32(id)}, &resp)
	return resp.GetResponseId(), err
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTokenAuthAndCalls(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	var mu sync.Mutex
	var users []string
	echoAllocate(s, func(ci ipctest.CallInfo) { mu.Lock(); users = append(users, ci.User); mu.Unlock() })
	c := newClient(t, s, nil)
	ctx := testCtx(t)
	for i := int32(0); i < 3; i++ {
		got, err := allocate(ctx, c, i)
		if err != nil {
			t.Fatal(err)
		}
		if got != i+1 {
			t.Fatalf("response_id %d, want %d", got, i+1)
		}
	}
	st := s.Stats()
	if st.Connections != 1 || st.Authed != 1 || st.Calls != 3 {
		t.Errorf("stats %+v, want one authenticated connection and 3 calls", st)
	}
	if len(users) != 3 || users[0] != "user-id-1" {
		t.Errorf("server saw users %v", users)
	}
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	const n = 8
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	// No handler answers before all n calls are in flight: the calls must be
	// multiplexed on the connection, and answered in any order.
	ipctest.Handle(s, testProtocol, hadoopproto.MethodAllocate,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
			mu.Lock()
			arrived++
			if arrived == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &hadoopproto.AllocateResponseProto{ResponseId: proto.Int32(req.GetResponseId() * 10)}, nil
		})
	c := newClient(t, s, nil)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := int32(1); i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := allocate(ctx, c, i)
			if err == nil && got != i*10 {
				err = errors.New("wrong response matched to call")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Connections != 1 {
		t.Errorf("%d connections, want 1", st.Connections)
	}
}

func TestPingWhenIdle(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	echoAllocate(s, nil)
	c := newClient(t, s, func(o *ipc.Options) { o.PingInterval = 5 * time.Millisecond })
	if _, err := allocate(testCtx(t), c, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a ping", func() bool { return s.Stats().Pings >= 2 })
	if _, err := allocate(testCtx(t), c, 0); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Connections != 1 {
		t.Errorf("%d connections, want 1", st.Connections)
	}
}

func TestRemoteErrors(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	echoAllocate(s, nil)
	const cls = "org.apache.hadoop.yarn.exceptions.InvalidApplicationMasterRequestException"
	ipctest.Handle(s, testProtocol, hadoopproto.MethodRegisterApplicationMaster,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.RegisterApplicationMasterRequestProto) (*hadoopproto.RegisterApplicationMasterResponseProto, error) {
			return nil, &ipctest.Exception{Class: cls, Message: "Application Master is already registered : application_1_0001\n\tat Foo.bar(Foo.java:1)"}
		})
	ipctest.Handle(s, testProtocol, hadoopproto.MethodFinishApplicationMaster,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.FinishApplicationMasterRequestProto) (*hadoopproto.FinishApplicationMasterResponseProto, error) {
			return nil, &ipctest.Exception{Class: ipc.ClassIOException, Message: "boom", Fatal: true}
		})
	c := newClient(t, s, nil)
	ctx := testCtx(t)

	tests := []struct {
		name        string
		method      string
		req, resp   proto.Message
		class       string
		msgPrefix   string
		fatal       bool
		detail      hadoopproto.RpcResponseHeaderProto_RpcErrorCodeProto
		connections int64 // after the call and one more allocate
	}{
		{"application error", hadoopproto.MethodRegisterApplicationMaster, &hadoopproto.RegisterApplicationMasterRequestProto{}, &hadoopproto.RegisterApplicationMasterResponseProto{},
			cls, "Application Master is already registered", false, hadoopproto.RpcResponseHeaderProto_ERROR_APPLICATION, 1},
		{"no such method", "getContainers", &hadoopproto.AllocateRequestProto{}, &hadoopproto.AllocateResponseProto{},
			ipc.ClassRpcNoSuchMethod, "Unknown method getContainers", false, hadoopproto.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD, 1},
		{"fatal", hadoopproto.MethodFinishApplicationMaster, &hadoopproto.FinishApplicationMasterRequestProto{}, &hadoopproto.FinishApplicationMasterResponseProto{},
			ipc.ClassIOException, "boom", true, hadoopproto.RpcResponseHeaderProto_FATAL_UNKNOWN, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Call(ctx, tt.method, tt.req, tt.resp)
			var re *ipc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("err %v is not a RemoteError", err)
			}
			if re.Class != tt.class || !strings.HasPrefix(re.Message, tt.msgPrefix) || re.Fatal() != tt.fatal || re.ErrorDetail != tt.detail || re.Method != tt.method {
				t.Errorf("got %+v", re)
			}
			if strings.Contains(err.Error(), "Foo.java") {
				t.Errorf("Error() carries the stack trace: %q", err.Error())
			}
			// The connection stays usable after ERROR; after FATAL the next
			// call reconnects.
			if _, err := allocate(ctx, c, 0); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Connections; got != tt.connections {
				t.Errorf("%d connections, want %d", got, tt.connections)
			}
		})
	}
}

func TestAuthFailures(t *testing.T) {
	good := testToken("id-1", "pw-1")
	tests := []struct {
		name   string
		server ipctest.Options
		mod    func(*ipc.Options)
		class  string
		callID int32
		msg    string
	}{
		{"wrong password", ipctest.Options{Secrets: secrets(good)},
			func(o *ipc.Options) { o.Token = testToken("id-1", "wrong") }, ipc.ClassSaslException, ipc.CallIDSASL, ipctest.MsgMismatched},
		{"unknown token", ipctest.Options{Secrets: secrets(good)},
			func(o *ipc.Options) { o.Token = testToken("id-2", "pw-1") }, ipc.ClassInvalidToken, ipc.CallIDSASL, "token is not valid"},
		{"simple refused", ipctest.Options{Secrets: secrets(good)},
			func(o *ipc.Options) { o.Auth = ipc.AuthSimple; o.User = "root" }, ipc.ClassAccessControl, ipc.CallIDAuthFailed, ipctest.MsgSimpleNotEnabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.server)
			echoAllocate(s, nil)
			c := newClient(t, s, tt.mod)
			_, err := allocate(testCtx(t), c, 0)
			if !errors.Is(err, ipc.ErrAuth) {
				t.Fatalf("err %v, want ErrAuth", err)
			}
			var re *ipc.RemoteError
			if !errors.As(err, &re) || re.Class != tt.class || re.CallID != tt.callID || !re.Fatal() || !strings.HasPrefix(re.Message, tt.msg) {
				t.Fatalf("remote error %+v", re)
			}
			if strings.Contains(err.Error(), "pw-1") || strings.Contains(err.Error(), "wrong") && tt.name != "wrong password" {
				t.Errorf("error leaks a password: %v", err)
			}
			if s.Stats().Calls != 0 {
				t.Errorf("server ran a call for an unauthenticated client")
			}
		})
	}
}

// TestQOP runs calls under every qop and cipher a server may offer: auth
// when offered, else auth-conf with the first cipher of the client's list
// the server offers, else auth-int. The calls, including one larger than a
// WRAP message, must come back intact.
func TestQOP(t *testing.T) {
	tests := []struct {
		qop, ciphers string
		wrapped      bool
		wantErr      error
	}{
		{qop: "auth"},
		{qop: "auth-conf,auth"},
		{qop: "auth-int,auth"},
		{qop: "auth-conf", wrapped: true},
		{qop: "auth-conf", ciphers: "rc4", wrapped: true},
		{qop: "auth-conf", ciphers: "des", wrapped: true},
		{qop: "auth-conf", ciphers: "rc4-56", wrapped: true},
		{qop: "auth-conf", ciphers: "rc4-40", wrapped: true},
		{qop: "auth-int", wrapped: true},
		{qop: "auth-conf,auth-int", wrapped: true},
		{qop: "auth-conf,auth-int", ciphers: "aes", wrapped: true},
		{qop: "auth-conf", ciphers: "aes", wantErr: ipc.ErrUnsupportedQOP},
		{qop: "auth-foo", wantErr: ipc.ErrUnsupportedQOP},
	}
	for _, tt := range tests {
		t.Run(tt.qop+"/"+tt.ciphers, func(t *testing.T) {
			s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1")), QOP: tt.qop, Ciphers: tt.ciphers})
			// Echo the ask's resource name back as a node's address.
			ipctest.Handle(s, testProtocol, hadoopproto.MethodAllocate,
				func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
					return &hadoopproto.AllocateResponseProto{
						ResponseId:   proto.Int32(req.GetResponseId() + 1),
						UpdatedNodes: []*hadoopproto.NodeReportProto{{HttpAddress: proto.String(req.GetAsk()[0].GetResourceName())}},
					}, nil
				})
			c := newClient(t, s, nil)
			for i := range 3 {
				// The third call, both ways, is larger than one WRAP
				// message may carry (65,510 bytes under auth-conf).
				name := strings.Repeat(string(rune('a'+i)), 1+i*50000)
				var resp hadoopproto.AllocateResponseProto
				err := c.Call(testCtx(t), hadoopproto.MethodAllocate, &hadoopproto.AllocateRequestProto{
					ResponseId: proto.Int32(int32(i)),
					Ask:        []*hadoopproto.ResourceRequestProto{{ResourceName: proto.String(name)}},
				}, &resp)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr != nil {
					return
				}
				if resp.GetResponseId() != int32(i)+1 || len(resp.GetUpdatedNodes()) != 1 || resp.GetUpdatedNodes()[0].GetHttpAddress() != name {
					t.Fatalf("call %d: the response does not echo the request", i)
				}
			}
			if st := s.Stats(); (st.Wrapped == 1) != tt.wrapped || st.Calls != 3 {
				t.Errorf("stats %+v, want wrapped %v and 3 calls", st, tt.wrapped)
			}
		})
	}
}

func TestSimpleAuth(t *testing.T) {
	s := newServer(t, ipctest.Options{AllowSimple: true})
	var mu sync.Mutex
	var user string
	echoAllocate(s, func(ci ipctest.CallInfo) { mu.Lock(); user = ci.User; mu.Unlock() })
	c := newClient(t, s, func(o *ipc.Options) { o.Auth = ipc.AuthSimple; o.User = "alice"; o.Token = token.Token{} })
	if _, err := allocate(testCtx(t), c, 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if user != "alice" {
		t.Errorf("server saw user %q", user)
	}
}

func TestReconnectAfterServerDropsConnection(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	echoAllocate(s, nil)
	c := newClient(t, s, nil)
	ctx := testCtx(t)
	if _, err := allocate(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	s.DropConnections()
	// The first call may still meet the dropped connection if the client has
	// not read the EOF yet; it then fails as broken and the next reconnects.
	if _, err := allocate(ctx, c, 1); err != nil && !errors.Is(err, ipc.ErrConnectionBroken) {
		t.Fatalf("err %v, want success or ErrConnectionBroken", err)
	}
	if got, err := allocate(ctx, c, 2); err != nil || got != 3 {
		t.Fatalf("after reconnect: %d, %v", got, err)
	}
	if st := s.Stats(); st.Connections != 2 || st.Authed != 2 {
		t.Errorf("stats %+v, want 2 authenticated connections", st)
	}
}

func TestSetTokenAppliesToNewConnections(t *testing.T) {
	oldTok, newTok := testToken("key-1", "pw-1"), testToken("key-2", "pw-2")
	var mu sync.Mutex
	known := []token.Token{oldTok}
	s := newServer(t, ipctest.Options{Secrets: func(id []byte) ([]byte, string, error) {
		mu.Lock()
		defer mu.Unlock()
		return secrets(known...)(id)
	}})
	var users []string
	echoAllocate(s, func(ci ipctest.CallInfo) { mu.Lock(); users = append(users, ci.User); mu.Unlock() })
	c := newClient(t, s, func(o *ipc.Options) { o.Token = oldTok })
	ctx := testCtx(t)
	if _, err := allocate(ctx, c, 0); err != nil {
		t.Fatal(err)
	}
	// Roll over: the server drops the old key, the client learns the new token.
	mu.Lock()
	known = []token.Token{newTok}
	mu.Unlock()
	c.SetToken(newTok)
	if _, err := allocate(ctx, c, 1); err != nil {
		t.Fatalf("the authenticated connection must stay usable: %v", err)
	}
	s.DropConnections()
	if _, err := allocate(ctx, c, 2); err != nil && !errors.Is(err, ipc.ErrConnectionBroken) {
		t.Fatal(err)
	}
	if _, err := allocate(ctx, c, 3); err != nil {
		t.Fatalf("reconnect with the new token: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if users[len(users)-1] != "user-key-2" {
		t.Errorf("users %v, want the last call as user-key-2", users)
	}
}

func TestCallContextAndClose(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	release := make(chan struct{})
	ipctest.Handle(s, testProtocol, hadoopproto.MethodAllocate,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
			if req.GetResponseId() == 99 {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return &hadoopproto.AllocateResponseProto{ResponseId: proto.Int32(req.GetResponseId() + 1)}, nil
		})
	c := newClient(t, s, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() { _, err := allocate(ctx, c, 99); errc <- err }()
	waitFor(t, "the call to reach the server", func() bool { return s.Stats().Calls == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	close(release) // the late response is dropped; the connection stays usable
	if got, err := allocate(testCtx(t), c, 1); err != nil || got != 2 {
		t.Fatalf("after a cancelled call: %d, %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := allocate(testCtx(t), c, 1); !errors.Is(err, ipc.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	ipctest.Handle(s, testProtocol, hadoopproto.MethodAllocate,
		func(ctx context.Context, call ipctest.CallInfo, req *hadoopproto.AllocateRequestProto) (*hadoopproto.AllocateResponseProto, error) {
			<-ctx.Done() // never answers before the server closes
			return nil, ctx.Err()
		})
	c := newClient(t, s, nil)
	errc := make(chan error, 1)
	go func() { _, err := allocate(testCtx(t), c, 0); errc <- err }()
	waitFor(t, "the call to reach the server", func() bool { return s.Stats().Calls == 1 })
	_ = c.Close()
	if err := <-errc; !errors.Is(err, ipc.ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
}

func TestConnectFailure(t *testing.T) {
	s := newServer(t, ipctest.Options{})
	addr := s.Addr()
	_ = s.Close()
	o := ipc.DefaultOptions()
	o.Addrs = []string{addr}
	o.Protocol = testProtocol
	o.Token = testToken("a", "b")
	c, err := ipc.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := allocate(testCtx(t), c, 0); !errors.Is(err, ipc.ErrConnect) {
		t.Fatalf("err %v, want ErrConnect", err)
	}
}

func TestHAAddressesTriedInOrder(t *testing.T) {
	dead := newServer(t, ipctest.Options{})
	deadAddr := dead.Addr()
	_ = dead.Close()
	s := newServer(t, ipctest.Options{Secrets: secrets(testToken("id-1", "pw-1"))})
	echoAllocate(s, nil)
	c := newClient(t, s, func(o *ipc.Options) { o.Addrs = []string{deadAddr, s.Addr()} })
	if _, err := allocate(testCtx(t), c, 0); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	base := func() ipc.Options {
		o := ipc.DefaultOptions()
		o.Addrs = []string{"rm:8030"}
		o.Protocol = testProtocol
		o.Token = testToken("a", "b")
		return o
	}
	tests := []struct {
		name  string
		mod   func(*ipc.Options)
		field string
	}{
		{"ok", func(*ipc.Options) {}, ""},
		{"no addrs", func(o *ipc.Options) { o.Addrs = nil }, "Addrs"},
		{"bad addr", func(o *ipc.Options) { o.Addrs = []string{"rm"} }, "Addrs[0]"},
		{"no protocol", func(o *ipc.Options) { o.Protocol = "" }, "Protocol"},
		{"no token", func(o *ipc.Options) { o.Token = token.Token{} }, "Token"},
		{"simple without user", func(o *ipc.Options) { o.Auth = ipc.AuthSimple }, "User"},
		{"negative ping", func(o *ipc.Options) { o.PingInterval = -time.Second }, "PingInterval"},
		{"negative timeout", func(o *ipc.Options) { o.ConnectTimeout = -time.Second }, "ConnectTimeout"},
		{"negative max", func(o *ipc.Options) { o.MaxResponseLength = -1 }, "MaxResponseLength"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mod(&o)
			err := o.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ipc.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err %v, want one naming %s", err, tt.field)
			}
		})
	}
}
