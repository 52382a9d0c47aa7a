package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// WebhookConfig configures the webhook sink.
type WebhookConfig struct {
	// URL receives the POSTed batches (http or https). Required. Credentials
	// in it never appear in errors or logs.
	URL string
	// BatchSize is the most records in one request (default 500).
	BatchSize int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// MaxRetries is how many times a failed request is retried (default 5;
	// a negative value means none).
	MaxRetries int
	// Backoff is the wait before the first retry, doubling up to 30s
	// (default 200ms).
	Backoff time.Duration
	// Headers are added to every request (e.g. Authorization). Their values
	// never appear in errors or logs.
	Headers map[string]string
	// KeyPrefix starts every Idempotency-Key (e.g. the job name), so keys
	// of different jobs sending to one receiver do not collide.
	KeyPrefix string
}

// Validate names the first field that cannot work.
func (c *WebhookConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return configError("URL", "required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return configError("URL", "must be an absolute http or https URL") // the URL itself may hold a secret
	case c.BatchSize < 0:
		return configError("BatchSize", "must be ≥ 0, got %d", c.BatchSize)
	case c.Timeout < 0:
		return configError("Timeout", "must be ≥ 0, got %v", c.Timeout)
	case c.Backoff < 0:
		return configError("Backoff", "must be ≥ 0, got %v", c.Backoff)
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			return configError("Headers", "bad header name %q", k)
		}
		if strings.EqualFold(k, "Idempotency-Key") || strings.EqualFold(k, "Content-Type") {
			return configError("Headers", "%s is set by the sink", k)
		}
	}
	return nil
}

// DeliveryError is a batch the webhook sink could not deliver. It matches
// ErrDelivery with errors.Is, and never holds the URL's credentials or
// query, nor header values.
type DeliveryError struct {
	Endpoint  string // scheme://host/path
	Key       string // the batch's Idempotency-Key
	Status    int    // HTTP status of the last attempt; 0 if none was received
	Attempts  int
	Retryable bool // whether the last failure was a retryable kind
	Err       error
}

func (e *DeliveryError) Error() string {
	what := "no response"
	if e.Status != 0 {
		what = "status " + strconv.Itoa(e.Status)
	}
	msg := fmt.Sprintf("connectors: webhook POST %s (Idempotency-Key %s): %s after %d attempt(s)", e.Endpoint, e.Key, what, e.Attempts)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *DeliveryError) Unwrap() []error { return []error{ErrDelivery, e.Err} }

