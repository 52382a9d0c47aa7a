package ipc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// pingWriteTimeout is the least time a ping may take to write.
const pingWriteTimeout = 20 * time.Second

// ErrConnect reports that no server address accepted a connection.
var ErrConnect = errors.New("ipc: cannot connect")

// Client is a Hadoop IPC client for one protocol on one server (or an HA list
// of servers). It is safe for concurrent use; concurrent calls share one
// connection and are matched to their responses by call id.
type Client struct {
	opts     Options
	log      *logrus.Entry
	clientID []byte

	// Test hooks: the call-id sequence and the SASL cnonce.
	nextCallID func() int32
	newCNonce  func() (string, error)

	seq     atomic.Uint32
	connSem chan struct{} // serialises connection setup; selectable
	closeCh chan struct{}
	wg      sync.WaitGroup // reader and pinger goroutines of every connection

	mu     sync.Mutex
	cur    *conn
	tok    token.Token
	closed bool
}

// New validates opts and returns a client. It does not connect: the first
// Call does.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("ipc: client id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // a version-4 UUID, like Java's ClientId
	id[8] = id[8]&0x3f | 0x80
	c := &Client{
		opts:     opts,
		log:      opts.Logger.WithField("component", "ipc").WithField("protocol", opts.Protocol),
		clientID: id,
		connSem:  make(chan struct{}, 1),
		closeCh:  make(chan struct{}),
		tok:      opts.Token,
	}
	c.nextCallID = func() int32 { return int32((c.seq.Add(1) - 1) & 0x7fffffff) }
	c.newCNonce = randomCNonce
	return c, nil
}

func randomCNonce() (string, error) {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ipc: cnonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// SetToken replaces the token used to authenticate new connections (AMRM
// token roll-over, §6.4.4). The current connection, already authenticated,
// stays in use.
func (c *Client) SetToken(t token.Token) {
	c.mu.Lock()
	c.tok = t
	c.mu.Unlock()
}

// Close closes the connection, fails calls in flight with ErrClosed and waits
// for the client's goroutines. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	cn := c.cur
	c.cur = nil
	c.mu.Unlock()
	close(c.closeCh)
	if cn != nil {
		cn.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// Call invokes method with req and decodes the response into resp. The
// context bounds connecting (if needed), sending and waiting. Errors wrap
// ErrConnect, ErrAuth, ErrUnsupportedQOP, ErrConnectionBroken, ErrClosed, the
// context's error, or hold a *RemoteError.
func (c *Client) Call(ctx context.Context, method string, req, resp proto.Message) error {
	cn, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("ipc: %s: %w", method, err)
	}
	return cn.call(ctx, c.nextCallID(), method, req, resp)
}

func (c *Client) connect(ctx context.Context) (*conn, error) {
	select {
	case c.connSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closeCh:
		return nil, ErrClosed
	}
	defer func() { <-c.connSem }()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.cur != nil && !c.cur.broken() {
		cn := c.cur
		c.mu.Unlock()
		return cn, nil
	}
	tok := c.tok
	c.mu.Unlock()

	cn, err := c.dial(ctx, tok)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = cn.nc.Close()
		return nil, ErrClosed
	}
	c.cur = cn
	c.wg.Add(2)
	go cn.readLoop()
	go cn.pingLoop()
	return cn, nil
}

