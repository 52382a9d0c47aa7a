// Package channel holds what the notifier's channels (wecom, sms, email,
// webhook, alertmanager) have in common: secrets that do not print, errors
// that say whether a retry can help, an HTTP request helper that keeps URLs
// with keys out of errors, and text/template loading with the shared
// functions.
package channel

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Secret is a configuration value that must not be shown: it prints, and
// marshals to JSON and YAML, as <secret>. Use Value to read it.
type Secret string

const redacted = "<secret>"

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Value is the secret itself.
func (s Secret) Value() string { return string(s) }

// MarshalJSON hides the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalYAML hides the secret.
func (s Secret) MarshalYAML() (any, error) { return redacted, nil }

// Scrub replaces every occurrence of the secrets in s (as they are, and as
// they appear query-escaped or path-escaped in a URL) with <secret>. It is the
// last line of defence for text that came from elsewhere, like a response
// body that echoes the request URL.
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < 4 { // too short to be a real secret, and would mangle text
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			s = strings.ReplaceAll(s, form, redacted)
		}
	}
	return s
}

// RedactURL shows only the scheme and host of a URL: paths and queries of
// webhook URLs often hold keys (WeChat Work's key=, tokens in paths).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid url>"
	}
	return u.Scheme + "://" + u.Host
}

// Error is a failed delivery with what the notifier needs to decide about a
// retry. Its message never holds a secret: channels build it from redacted
// parts.
type Error struct {
	// Op names the channel and the request, e.g. "webhook: POST https://hooks.example.com".
	Op string
	// StatusCode is the HTTP status or SMTP reply code, if there was one.
	StatusCode int
	// Retryable is true when a later attempt may succeed (network errors,
	// 5xx, 429, SMTP 4xx, rate limits of the remote API).
	Retryable bool
	// RetryAfter is the remote's hint of when to try again, if it gave one.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": status %d", e.StatusCode)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one a retry cannot fix (a rejected request, a bad
// template, a refused recipient).
func Permanent(op string, err error) error { return &Error{Op: op, Err: err} }

// Temporary marks err as one a later attempt may not meet.
func Temporary(op string, err error) error { return &Error{Op: op, Retryable: true, Err: err} }

// PartialError reports that some recipients of a message were reached and
// others were not. The notifier remembers Delivered (the next attempt sees
// them in Message.Done and skips them) and retries or gives up on Err.
type PartialError struct {
	Delivered []string
	Err       error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("delivered to %d recipients, not to the others: %v", len(e.Delivered), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Retryable says whether a delivery that failed with err should be tried
// again, and the earliest time the remote asked for. Errors that are not
// classified (a dial error, a timeout) are retryable.
func Retryable(err error) (bool, time.Duration) {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Retryable, ce.RetryAfter
	}
	return true, 0
}

// URLSecrets lists the parts of a secret URL that must not be quoted: the
// URL, its password (also as a basic auth credential), its path and each
// query value.
func URLSecrets(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	if p, ok := u.User.Password(); ok {
		// As a password, and as the basic auth header that carries it.
		out = append(out, p, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+p)))
	}
	if len(u.Path) > 1 {
		out = append(out, u.Path)
	}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	return out
}
