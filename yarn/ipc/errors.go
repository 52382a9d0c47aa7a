package ipc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

var (
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("ipc: client closed")
	// ErrConnectionBroken reports a connection that failed while a call was
	// in flight; the next call reconnects.
	ErrConnectionBroken = errors.New("ipc: connection broken")
	// ErrAuth reports a failed SASL handshake or a FATAL answer during
	// connection setup. The server's *RemoteError, if any, is wrapped too.
	ErrAuth = errors.New("ipc: authentication failed")
	// ErrUnsupportedQOP reports a server that offers only SASL qop auth-int or
	// auth-conf (hadoop.rpc.protection=integrity or privacy).
	ErrUnsupportedQOP = errors.New("ipc: SASL quality of protection not supported")
	// ErrProtocol reports a server message that violates the protocol.
	ErrProtocol = errors.New("ipc: protocol violation")
	// ErrInvalidOptions reports invalid Options.
	ErrInvalidOptions = errors.New("ipc: invalid options")
)

// Exception class names a caller may want to test against RemoteError.Class.
const (
	ClassInvalidToken       = "org.apache.hadoop.security.token.SecretManager$InvalidToken"
	ClassAccessControl      = "org.apache.hadoop.security.AccessControlException"
	ClassSaslException      = "javax.security.sasl.SaslException"
	ClassRpcNoSuchMethod    = "org.apache.hadoop.ipc.RpcNoSuchMethodException"
	ClassRpcNoSuchProtocol  = "org.apache.hadoop.ipc.RpcNoSuchProtocolException"
	ClassYarnException      = "org.apache.hadoop.yarn.exceptions.YarnException"
	ClassIOException        = "java.io.IOException"
	ClassRpcServerException = "org.apache.hadoop.ipc.RpcServerException"
)

// RemoteError is a Hadoop RemoteException: an ERROR or FATAL response.
type RemoteError struct {
	// Method is the called method, or "" for an error during connection setup.
	Method string
	// CallID is the call id of the response (-33 SASL, -3 context, -1 auth).
	CallID int32
	// Status is ERROR (the connection stays usable) or FATAL (it is closed).
	Status hadoopproto.RpcResponseHeaderProto_RpcStatusProto
	// Class is the Java class of the server-side exception.
	Class string
	// Message is the server's errorMsg; ERROR responses often append a Java
	// stack trace.
	Message string
	// ErrorDetail is the server's error code, if it sent one.
	ErrorDetail hadoopproto.RpcResponseHeaderProto_RpcErrorCodeProto
}

// Fatal reports whether the server closed the connection after this error.
func (e *RemoteError) Fatal() bool {
	return e.Status == hadoopproto.RpcResponseHeaderProto_FATAL
}

// Error shows the first line of the message; the full text is in Message.
func (e *RemoteError) Error() string {
	msg, _, _ := strings.Cut(e.Message, "\n")
	where := e.Method
	switch {
	case where != "":
	case e.CallID < 0:
		where = fmt.Sprintf("connection setup (callId %d)", e.CallID)
	default:
		where = fmt.Sprintf("call %d", e.CallID)
	}
	return fmt.Sprintf("ipc: remote %s in %s: %s: %s", e.Status, where, e.Class, msg)
}

func remoteErrorFrom(h *hadoopproto.RpcResponseHeaderProto, method string) *RemoteError {
	return &RemoteError{
		Method:      method,
		CallID:      ResponseCallID(h),
		Status:      h.GetStatus(),
		Class:       h.GetExceptionClassName(),
		Message:     h.GetErrorMsg(),
		ErrorDetail: h.GetErrorDetail(),
	}
}