// dial connects, authenticates and sends the connection context.
func (c *Client) dial(ctx context.Context, tok token.Token) (*conn, error) {
	sctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	var (
		nc   net.Conn
		errs []error
		addr string
	)
	for _, a := range c.opts.Addrs {
		var err error
		nc, err = c.opts.Dial(sctx, "tcp", a)
		if err == nil {
			addr = a
			break
		}
		errs = append(errs, err)
		if sctx.Err() != nil {
			break
		}
	}
	if nc == nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrConnect, errors.Join(errs...))
	}
	if dl, ok := sctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(sctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	cn := &conn{
		c:       c,
		nc:      nc,
		addr:    addr,
		fr:      NewFrameReader(nc, c.opts.MaxResponseLength),
		pending: map[int32]chan Frame{},
		done:    make(chan struct{}),
	}
	err := c.handshake(cn, tok)
	if !stop() {
		err = errors.Join(err, sctx.Err())
		if ctx.Err() != nil {
			_ = nc.Close()
			return nil, ctx.Err()
		}
	}
	if err != nil {
		_ = nc.Close()
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, fmt.Errorf("%w: %s: setup timed out after %v: %w", ErrConnect, addr, c.opts.ConnectTimeout, err)
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	cn.touch()
	c.log.WithField("addr", addr).WithField("auth", c.opts.Auth.String()).Debug("ipc connection established")
	return cn, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) handshake(cn *conn, tok token.Token) error {
	var buf bytes.Buffer
	p := Preamble{Version: RPCVersion, ServiceClass: c.opts.ServiceClass, AuthProtocol: AuthProtocolSASL}
	ctxMsg := &hadoopproto.IpcConnectionContextProto{
		UserInfo: &hadoopproto.UserInformationProto{},
		Protocol: proto.String(c.opts.Protocol),
	}
	if c.opts.Auth == AuthSimple {
		p.AuthProtocol = AuthProtocolNone
		ctxMsg.UserInfo.EffectiveUser = proto.String(c.opts.User)
	}
	buf.Write(p.Bytes())
	if c.opts.Auth == AuthToken {
		l, peerMaxBuf, err := c.saslToken(cn, &buf, tok)
		if err != nil {
			return err
		}
		if l != nil {
			// From here on every byte travels inside WRAP messages. The
			// context goes out with the first call, as from the Java client.
			sc := NewSASLConn(cn.nc, l, false, peerMaxBuf, c.opts.MaxResponseLength)
			cn.nc, cn.fr = sc, NewFrameReader(sc, c.opts.MaxResponseLength)
			f, err := MarshalFrame(RequestHeader(CallIDConnectionContext, c.clientID, -1), ctxMsg)
			if err != nil {
				return err
			}
			sc.Hold(f)
			return nil
		}
	}
	f, err := MarshalFrame(RequestHeader(CallIDConnectionContext, c.clientID, -1), ctxMsg)
	if err != nil {
		return err
	}
	buf.Write(f)
	if _, err := cn.nc.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%w: %s: send connection context: %w", ErrConnect, cn.addr, err)
	}
	return nil
}

// conn is one TCP connection. Its reader goroutine owns fr; writes are
// serialised by wmu.
type conn struct {
	c    *Client
	nc   net.Conn
	addr string
	fr   *FrameReader

	wmu sync.Mutex

	mu      sync.Mutex
	pending map[int32]chan Frame
	err     error
	done    chan struct{}

	lastActive atomic.Int64 // unix nanos of the last frame read or written
}

func (cn *conn) touch() { cn.lastActive.Store(time.Now().UnixNano()) }

func (cn *conn) broken() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

// fail records the first failure, closes the socket and wakes every waiter.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	close(cn.done)
	cn.mu.Unlock()
	_ = cn.nc.Close()
	if !errors.Is(err, ErrClosed) {
		cn.c.log.WithField("addr", cn.addr).WithError(err).Info("ipc connection closed")
	}
}

func (cn *conn) failure() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

func (cn *conn) write(b []byte, deadline time.Time) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_ = cn.nc.SetWriteDeadline(deadline)
	if _, err := cn.nc.Write(b); err != nil {
		cn.fail(fmt.Errorf("%w: write to %s: %v", ErrConnectionBroken, cn.addr, err))
		// The first failure wins: if the reader already got a FATAL
		// answer (which is why the socket is closed), report that.
		return cn.failure()
	}
	cn.touch()
	return nil
}

