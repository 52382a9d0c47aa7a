package connectors

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors, classified with errors.Is.
var (
	// ErrInvalidConfig wraps every Validate failure.
	ErrInvalidConfig = errors.New("connectors: invalid config")
	// ErrBadRecord wraps every error decoding one line or element of input.
	ErrBadRecord = errors.New("connectors: bad record")
	// ErrBadState is returned when a checkpointed state cannot be used to
	// restore a source or sink.
	ErrBadState = errors.New("connectors: bad checkpoint state")
	// ErrMissingPending is returned when a restore finds neither the pending
	// nor the committed form of a part file its state lists.
	ErrMissingPending = errors.New("connectors: pending part file missing")
	// ErrDelivery is returned when a webhook batch could not be delivered.
	ErrDelivery = errors.New("connectors: delivery failed")
)

// configError names the offending field of a config.
func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// LineError reports one bad line (or JSON array element) of input: where it
// is, which field is wrong (empty when the line as a whole is malformed) and
// why. It matches ErrBadRecord with errors.Is.
type LineError struct {
	File  string // file name; empty for HTTP bodies
	Line  int    // 1-based line (or array element) number
	Field string
	Err   error
}

func (e *LineError) Error() string {
	where := "line " + strconv.Itoa(e.Line)
	if e.File != "" {
		where = e.File + ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: field %q: %v", where, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

// Unwrap exposes both ErrBadRecord and the cause.
func (e *LineError) Unwrap() []error { return []error{ErrBadRecord, e.Err} }
