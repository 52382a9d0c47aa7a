package ipc

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/token"
)

// AuthMethod selects how the client authenticates.
type AuthMethod int

const (
	// AuthToken is SASL TOKEN (DIGEST-MD5) with a delegation token. YARN's
	// ApplicationMasterProtocol and ContainerManagementProtocol require it,
	// even on insecure clusters, so it is the zero value.
	AuthToken AuthMethod = iota
	// AuthSimple sends no SASL (preamble auth 0) and names the user in the
	// connection context, as Hadoop's SIMPLE authentication does.
	AuthSimple
)

func (a AuthMethod) String() string {
	switch a {
	case AuthToken:
		return "TOKEN"
	case AuthSimple:
		return "SIMPLE"
	}
	return fmt.Sprintf("AuthMethod(%d)", int(a))
}

// Options configure a Client. Zero durations and sizes take the defaults of
// DefaultOptions.
type Options struct {
	// Addrs are the server addresses (host:port). A connection tries them in
	// order and uses the first that accepts (an HA standby RM refuses).
	Addrs []string
	// Protocol is the Java protocol name sent in the connection context and
	// every request header, e.g. hadoopproto.ApplicationMasterProtocolName.
	Protocol string
	// ProtocolVersion is RequestHeaderProto.clientProtocolVersion (1 for YARN).
	ProtocolVersion uint64
	// Auth is the authentication method.
	Auth AuthMethod
	// Token authenticates AuthToken connections. SetToken replaces it for
	// later connections.
	Token token.Token
	// User is the effective user sent with AuthSimple. Under AuthToken the
	// context's userInfo is sent empty, as Java does (§4.4).
	User string
	// ServiceClass is the preamble's service class byte.
	ServiceClass byte
	// ConnectTimeout bounds dialing plus the SASL handshake (default 20s,
	// Java's ipc.client.connect.timeout).
	ConnectTimeout time.Duration
	// PingInterval is how long a connection may be idle before the client
	// sends a ping (callId -4). Default 60s (ipc.ping.interval).
	PingInterval time.Duration
	// MaxResponseLength refuses larger frames (default 128 MiB).
	MaxResponseLength int
	// Dial opens connections; default net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection events. Default: discard.
	Logger *logrus.Entry
}

// DefaultOptions returns Options with every default filled in; the caller
// still sets Addrs, Protocol and Token (or Auth and User).
func DefaultOptions() Options {
	return Options{
		ProtocolVersion:   1,
		Auth:              AuthToken,
		ConnectTimeout:    20 * time.Second,
		PingInterval:      60 * time.Second,
		MaxResponseLength: DefaultMaxFrameLength,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.ProtocolVersion == 0 {
		o.ProtocolVersion = d.ProtocolVersion
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = d.PingInterval
	}
	if o.MaxResponseLength == 0 {
		o.MaxResponseLength = d.MaxResponseLength
	}
	if o.Dial == nil {
		var nd net.Dialer
		o.Dial = nd.DialContext
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = logrus.NewEntry(l)
	}
	return o
}

// Validate reports the first invalid field.
func (o Options) Validate() error {
	if len(o.Addrs) == 0 {
		return fmt.Errorf("%w: Addrs is empty", ErrInvalidOptions)
	}
	for i, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: Addrs[%d] %q: %v", ErrInvalidOptions, i, a, err)
		}
	}
	if o.Protocol == "" {
		return fmt.Errorf("%w: Protocol is empty", ErrInvalidOptions)
	}
	switch o.Auth {
	case AuthToken:
		if len(o.Token.Identifier) == 0 {
			return fmt.Errorf("%w: Token has no identifier (required for AuthToken)", ErrInvalidOptions)
		}
	case AuthSimple:
		if o.User == "" {
			return fmt.Errorf("%w: User is empty (required for AuthSimple)", ErrInvalidOptions)
		}
	default:
		return fmt.Errorf("%w: Auth %d is unknown", ErrInvalidOptions, int(o.Auth))
	}
	if o.ConnectTimeout < 0 {
		return fmt.Errorf("%w: ConnectTimeout %v is negative", ErrInvalidOptions, o.ConnectTimeout)
	}
	if o.PingInterval < 0 {
		return fmt.Errorf("%w: PingInterval %v is negative", ErrInvalidOptions, o.PingInterval)
	}
	if o.MaxResponseLength < 0 {
		return fmt.Errorf("%w: MaxResponseLength %d is negative", ErrInvalidOptions, o.MaxResponseLength)
	}
	return nil
}
