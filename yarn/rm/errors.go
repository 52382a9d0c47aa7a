package rm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Every error the client returns wraps one of these (or a
// context error), so callers classify with errors.Is.
var (
	// ErrNotFound: the RM answered 404 (unknown application, attempt or path).
	ErrNotFound = errors.New("rm: not found")
	// ErrBadRequest: the RM answered 400 (bad id, bad body, bad filter,
	// duplicate application, resource above the maximum, ...).
	ErrBadRequest = errors.New("rm: bad request")
	// ErrUnauthorized: 401, no authenticated user.
	ErrUnauthorized = errors.New("rm: unauthorized")
	// ErrForbidden: 403, the user lacks the ACL (e.g. MODIFY_APP for a kill).
	ErrForbidden = errors.New("rm: forbidden")
	// ErrServer: the RM answered 5xx.
	ErrServer = errors.New("rm: server error")
	// ErrStandby: the RM that answered is a standby and named no active RM.
	ErrStandby = errors.New("rm: resourcemanager is standby")
	// ErrUnavailable: no ResourceManager could be reached.
	ErrUnavailable = errors.New("rm: resourcemanager unavailable")
	// ErrUnexpectedResponse: a status or body the protocol does not allow.
	ErrUnexpectedResponse = errors.New("rm: unexpected response")
	// ErrSubmitUncertain: a submit may have reached the RM but its outcome
	// could not be established; the caller must check (FindByTag) before
	// submitting again.
	ErrSubmitUncertain = errors.New("rm: submit outcome unknown")
	// ErrInvalidOptions: Options.Validate failed.
	ErrInvalidOptions = errors.New("rm: invalid options")
	// ErrInvalidSubmission: ApplicationSubmission.Validate failed.
	ErrInvalidSubmission = errors.New("rm: invalid submission")
	// ErrInvalidID: an application id is not application_<ts>_<seq>.
	ErrInvalidID = errors.New("rm: invalid application id")
)

// RemoteError is an error answer from the ResourceManager: a Jersey
// RemoteException body (HADOOP_PROTOCOLS.md §1.6) or, for handlers that write
// plain text (kill 403) and unknown paths (HTML 404), the status with the
// start of the body as Message.
type RemoteError struct {
	Op            string // client operation, e.g. "get application"
	Status        int    // HTTP status
	Exception     string // simple class name, e.g. "NotFoundException"; "" if the body was not a RemoteException
	JavaClassName string // fully qualified class name
	Message       string // the exception message (often prefixed "java.lang.Exception: ")
	URL           string // the URL that answered (no credentials are ever in RM URLs)
}

func (e *RemoteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rm: %s: HTTP %d", e.Op, e.Status)
	if e.JavaClassName != "" {
		fmt.Fprintf(&b, " %s", e.JavaClassName)
	} else if e.Exception != "" {
		fmt.Fprintf(&b, " %s", e.Exception)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Is maps the HTTP status to the package sentinels, so that
// errors.Is(err, rm.ErrNotFound) works on a wrapped *RemoteError.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrServer:
		return e.Status >= 500
	}
	return false
}

// Retryable reports whether the same request may succeed later: server
// errors are, client errors are not.
func (e *RemoteError) Retryable() bool { return e.Status >= 500 }

type remoteExceptionBody struct {
	RemoteException *struct {
		Exception     string `json:"exception"`
		Message       string `json:"message"`
		JavaClassName string `json:"javaClassName"`
	} `json:"RemoteException"`
}

const maxErrorBody = 512

// newRemoteError builds a RemoteError from an error answer.
func newRemoteError(op string, status int, url string, body []byte) *RemoteError {
	e := &RemoteError{Op: op, Status: status, URL: url}
	var rb remoteExceptionBody
	if json.Unmarshal(body, &rb) == nil && rb.RemoteException != nil {
		e.Exception = rb.RemoteException.Exception
		e.JavaClassName = rb.RemoteException.JavaClassName
		e.Message = rb.RemoteException.Message
		return e
	}
	e.Message = summarizeBody(body)
	return e
}

// summarizeBody returns the start of a non-JSON body (plain text, or the
// title of an HTML page) for an error message.
func summarizeBody(body []byte) string {
	s := strings.TrimSpace(string(body))
	if i := strings.Index(strings.ToLower(s), "<title>"); i >= 0 {
		t := s[i+len("<title>"):]
		if j := strings.Index(strings.ToLower(t), "</title>"); j >= 0 {
			s = strings.TrimSpace(t[:j])
		}
	}
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.Join(strings.Fields(s), " ")
}

// uncertainError marks a non-idempotent request that may have reached the RM.
type uncertainError struct{ err error }

func (e *uncertainError) Error() string { return e.err.Error() }
func (e *uncertainError) Unwrap() error { return e.err }
