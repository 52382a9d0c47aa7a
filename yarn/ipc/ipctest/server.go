// Package ipctest is an in-process Hadoop IPC server for tests. It performs
// the server side of the protocol as HADOOP_PROTOCOLS.md §4–§5 (corrected by
// §12) describes it: the preamble check, SASL TOKEN with DIGEST-MD5 (challenge,
// verification of the client's response against the token password, rspauth),
// the connection-context checks, and dispatch of calls by (protocol, method) to
// Go handlers, answering handler errors with RemoteException headers.
//
// Failures are answered the way Hadoop 3.3.6 answers them (recorded in
// samples/yarn/ipc/probe): SIMPLE refused with FATAL callId -1, SASL failures
// with FATAL callId -33, a context naming another user with FATAL callId -3.
package ipctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/digestmd5"
)

// Messages the real servers send (§12.1, probe recordings).
const (
	MsgSimpleNotEnabled = "SIMPLE authentication is not enabled.  Available:[TOKEN]"
	MsgTokenNotEnabled  = "TOKEN authentication is not enabled.  Available:[TOKEN]"
	MsgMismatched       = "DIGEST-MD5: digest response format violation. Mismatched response."
)

// ErrUnknownToken is what a SecretFunc returns for an identifier it does not
// know; the client gets FATAL SecretManager$InvalidToken.
var ErrUnknownToken = errors.New("ipctest: unknown token")

// SecretFunc returns the password of the token with this identifier and the
// user it authenticates as (for YARN tokens, the attempt id string).
type SecretFunc func(identifier []byte) (password []byte, user string, err error)

// Exception is a Java exception a handler throws. Fatal exceptions close the
// connection after the response.
type Exception struct {
	Class   string
	Message string
	Fatal   bool
}

func (e *Exception) Error() string { return e.Class + ": " + e.Message }

// CallInfo describes a call to a handler.
type CallInfo struct {
	ConnID   int64
	User     string
	Protocol string
	Method   string
	CallID   int32
}

// HandlerFunc serves one method. req is the encoded request message.
type HandlerFunc func(ctx context.Context, call CallInfo, req []byte) (proto.Message, error)

// Handle registers a typed handler for (protocol, method).
func Handle[Req, Resp proto.Message](s *Server, protocol, method string, fn func(ctx context.Context, call CallInfo, req Req) (Resp, error)) {
	s.HandleRaw(protocol, method, func(ctx context.Context, call CallInfo, b []byte) (proto.Message, error) {
		var zero Req
		req := zero.ProtoReflect().Type().New().Interface().(Req)
		if err := proto.Unmarshal(b, req); err != nil {
			return nil, &Exception{Class: "java.io.IOException", Message: "cannot decode request: " + err.Error()}
		}
		return fn(ctx, call, req)
	})
}

// Options configure a Server.
type Options struct {
	// Secrets authenticates TOKEN clients. Nil: every token is unknown.
	Secrets SecretFunc
	// AllowSimple accepts preamble auth NONE (SIMPLE, user from the context).
	// Off, like the RM scheduler and NM ports.
	AllowSimple bool
	// QOP is the qop list of the challenge (default "auth"); "auth-conf"
	// makes the server look like a cluster with hadoop.rpc.protection=privacy.
	QOP string
	// Ciphers is the cipher list offered with auth-conf (default
	// "3des,rc4,des,rc4-56,rc4-40", what a JDK 17 server offers).
	Ciphers string
	// Logger; default discard.
	Logger *logrus.Entry
}

// Stats counts what the server saw.
type Stats struct {
	Connections  int64 // accepted connections
	Authed       int64 // connections that completed SASL/SIMPLE and the context
	AuthFailures int64
	Pings        int64
	Calls        int64
	Wrapped      int64 // connections that negotiated a SASL security layer
}

