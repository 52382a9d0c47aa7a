package ipc

import (
	"fmt"
	"net"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/digestmd5"
)

// SASLConn carries a connection's IPC byte stream inside SASL WRAP messages
// once the SASL exchange has negotiated qop auth-int or auth-conf
// (HADOOP_PROTOCOLS.md §5.5). Writes are cut into pieces that fit the
// peer's buffer, each wrapped and sent as its own frame with callId -33;
// reads unwrap the peer's WRAP frames and return the plain stream, in which
// IPC frames may span WRAP messages. Deadlines and Close go to the
// underlying connection.
type SASLConn struct {
	net.Conn
	server  bool
	maxSend int
	fr      *FrameReader

	wmu    sync.Mutex
	layer  *digestmd5.Layer // Wrap under wmu; Unwrap on the reading goroutine only
	held   []byte
	header []byte // the encoded outer header of every frame this end sends

	rbuf []byte
}

// NewSASLConn wraps nc with security layer l. server selects the outer
// header: a server sends RpcResponseHeaderProto{callId -33, SUCCESS}, a
// client RpcRequestHeaderProto{callId -33, retryCount -1}. peerMaxBuf is
// the receive buffer the peer advertised (0: 65536); maxFrame bounds the
// peer's WRAP frames.
func NewSASLConn(nc net.Conn, l *digestmd5.Layer, server bool, peerMaxBuf, maxFrame int) *SASLConn {
	var h proto.Message = RequestHeader(CallIDSASL, emptyClientID, -1)
	if server {
		id := CallIDSASL
		h = &hadoopproto.RpcResponseHeaderProto{
			CallId: proto.Uint32(uint32(id)),
			Status: hadoopproto.RpcResponseHeaderProto_SUCCESS.Enum(),
		}
	}
	hb, _ := proto.Marshal(h) // plain messages of set fields: cannot fail
	return &SASLConn{
		Conn:    nc,
		server:  server,
		maxSend: l.MaxSendSize(peerMaxBuf),
		fr:      NewFrameReader(nc, maxFrame),
		layer:   l,
		header:  hb,
	}
}

// Hold keeps b to be sent in front of the next Write, in the same WRAP
// message. The Java client sends the connection context together with the
// first call this way.
func (c *SASLConn) Hold(b []byte) {
	c.wmu.Lock()
	c.held = append(c.held, b...)
	c.wmu.Unlock()
}

// Write wraps p, in pieces of at most the peer's buffer size, and sends it.
func (c *SASLConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	plain := p
	if len(c.held) > 0 {
		plain = append(c.held, p...)
		c.held = nil
	}
	var out []byte
	for len(plain) > 0 {
		n := min(len(plain), c.maxSend)
		body, err := proto.Marshal(&hadoopproto.RpcSaslProto{
			State: hadoopproto.RpcSaslProto_WRAP.Enum(),
			Token: c.layer.Wrap(plain[:n]),
		})
		if err != nil {
			return 0, err
		}
		out = AppendFrame(out, c.header, body)
		plain = plain[n:]
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Read returns plain bytes, reading and unwrapping the peer's next WRAP
// frame when none are buffered. A frame that is not a WRAP message is an
// error; a FATAL response from a server is returned as its *RemoteError.
func (c *SASLConn) Read(p []byte) (int, error) {
	for len(c.rbuf) == 0 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return 0, err
		}
		if c.rbuf, err = c.unwrapFrame(f); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func (c *SASLConn) unwrapFrame(f Frame) ([]byte, error) {
	if c.server {
		h, err := DecodeRequestHeader(f)
		if err != nil {
			return nil, err
		}
		if h.GetCallId() != CallIDSASL {
			return nil, fmt.Errorf("%w: SASL: client sent non-wrapped data (callId %d)", ErrProtocol, h.GetCallId())
		}
	} else {
		h, err := DecodeResponseHeader(f)
		if err != nil {
			return nil, err
		}
		if h.GetStatus() != hadoopproto.RpcResponseHeaderProto_SUCCESS {
			return nil, remoteErrorFrom(h, "")
		}
		if id := ResponseCallID(h); id != CallIDSASL {
			return nil, fmt.Errorf("%w: SASL: server sent non-wrapped response (callId %d)", ErrProtocol, id)
		}
	}
	if len(f) != 2 {
		return nil, fmt.Errorf("%w: SASL: WRAP frame with %d messages", ErrProtocol, len(f))
	}
	var m hadoopproto.RpcSaslProto
	if err := proto.Unmarshal(f[1], &m); err != nil {
		return nil, fmt.Errorf("%w: SASL: RpcSaslProto: %v", ErrProtocol, err)
	}
	if m.GetState() != hadoopproto.RpcSaslProto_WRAP {
		return nil, fmt.Errorf("%w: SASL: %s where a WRAP message was due", ErrProtocol, m.GetState())
	}
	b, err := c.layer.Unwrap(m.GetToken())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return b, nil
}