// NewWebhookSink validates cfg and returns the factory of a sink POSTing the
// records of schema as JSON arrays of objects. Records are held per
// checkpoint (in the checkpoint state, so they survive a crash) and sent when
// their checkpoint commits, in batches keyed "<KeyPrefix><subtask>-<checkpoint>-<batch>"
// in the Idempotency-Key header: a receiver dropping repeated keys sees each
// record once. client nil means http.DefaultClient.
func NewWebhookSink(cfg WebhookConfig, schema *flow.Schema, client *http.Client) (flow.SinkFactory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if schema == nil || len(schema.Names) == 0 {
		return nil, fmt.Errorf("%w: webhook sink: no schema", ErrInvalidConfig)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 500
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 5
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if client == nil {
		client = http.DefaultClient
	}
	u, _ := url.Parse(cfg.URL)
	endpoint := u.Scheme + "://" + u.Host + u.Path
	return func(index, par int, state []byte) (flow.Sink, error) {
		s := &webhookSink{cfg: cfg, client: client, endpoint: endpoint, index: index, names: schema.Names}
		if len(state) > 0 {
			var st webhookState
			if err := json.Unmarshal(state, &st); err != nil {
				return nil, fmt.Errorf("%w: webhook sink: %v", ErrBadState, err)
			}
			if st.Subtask != index && len(st.Pending) > 0 {
				return nil, fmt.Errorf("%w: webhook sink: state of subtask %d given to subtask %d", ErrBadState, st.Subtask, index)
			}
			s.pending = st.Pending
			// The checkpoint being restored completed: deliver what it holds.
			if err := s.Commit(maxCheckpoint(s.pending)); err != nil {
				return nil, err
			}
		}
		return s, nil
	}, nil
}

type webhookPending struct {
	Checkpoint int64             `json:"checkpoint"`
	Records    []json.RawMessage `json:"records"`
	Sent       int               `json:"sent,omitempty"` // batches already delivered
}

type webhookState struct {
	Subtask int              `json:"subtask"`
	Pending []webhookPending `json:"pending"`
}

func maxCheckpoint(ps []webhookPending) int64 {
	m := int64(-1 << 63)
	for _, p := range ps {
		m = max(m, p.Checkpoint)
	}
	return m
}

type webhookSink struct {
	cfg      WebhookConfig
	client   *http.Client
	endpoint string
	index    int
	names    []string

	cur     []json.RawMessage
	pending []webhookPending
	body    bytes.Buffer
}

var _ flow.Sink = (*webhookSink)(nil)

func (s *webhookSink) Emit(r *flow.Record) error {
	s.cur = append(s.cur, appendJSON(nil, s.names, r.Row))
	return nil
}

// Snapshot moves the records since the last snapshot into the state.
func (s *webhookSink) Snapshot(id int64) ([]byte, error) {
	if len(s.cur) > 0 {
		s.pending = append(s.pending, webhookPending{Checkpoint: id, Records: s.cur})
		s.cur = nil
	}
	return json.Marshal(webhookState{Subtask: s.index, Pending: s.pending})
}

// Commit sends the records of checkpoints up to id, in order.
func (s *webhookSink) Commit(id int64) error {
	for len(s.pending) > 0 && s.pending[0].Checkpoint <= id {
		p := &s.pending[0]
		for b := p.Sent; b*s.cfg.BatchSize < len(p.Records); b++ {
			batch := p.Records[b*s.cfg.BatchSize : min((b+1)*s.cfg.BatchSize, len(p.Records))]
			key := s.cfg.KeyPrefix + strconv.Itoa(s.index) + "-" + strconv.FormatInt(p.Checkpoint, 10) + "-" + strconv.Itoa(b)
			if err := s.post(key, batch); err != nil {
				return err
			}
			p.Sent = b + 1
		}
		s.pending = s.pending[1:]
	}
	return nil
}

// Close drops records not yet covered by a snapshot.
func (s *webhookSink) Close() error {
	s.cur = nil
	return nil
}

func (s *webhookSink) post(key string, batch []json.RawMessage) error {
	s.body.Reset()
	s.body.WriteByte('[')
	for i, r := range batch {
		if i > 0 {
			s.body.WriteByte(',')
		}
		s.body.Write(r)
	}
	s.body.WriteByte(']')
	body := s.body.Bytes()
	wait := s.cfg.Backoff
	derr := &DeliveryError{Endpoint: s.endpoint, Key: key}
	for attempt := 0; ; attempt++ {
		derr.Attempts = attempt + 1
		status, err := s.try(key, body)
		derr.Status, derr.Err = status, err
		switch {
		case err == nil && status/100 == 2:
			return nil
		case err != nil || status/100 == 5 || status == http.StatusTooManyRequests:
			derr.Retryable = true
		default:
			derr.Retryable = false
			return derr
		}
		if attempt >= s.cfg.MaxRetries {
			return derr
		}
		time.Sleep(wait) // backoff between attempts; the sink has no context to wait on
		wait = min(2*wait, 30*time.Second)
	}
}

// try makes one request; errors are stripped of the URL, which the client
// would otherwise quote in full.
func (s *webhookSink) try(key string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("cannot build the request")
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, redactedError{op: "request", err: err, secrets: s.secrets()}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// secrets lists the strings that must not appear in errors.
func (s *webhookSink) secrets() []string {
	var out []string
	if u, err := url.Parse(s.cfg.URL); err == nil {
		if u.User != nil {
			out = append(out, u.User.String())
		}
		if u.RawQuery != "" {
			out = append(out, u.RawQuery)
		}
	}
	for _, v := range s.cfg.Headers {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// redactedError keeps an error classifiable (errors.Is/As reach the cause)
// while scrubbing secrets from its text.
type redactedError struct {
	op      string
	err     error
	secrets []string
}

func (e redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, "REDACTED")
	}
	return e.op + ": " + msg
}

func (e redactedError) Unwrap() error { return e.err }