// Server is a running test server on 127.0.0.1.
type Server struct {
	opts Options
	log  *logrus.Entry
	ln   net.Listener

	mu       sync.Mutex
	handlers map[string]map[string]HandlerFunc
	conns    map[int64]net.Conn
	closed   bool

	connSeq                                              atomic.Int64
	nConns, nAuthed, nAuthFail, nPings, nCalls, nWrapped atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewServer listens on a loopback port and starts serving.
func NewServer(opts Options) (*Server, error) {
	if opts.QOP == "" {
		opts.QOP = digestmd5.QOPAuth
	}
	if opts.Ciphers == "" {
		opts.Ciphers = strings.Join(digestmd5.Ciphers, ",")
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = logrus.NewEntry(l)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ipctest: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:     opts,
		log:      opts.Logger.WithField("component", "ipctest"),
		ln:       ln,
		handlers: map[string]map[string]HandlerFunc{},
		conns:    map[int64]net.Conn{},
		ctx:      ctx,
		cancel:   cancel,
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the host:port to dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HandleRaw registers a handler for (protocol, method).
func (s *Server) HandleRaw(protocol, method string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers[protocol] == nil {
		s.handlers[protocol] = map[string]HandlerFunc{}
	}
	s.handlers[protocol][method] = h
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:  s.nConns.Load(),
		Authed:       s.nAuthed.Load(),
		AuthFailures: s.nAuthFail.Load(),
		Pings:        s.nPings.Load(),
		Calls:        s.nCalls.Load(),
		Wrapped:      s.nWrapped.Load(),
	}
}

// DropConnections closes every open connection, as a restarting or failing
// server would. The listener keeps accepting.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// Close stops the server and waits for its goroutines. Handlers see their
// context cancelled. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		_ = s.ln.Close()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		id := s.connSeq.Add(1)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[id] = nc
		s.wg.Add(1)
		s.mu.Unlock()
		s.nConns.Add(1)
		go func() {
			defer s.wg.Done()
			sc := &serverConn{s: s, id: id, nc: nc, fr: ipc.NewFrameReader(nc, 0)}
			err := sc.serve()
			sc.calls.Wait()
			if errors.Is(err, errFatalSent) {
				// Let the client read the FATAL response: half-close and
				// discard what it still sends, so its writes of frames
				// already under way do not meet a reset.
				if tc, ok := nc.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					_, _ = io.Copy(io.Discard, nc)
				}
			}
			_ = nc.Close()
			s.mu.Lock()
			delete(s.conns, id)
			s.mu.Unlock()
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.WithField("conn", id).WithError(err).Debug("connection ended")
			}
		}()
	}
}

type serverConn struct {
	s        *Server
	id       int64
	nc       net.Conn
	fr       *ipc.FrameReader
	wmu      sync.Mutex
	user     string
	protocol string
	calls    sync.WaitGroup
}

func (c *serverConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *serverConn) respond(h *hadoopproto.RpcResponseHeaderProto, body proto.Message) error {
	h.ServerIpcVersionNum = proto.Uint32(uint32(ipc.RPCVersion))
	msgs := []proto.Message{h}
	if body != nil {
		msgs = append(msgs, body)
	}
	b, err := ipc.MarshalFrame(msgs...)
	if err != nil {
		return err
	}
	return c.write(b)
}

// FatalHeader is the header of a FATAL response during setup, as 3.3.6 sends
// it: empty clientId, retryCount -1.
func FatalHeader(callID int32, class, msg string, detail hadoopproto.RpcResponseHeaderProto_RpcErrorCodeProto) *hadoopproto.RpcResponseHeaderProto {
	return &hadoopproto.RpcResponseHeaderProto{
		CallId:              proto.Uint32(callIDWire(callID)),
		Status:              hadoopproto.RpcResponseHeaderProto_FATAL.Enum(),
		ServerIpcVersionNum: proto.Uint32(uint32(ipc.RPCVersion)),
		ExceptionClassName:  proto.String(class),
		ErrorMsg:            proto.String(msg),
		ErrorDetail:         detail.Enum(),
		ClientId:            []byte{},
		RetryCount:          proto.Int32(-1),
	}
}

