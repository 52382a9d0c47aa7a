package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

// Wire constants (HADOOP_PROTOCOLS.md §4.1, §4.3).
const (
	// RPCVersion is the IPC protocol version this package speaks.
	RPCVersion byte = 9
	// AuthProtocolNone in the preamble means SIMPLE without SASL.
	AuthProtocolNone byte = 0x00
	// AuthProtocolSASL in the preamble (-33) starts a SASL negotiation.
	AuthProtocolSASL byte = 0xDF

	CallIDAuthFailed        int32 = -1
	CallIDConnectionContext int32 = -3
	CallIDPing              int32 = -4
	CallIDSASL              int32 = -33

	// DefaultMaxFrameLength is Hadoop's ipc.maximum.response.length and
	// ipc.maximum.data.length default (128 MiB).
	DefaultMaxFrameLength = 128 << 20
)

var preambleMagic = [4]byte{'h', 'r', 'p', 'c'}

var (
	// ErrMalformedFrame reports bytes that do not follow the IPC framing.
	ErrMalformedFrame = errors.New("ipc: malformed frame")
	// ErrFrameTooLarge reports a frame length above the configured maximum.
	ErrFrameTooLarge = errors.New("ipc: frame too large")
	// ErrVersionMismatch reports a server answering with the pre-v9 marker
	// (length -1) or a preamble with another version.
	ErrVersionMismatch = errors.New("ipc: IPC version mismatch")
)

// Preamble is the 7-byte connection preamble "hrpc" version serviceClass auth.
type Preamble struct {
	Version      byte
	ServiceClass byte
	AuthProtocol byte
}

// Bytes returns the preamble's wire form.
func (p Preamble) Bytes() []byte {
	return []byte{preambleMagic[0], preambleMagic[1], preambleMagic[2], preambleMagic[3], p.Version, p.ServiceClass, p.AuthProtocol}
}

// ReadPreamble reads and checks a connection preamble (server side).
func ReadPreamble(r io.Reader) (Preamble, error) {
	var b [7]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Preamble{}, fmt.Errorf("ipc: read preamble: %w", err)
	}
	if [4]byte(b[:4]) != preambleMagic {
		return Preamble{}, fmt.Errorf("%w: bad preamble magic % x", ErrMalformedFrame, b[:4])
	}
	return Preamble{Version: b[4], ServiceClass: b[5], AuthProtocol: b[6]}, nil
}

// Frame is one IPC frame: the varint-delimited messages that follow the
// int32 length. The first is always a header (RpcRequestHeaderProto or
// RpcResponseHeaderProto); the others depend on the frame type (§4.2).
type Frame [][]byte

// FrameReader reads frames from a byte stream. It is not safe for concurrent
// use; a connection has one reader.
type FrameReader struct {
	r   io.Reader
	max int
	len [4]byte
}

// NewFrameReader returns a reader that refuses frames longer than maxLength
// (DefaultMaxFrameLength if maxLength <= 0).
func NewFrameReader(r io.Reader, maxLength int) *FrameReader {
	if maxLength <= 0 {
		maxLength = DefaultMaxFrameLength
	}
	return &FrameReader{r: r, max: maxLength}
}

// ReadFrame reads one frame. io.EOF is returned unwrapped when the stream
// ends cleanly between frames.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.len[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated length prefix", ErrMalformedFrame)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(fr.len[:])
	if n == 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: peer sent the pre-v9 marker", ErrVersionMismatch)
	}
	if int64(n) > int64(fr.max) {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, fr.max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(fr.r, payload); err != nil {
		return nil, fmt.Errorf("%w: truncated frame of %d bytes: %v", ErrMalformedFrame, n, err)
	}
	return SplitFrame(payload)
}

// SplitFrame splits a frame payload into its varint-delimited messages. The
// payload must be consumed exactly and hold at least one message.
func SplitFrame(payload []byte) (Frame, error) {
	var f Frame
	for len(payload) > 0 {
		l, n := protowire.ConsumeVarint(payload)
		if n < 0 {
			return nil, fmt.Errorf("%w: bad message length varint", ErrMalformedFrame)
		}
		payload = payload[n:]
		if l > uint64(len(payload)) {
			return nil, fmt.Errorf("%w: message length %d exceeds the %d bytes left", ErrMalformedFrame, l, len(payload))
		}
		f = append(f, payload[:l:l])
		payload = payload[l:]
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformedFrame)
	}
	return f, nil
}

// AppendFrame appends a frame holding parts (already-encoded messages).
func AppendFrame(dst []byte, parts ...[]byte) []byte {
	total := 0
	for _, p := range parts {
		total += protowire.SizeVarint(uint64(len(p))) + len(p)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	for _, p := range parts {
		dst = protowire.AppendVarint(dst, uint64(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// MarshalFrame encodes msgs as one frame. Required proto2 fields must be set.
func MarshalFrame(msgs ...proto.Message) ([]byte, error) {
	parts := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("ipc: marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
		parts[i] = b
	}
	return AppendFrame(nil, parts...), nil
}

// RequestHeader builds the RpcRequestHeaderProto Java sends: rpcKind and
// rpcOp always present (the server requires them).
func RequestHeader(callID int32, clientID []byte, retryCount int32) *hadoopproto.RpcRequestHeaderProto {
	return &hadoopproto.RpcRequestHeaderProto{
		RpcKind:    hadoopproto.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(),
		RpcOp:      hadoopproto.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
		CallId:     proto.Int32(callID),
		ClientId:   clientID,
		RetryCount: proto.Int32(retryCount),
	}
}

// Header field helpers. clientId is required, so an empty one must still be
// a non-nil slice to be encoded.
var emptyClientID = []byte{}

// DecodeResponseHeader decodes the header of a server frame.
func DecodeResponseHeader(f Frame) (*hadoopproto.RpcResponseHeaderProto, error) {
	var h hadoopproto.RpcResponseHeaderProto
	if err := proto.Unmarshal(f[0], &h); err != nil {
		return nil, fmt.Errorf("%w: RpcResponseHeaderProto: %v", ErrMalformedFrame, err)
	}
	return &h, nil
}

// DecodeRequestHeader decodes the header of a client frame.
func DecodeRequestHeader(f Frame) (*hadoopproto.RpcRequestHeaderProto, error) {
	var h hadoopproto.RpcRequestHeaderProto
	if err := proto.Unmarshal(f[0], &h); err != nil {
		return nil, fmt.Errorf("%w: RpcRequestHeaderProto: %v", ErrMalformedFrame, err)
	}
	return &h, nil
}

// ResponseCallID returns the header's call id as the signed id the request
// carried (the response encodes it as uint32).
func ResponseCallID(h *hadoopproto.RpcResponseHeaderProto) int32 { return int32(h.GetCallId()) }