func (cn *conn) call(ctx context.Context, id int32, method string, req, resp proto.Message) error {
	o := &cn.c.opts
	rh := &hadoopproto.RequestHeaderProto{
		MethodName:                 proto.String(method),
		DeclaringClassProtocolName: proto.String(o.Protocol),
		ClientProtocolVersion:      proto.Uint64(o.ProtocolVersion),
	}
	frame, err := MarshalFrame(RequestHeader(id, cn.c.clientID, 0), rh, req)
	if err != nil {
		return fmt.Errorf("ipc: %s: %w", method, err)
	}
	ch := make(chan Frame, 1)
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return fmt.Errorf("ipc: %s: %w", method, err)
	}
	cn.pending[id] = ch
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.pending, id)
		cn.mu.Unlock()
	}()

	deadline, _ := ctx.Deadline()
	if err := cn.write(frame, deadline); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ipc: %s: %w", method, ctx.Err())
		}
		return fmt.Errorf("ipc: %s: %w", method, err)
	}
	select {
	case f := <-ch:
		return finishCall(method, f, resp)
	case <-cn.done:
		select {
		case f := <-ch:
			return finishCall(method, f, resp)
		default:
		}
		err := cn.failure()
		if re := (*RemoteError)(nil); errors.As(err, &re) && re.CallID == id {
			// The FATAL answer to this very call.
			mine := *re
			mine.Method = method
			return &mine
		}
		return fmt.Errorf("ipc: %s: %w", method, err)
	case <-ctx.Done():
		return fmt.Errorf("ipc: %s: %w", method, ctx.Err())
	}
}

func finishCall(method string, f Frame, resp proto.Message) error {
	h, err := DecodeResponseHeader(f)
	if err != nil {
		return fmt.Errorf("ipc: %s: %w", method, err)
	}
	if h.GetStatus() != hadoopproto.RpcResponseHeaderProto_SUCCESS {
		return remoteErrorFrom(h, method)
	}
	if len(f) != 2 {
		return fmt.Errorf("ipc: %s: %w: SUCCESS response with %d messages, want header and body", method, ErrProtocol, len(f))
	}
	if err := proto.Unmarshal(f[1], resp); err != nil {
		return fmt.Errorf("ipc: %s: %w: decode %s: %v", method, ErrProtocol, resp.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

func (cn *conn) readLoop() {
	defer cn.c.wg.Done()
	for {
		f, err := cn.fr.ReadFrame()
		if err != nil {
			cn.fail(fmt.Errorf("%w: read from %s: %v", ErrConnectionBroken, cn.addr, err))
			return
		}
		cn.touch()
		h, err := DecodeResponseHeader(f)
		if err != nil {
			cn.fail(fmt.Errorf("%w: %w", ErrConnectionBroken, err))
			return
		}
		id := ResponseCallID(h)
		cn.mu.Lock()
		ch := cn.pending[id]
		cn.mu.Unlock()
		fatal := h.GetStatus() == hadoopproto.RpcResponseHeaderProto_FATAL
		if fatal {
			// Mark the connection broken before the caller sees the
			// response, so its next call reconnects.
			re := remoteErrorFrom(h, "")
			if id < 0 {
				// FATAL during connection setup (context or late SASL
				// failure): an authentication failure, whatever the id (§12.1).
				cn.fail(fmt.Errorf("%w: %w: %w", ErrConnectionBroken, ErrAuth, re))
			} else {
				cn.fail(fmt.Errorf("%w: %w", ErrConnectionBroken, re))
			}
		}
		if ch != nil {
			select {
			case ch <- f:
			default: // a second response for the same id; ignore it
			}
		}
		if fatal {
			return
		}
		if ch == nil {
			cn.c.log.WithField("call_id", id).Debug("ipc response for no pending call (timed out?)")
		}
	}
}

func (cn *conn) pingLoop() {
	defer cn.c.wg.Done()
	iv := cn.c.opts.PingInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	ping, err := MarshalFrame(RequestHeader(CallIDPing, cn.c.clientID, -1))
	if err != nil {
		cn.fail(err)
		return
	}
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
			// Read the clock now: a tick can be delivered late under load.
			now := time.Now()
			if now.Sub(time.Unix(0, cn.lastActive.Load())) < iv {
				continue
			}
			// A ping that cannot be written for this long means the peer
			// stopped reading; the write error breaks the connection.
			if err := cn.write(ping, now.Add(max(iv, pingWriteTimeout))); err != nil {
				return
			}
		}
	}
}
