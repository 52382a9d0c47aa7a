package rm

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"
)

// Backoff is the exponential wait between retry rounds.
type Backoff struct {
	Initial    time.Duration // first wait
	Max        time.Duration // cap
	Multiplier float64       // growth per round, ≥ 1
}

// Delay returns the wait before retry round n (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n; i++ {
		d *= b.Multiplier
		if d >= float64(b.Max) {
			return b.Max
		}
	}
	if d > float64(b.Max) {
		return b.Max
	}
	return time.Duration(d)
}

// Options configure a Client.
type Options struct {
	// BaseURLs are the RM web addresses, scheme://host:port (optionally with
	// a path prefix), one per RM in an HA pair or group. The client starts
	// with the first and follows the active one. hadoopconf resolves them
	// from yarn-site.xml.
	BaseURLs []string
	// User is sent as user.name on every request (simple authentication,
	// §1.1). Without it a cluster with StaticUserWebFilter submits as dr.who.
	User string
	// RequestTimeout bounds one HTTP exchange (each try, each redirect hop).
	RequestTimeout time.Duration
	// MaxRetries is how many backoff rounds a retryable failure gets before
	// the client gives up (0: the default, 5; negative: no retry). A round ends when every RM has been
	// tried once for connection errors and standby answers, or at once for a
	// 5xx answer or a timeout.
	MaxRetries int
	Backoff    Backoff
	// MaxRedirects bounds the standby → active redirects followed per try.
	MaxRedirects int
	// Transport is the HTTP transport (nil: a clone of http.DefaultTransport).
	Transport http.RoundTripper
	// Log receives debug lines for retries and info lines for failovers
	// (nil: discard).
	Log *logrus.Entry
}

// DefaultOptions returns options with every default filled in; BaseURLs and
// User still have to be set.
func DefaultOptions() Options {
	var o Options
	o.EnsureDefaults()
	return o
}

// EnsureDefaults fills zero fields with defaults.
func (o *Options) EnsureDefaults() {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 5
	}
	if o.Backoff.Initial == 0 {
		o.Backoff.Initial = 200 * time.Millisecond
	}
	if o.Backoff.Max == 0 {
		o.Backoff.Max = 10 * time.Second
	}
	if o.Backoff.Multiplier == 0 {
		o.Backoff.Multiplier = 2
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = 3
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
}

// Validate names the first invalid field.
func (o *Options) Validate() error {
	if len(o.BaseURLs) == 0 {
		return fmt.Errorf("%w: BaseURLs: at least one RM web address is required", ErrInvalidOptions)
	}
	for i, b := range o.BaseURLs {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: BaseURLs[%d]: %q is not an http(s)://host:port URL", ErrInvalidOptions, i, b)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%w: BaseURLs[%d]: no query, fragment or user info allowed", ErrInvalidOptions, i)
		}
	}
	if o.User == "" {
		return fmt.Errorf("%w: User: required (sent as user.name)", ErrInvalidOptions)
	}
	if o.RequestTimeout <= 0 {
		return fmt.Errorf("%w: RequestTimeout must be > 0, got %v", ErrInvalidOptions, o.RequestTimeout)
	}
	if o.Backoff.Initial <= 0 || o.Backoff.Max < o.Backoff.Initial {
		return fmt.Errorf("%w: Backoff: need 0 < Initial ≤ Max, got %v and %v", ErrInvalidOptions, o.Backoff.Initial, o.Backoff.Max)
	}
	if o.Backoff.Multiplier < 1 {
		return fmt.Errorf("%w: Backoff.Multiplier must be ≥ 1, got %v", ErrInvalidOptions, o.Backoff.Multiplier)
	}
	if o.MaxRedirects < 0 {
		return fmt.Errorf("%w: MaxRedirects must be ≥ 0, got %d", ErrInvalidOptions, o.MaxRedirects)
	}
	return nil
}