func saslHeader() *hadoopproto.RpcResponseHeaderProto {
	return &hadoopproto.RpcResponseHeaderProto{
		CallId:     proto.Uint32(callIDWire(ipc.CallIDSASL)),
		Status:     hadoopproto.RpcResponseHeaderProto_SUCCESS.Enum(),
		ClientId:   []byte{},
		RetryCount: proto.Int32(-1),
	}
}

// errFatalSent ends a connection after a FATAL answer.
var errFatalSent = errors.New("ipctest: fatal response sent")

func (c *serverConn) fatal(callID int32, class, msg string, detail hadoopproto.RpcResponseHeaderProto_RpcErrorCodeProto) error {
	if detail == hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED {
		c.s.nAuthFail.Add(1)
	}
	if err := c.respond(FatalHeader(callID, class, msg, detail), nil); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: %s", errFatalSent, class, msg)
}

func (c *serverConn) serve() error {
	p, err := ipc.ReadPreamble(c.nc)
	if err != nil {
		return err
	}
	if p.Version != ipc.RPCVersion {
		return c.fatal(ipc.CallIDAuthFailed, "org.apache.hadoop.ipc.RPC$VersionMismatch",
			fmt.Sprintf("Server IPC version %d cannot communicate with client version %d", ipc.RPCVersion, p.Version),
			hadoopproto.RpcResponseHeaderProto_FATAL_VERSION_MISMATCH)
	}
	simple := false
	switch p.AuthProtocol {
	case ipc.AuthProtocolNone:
		if !c.s.opts.AllowSimple {
			return c.fatal(ipc.CallIDAuthFailed, ipc.ClassAccessControl, MsgSimpleNotEnabled, hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
		}
		simple = true
	case ipc.AuthProtocolSASL:
		if err := c.saslServer(); err != nil {
			return err
		}
	default:
		return c.fatal(ipc.CallIDAuthFailed, ipc.ClassAccessControl,
			fmt.Sprintf("Unknown auth protocol:%d", int8(p.AuthProtocol)), hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	if err := c.readContext(simple); err != nil {
		return err
	}
	c.s.nAuthed.Add(1)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		h, err := c.checkHeader(f)
		if err != nil {
			return err
		}
		switch id := h.GetCallId(); {
		case id == ipc.CallIDPing:
			c.s.nPings.Add(1)
		case id >= 0:
			if err := c.dispatch(h, f); err != nil {
				return err
			}
		default:
			return c.fatal(id, ipc.ClassIOException, fmt.Sprintf("unexpected callId %d", id), hadoopproto.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER)
		}
	}
}

// checkHeader applies Server.checkRpcHeaders (§4.3).
func (c *serverConn) checkHeader(f ipc.Frame) (*hadoopproto.RpcRequestHeaderProto, error) {
	h, err := ipc.DecodeRequestHeader(f)
	if err != nil {
		return nil, c.fatal(ipc.CallIDAuthFailed, ipc.ClassIOException, "Error decoding RPC header: "+err.Error(), hadoopproto.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST)
	}
	switch {
	case h.RpcOp == nil:
		return nil, c.fatal(h.GetCallId(), ipc.ClassIOException, "IPC Server: No rpc op in rpcRequestHeader", hadoopproto.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER)
	case h.GetRpcOp() != hadoopproto.RpcRequestHeaderProto_RPC_FINAL_PACKET:
		return nil, c.fatal(h.GetCallId(), ipc.ClassIOException, "IPC Server does not implement rpc header operation"+h.GetRpcOp().String(), hadoopproto.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER)
	case h.RpcKind == nil:
		return nil, c.fatal(h.GetCallId(), ipc.ClassIOException, "IPC Server: No rpc kind in rpcRequestHeader", hadoopproto.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER)
	}
	return h, nil
}

func (c *serverConn) readSASL() (*hadoopproto.RpcSaslProto, error) {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	h, err := c.checkHeader(f)
	if err != nil {
		return nil, err
	}
	if h.GetCallId() != ipc.CallIDSASL || len(f) != 2 {
		return nil, c.fatal(ipc.CallIDSASL, ipc.ClassAccessControl, "SASL negotiation expected", hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	var m hadoopproto.RpcSaslProto
	if err := proto.Unmarshal(f[1], &m); err != nil {
		return nil, c.fatal(ipc.CallIDSASL, ipc.ClassIOException, "cannot decode RpcSaslProto", hadoopproto.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST)
	}
	return &m, nil
}

// saslServer is Server.saslProcess for a TOKEN-only server (§5.2).
func (c *serverConn) saslServer() error {
	m, err := c.readSASL()
	if err != nil {
		return err
	}
	if m.GetState() != hadoopproto.RpcSaslProto_NEGOTIATE {
		return c.fatal(ipc.CallIDSASL, ipc.ClassAccessControl, "Client must begin with NEGOTIATE", hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	nonceBytes := make([]byte, 30)
	if _, err := rand.Read(nonceBytes); err != nil {
		return err
	}
	nonce := base64.StdEncoding.EncodeToString(nonceBytes)
	challenge := fmt.Sprintf(`realm="default",nonce="%s",qop="%s",charset=utf-8,`, nonce, c.s.opts.QOP)
	if strings.Contains(c.s.opts.QOP, digestmd5.QOPAuthConf) {
		challenge += `cipher="` + c.s.opts.Ciphers + `",`
	}
	challenge += "algorithm=md5-sess"
	advertised := &hadoopproto.RpcSaslProto_SaslAuth{
		Method:    proto.String(ipc.SASLMethodToken),
		Mechanism: proto.String(ipc.SASLMechanismDigest),
		Protocol:  proto.String(""),
		ServerId:  proto.String(ipc.SASLDefaultServerID),
	}
	withChallenge := proto.Clone(advertised).(*hadoopproto.RpcSaslProto_SaslAuth)
	withChallenge.Challenge = []byte(challenge)
	if err := c.respond(saslHeader(), &hadoopproto.RpcSaslProto{
		State: hadoopproto.RpcSaslProto_NEGOTIATE.Enum(),
		Auths: []*hadoopproto.RpcSaslProto_SaslAuth{withChallenge},
	}); err != nil {
		return err
	}

	m, err = c.readSASL()
	if err != nil {
		return err
	}
	if m.GetState() != hadoopproto.RpcSaslProto_INITIATE {
		return c.fatal(ipc.CallIDSASL, ipc.ClassAccessControl, "Client must send INITIATE after NEGOTIATE", hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	// The echo must equal an advertised auth, presence bits included.
	if len(m.GetAuths()) != 1 || !proto.Equal(m.GetAuths()[0], advertised) {
		return c.fatal(ipc.CallIDSASL, ipc.ClassAccessControl, MsgTokenNotEnabled, hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	sasl := func(msg string) error {
		return c.fatal(ipc.CallIDSASL, ipc.ClassSaslException, msg, hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	r, err := digestmd5.ParseResponse(m.GetToken())
	if err != nil {
		return sasl("DIGEST-MD5: digest response format violation. " + err.Error())
	}
	switch {
	case r.Nonce != nonce:
		return sasl("DIGEST-MD5: digest response format violation. Mismatched nonce.")
	case r.NC != digestmd5.NC:
		return sasl("DIGEST-MD5: digest response format violation. Nonce count does not match: " + r.NC)
	case !r.HasRealm || r.Realm != "default":
		return sasl("DIGEST-MD5: digest response format violation. Nonexistent realm: " + r.Realm)
	case !strings.EqualFold(r.DigestURI, "/default"):
		return sasl("DIGEST-MD5: digest response format violation. Mismatched URI: " + r.DigestURI + "; expecting: /default")
	case !inList(c.s.opts.QOP, r.QOP):
		return sasl("DIGEST-MD5: digest response format violation. Invalid QOP: " + r.QOP)
	case r.Authzid != "" && r.Authzid != r.Username:
		return sasl("DIGEST-MD5: authzid does not match the user name")
	case r.Charset != "" && r.Charset != "utf-8":
		return sasl("DIGEST-MD5: digest response format violation. Incompatible charset value: " + r.Charset)
	}
	identifier, err := base64.StdEncoding.DecodeString(r.Username)
	if err != nil {
		return c.fatal(ipc.CallIDSASL, ipc.ClassInvalidToken, "token identifier is not Base64", hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	var (
		password []byte
		user     string
	)
	if c.s.opts.Secrets == nil {
		err = ErrUnknownToken
	} else {
		password, user, err = c.s.opts.Secrets(identifier)
	}
	if err != nil {
		return c.fatal(ipc.CallIDSASL, ipc.ClassInvalidToken, "token is not valid: "+err.Error(), hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	pw := base64.StdEncoding.EncodeToString(password)
	if subtle.ConstantTimeCompare([]byte(digestmd5.ComputeResponse(pw, r)), []byte(r.Response)) != 1 {
		return sasl(MsgMismatched)
	}
	var layer *digestmd5.Layer
	if r.QOP != digestmd5.QOPAuth {
		if r.QOP == digestmd5.QOPAuthConf && !inList(c.s.opts.Ciphers, r.Cipher) {
			return sasl("DIGEST-MD5: digest response format violation. Invalid cipher: " + r.Cipher)
		}
		if layer, err = digestmd5.NewLayer(digestmd5.SessionKey(pw, r), r.QOP, r.Cipher, false); err != nil {
			return sasl("DIGEST-MD5: " + err.Error())
		}
	}
	c.user = user
	if err := c.respond(saslHeader(), &hadoopproto.RpcSaslProto{
		State: hadoopproto.RpcSaslProto_SUCCESS.Enum(),
		Token: []byte("rspauth=" + digestmd5.ComputeRspAuth(pw, r)),
	}); err != nil {
		return err
	}
	if layer != nil {
		// Everything after SUCCESS travels in WRAP messages (§5.5).
		sc := ipc.NewSASLConn(c.nc, layer, true, r.MaxBuf, 0)
		c.wmu.Lock()
		c.nc = sc
		c.wmu.Unlock()
		c.fr = ipc.NewFrameReader(sc, 0)
		c.s.nWrapped.Add(1)
	}
	return nil
}

// inList reports whether the comma-separated list holds q.
func inList(list, q string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.TrimSpace(v) == q {
			return true
		}
	}
	return false
}

// readContext reads the connection context (callId -3) and checks the user
// (§4.4).
func (c *serverConn) readContext(simple bool) error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	h, err := c.checkHeader(f)
	if err != nil {
		return err
	}
	if h.GetCallId() != ipc.CallIDConnectionContext || len(f) != 2 {
		return c.fatal(h.GetCallId(), ipc.ClassIOException, "Connection context not established", hadoopproto.RpcResponseHeaderProto_FATAL_INVALID_RPC_HEADER)
	}
	var cc hadoopproto.IpcConnectionContextProto
	if err := proto.Unmarshal(f[1], &cc); err != nil {
		return c.fatal(ipc.CallIDConnectionContext, ipc.ClassIOException, "cannot decode IpcConnectionContextProto", hadoopproto.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST)
	}
	eff := cc.GetUserInfo().GetEffectiveUser()
	if simple {
		if eff == "" {
			return c.fatal(ipc.CallIDConnectionContext, ipc.ClassAccessControl, "SIMPLE authentication without a user", hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
		}
		c.user = eff
	} else if eff != "" && eff != c.user {
		return c.fatal(ipc.CallIDConnectionContext, ipc.ClassAccessControl,
			fmt.Sprintf("Authenticated user (%s (auth:TOKEN)) doesn't match what the client claims to be (%s (auth:SIMPLE))", c.user, eff),
			hadoopproto.RpcResponseHeaderProto_FATAL_UNAUTHORIZED)
	}
	c.protocol = cc.GetProtocol()
	return nil
}

func (c *serverConn) dispatch(h *hadoopproto.RpcRequestHeaderProto, f ipc.Frame) error {
	callID := h.GetCallId()
	resp := func(status hadoopproto.RpcResponseHeaderProto_RpcStatusProto) *hadoopproto.RpcResponseHeaderProto {
		return &hadoopproto.RpcResponseHeaderProto{
			CallId:     proto.Uint32(callIDWire(callID)),
			Status:     status.Enum(),
			ClientId:   append([]byte{}, h.GetClientId()...),
			RetryCount: proto.Int32(h.GetRetryCount()),
		}
	}
	errResp := func(class, msg string, detail hadoopproto.RpcResponseHeaderProto_RpcErrorCodeProto) error {
		eh := resp(hadoopproto.RpcResponseHeaderProto_ERROR)
		eh.ExceptionClassName, eh.ErrorMsg, eh.ErrorDetail = proto.String(class), proto.String(msg), detail.Enum()
		return c.respond(eh, nil)
	}
	if len(f) != 3 {
		return c.fatal(callID, ipc.ClassIOException, fmt.Sprintf("call frame with %d messages", len(f)), hadoopproto.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST)
	}
	var rh hadoopproto.RequestHeaderProto
	if err := proto.Unmarshal(f[1], &rh); err != nil {
		return c.fatal(callID, ipc.ClassIOException, "cannot decode RequestHeaderProto", hadoopproto.RpcResponseHeaderProto_FATAL_DESERIALIZING_REQUEST)
	}
	c.s.nCalls.Add(1)
	protocol, method := rh.GetDeclaringClassProtocolName(), rh.GetMethodName()
	c.s.mu.Lock()
	methods, okP := c.s.handlers[protocol]
	handler := methods[method]
	c.s.mu.Unlock()
	if !okP {
		return errResp(ipc.ClassRpcNoSuchProtocol, "Unknown protocol: "+protocol, hadoopproto.RpcResponseHeaderProto_ERROR_NO_SUCH_PROTOCOL)
	}
	if handler == nil {
		return errResp(ipc.ClassRpcNoSuchMethod, fmt.Sprintf("Unknown method %s called on %s protocol.", method, protocol), hadoopproto.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD)
	}
	info := CallInfo{ConnID: c.id, User: c.user, Protocol: protocol, Method: method, CallID: callID}
	body := bytes.Clone(f[2])
	// Each call runs on its own goroutine so responses can go out of order,
	// as with Hadoop's handler pool.
	c.calls.Add(1)
	go func() {
		defer c.calls.Done()
		out, err := handler(c.s.ctx, info, body)
		if err == nil {
			if werr := c.respond(resp(hadoopproto.RpcResponseHeaderProto_SUCCESS), out); werr != nil {
				_ = c.nc.Close()
			}
			return
		}
		ex := &Exception{Class: ipc.ClassIOException, Message: err.Error()}
		errors.As(err, &ex)
		status, detail := hadoopproto.RpcResponseHeaderProto_ERROR, hadoopproto.RpcResponseHeaderProto_ERROR_APPLICATION
		if ex.Fatal {
			status, detail = hadoopproto.RpcResponseHeaderProto_FATAL, hadoopproto.RpcResponseHeaderProto_FATAL_UNKNOWN
		}
		eh := resp(status)
		eh.ExceptionClassName, eh.ErrorMsg, eh.ErrorDetail = proto.String(ex.Class), proto.String(ex.Message), detail.Enum()
		werr := c.respond(eh, nil)
		if ex.Fatal || werr != nil {
			_ = c.nc.Close()
		}
	}()
	return nil
}

// callIDWire is the uint32 form of a call id in a response header.
func callIDWire(id int32) uint32 { return uint32(id) }
