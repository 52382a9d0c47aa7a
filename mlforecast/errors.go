package mlforecast

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by the package wraps one of these,
// so callers classify with errors.Is and read the details with errors.As.
var (
	// ErrBadOrder: the model orders or period are invalid (see *OrderError).
	ErrBadOrder = errors.New("mlforecast: bad model order")
	// ErrSeriesTooShort: too few usable observations for the model (see *TooShortError).
	ErrSeriesTooShort = errors.New("mlforecast: series too short for the model")
	// ErrConstantSeries: the (differenced) series has no variation to model.
	ErrConstantSeries = errors.New("mlforecast: constant series")
	// ErrNonFinite: the series holds ±Inf (NaN is allowed and means missing; see *NonFiniteError).
	ErrNonFinite = errors.New("mlforecast: non-finite value in series")
	// ErrInvalidOptions: an options struct failed validation (see *OptionError).
	ErrInvalidOptions = errors.New("mlforecast: invalid options")
	// ErrNotConverged: estimation produced no finite likelihood.
	ErrNotConverged = errors.New("mlforecast: estimation failed")
	// ErrCSV: a series file could not be read (see *CSVError).
	ErrCSV = errors.New("mlforecast: bad series file")
)

// OrderError names the order field that is out of range and why.
type OrderError struct {
	Field  string // e.g. "p", "D", "Period", "Constant"
	Value  int
	Reason string
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("mlforecast: bad model order: %s=%d: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrBadOrder) true.
func (e *OrderError) Is(target error) bool { return target == ErrBadOrder }

// TooShortError reports how many usable observations a model needs and
// how many the series has.
type TooShortError struct {
	Spec Spec
	Have int // observations supplied (non-missing)
	Need int // minimum for this specification
}

func (e *TooShortError) Error() string {
	return fmt.Sprintf("mlforecast: series too short for the model: %s needs at least %d non-missing observations, have %d",
		e.Spec, e.Need, e.Have)
}

// Is makes errors.Is(err, ErrSeriesTooShort) true.
func (e *TooShortError) Is(target error) bool { return target == ErrSeriesTooShort }

// NonFiniteError locates the first infinite value of a series.
type NonFiniteError struct {
	Index int
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("mlforecast: non-finite value in series: %v at index %d (use NaN for a missing value)", e.Value, e.Index)
}

// Is makes errors.Is(err, ErrNonFinite) true.
func (e *NonFiniteError) Is(target error) bool { return target == ErrNonFinite }

// OptionError names the offending options field.
type OptionError struct {
	Field  string
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("mlforecast: invalid options: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidOptions) true.
func (e *OptionError) Is(target error) bool { return target == ErrInvalidOptions }

// CSVError locates a problem in a series file. Line is 1-based and counts
// every physical line, the header included.
type CSVError struct {
	Line   int
	Column string // empty when the problem is not tied to a column
	Err    error
}

func (e *CSVError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("mlforecast: line %d, column %q: %v", e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("mlforecast: line %d: %v", e.Line, e.Err)
}

// Is makes errors.Is(err, ErrCSV) true.
func (e *CSVError) Is(target error) bool { return target == ErrCSV }

// Unwrap exposes the underlying cause (for instance *NonFiniteError or a
// strconv error).
func (e *CSVError) Unwrap() error { return e.Err }
