package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 64 << 10

// Request is one HTTP request of a channel.
type Request struct {
	// Channel names the channel in errors ("wecom").
	Channel string
	Method  string
	URL     string
	Header  http.Header
	Body    []byte
	// Secrets are scrubbed from anything of the answer quoted in an error.
	Secrets []string
}

// Response is the answer to a Request: status and (a bounded prefix of) the body.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Do sends the request. A transport failure becomes a retryable *Error whose
// message names only the scheme and host of the URL (never the URL itself,
// which may hold a key). A status outside 2xx becomes an *Error classified
// by ClassifyStatus, quoting a scrubbed prefix of the body.
func Do(ctx context.Context, client *http.Client, r Request) (*Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	op := fmt.Sprintf("%s: %s %s", r.Channel, r.Method, RedactURL(r.URL))
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		// url.Parse errors quote the URL: drop them.
		return nil, Permanent(op, errors.New("invalid request URL"))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Tidewatch-Notifier/1")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, Temporary(op, transportError(err, r.Secrets))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, Temporary(op, fmt.Errorf("read response: %s", Scrub(transportError(err, r.Secrets).Error(), r.Secrets...)))
	}
	out := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode/100 != 2 {
		retry, after := ClassifyStatus(resp.StatusCode, resp.Header)
		return out, &Error{Op: op, StatusCode: resp.StatusCode, Retryable: retry, RetryAfter: after,
			Err: errors.New(Snippet(body, r.Secrets...))}
	}
	return out, nil
}

// transportError takes the URL out of net/http's errors (a *url.Error quotes
// the whole URL, key and all) and keeps the cause.
func transportError(err error, secrets []string) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return errors.New(Scrub(err.Error(), secrets...))
}

// ClassifyStatus says whether an HTTP status is worth a retry: 408, 425, 429
// and 5xx are; other 4xx are not. Retry-After (seconds or an HTTP date) is
// returned when given.
func ClassifyStatus(code int, h http.Header) (bool, time.Duration) {
	var after time.Duration
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			after = time.Until(t)
		}
	}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		return true, after
	}
	return false, after
}

// Snippet is a short, single-line, scrubbed quote of a response body for an
// error message.
func Snippet(body []byte, secrets ...string) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		s = "empty response"
	}
	return Scrub(s, secrets...)
}
