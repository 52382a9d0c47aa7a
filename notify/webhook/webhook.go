// Package webhook delivers notifications as JSON POSTs in the body format of
// Prometheus Alertmanager's webhook receiver (version 4), so that anything
// written for Alertmanager webhooks understands Tidewatch's. Each body is
// signed with HMAC-SHA256 when a secret is configured, and carries the
// notification's idempotency key.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

// Header names of a webhook request.
const (
	HeaderSignature      = "X-Tidewatch-Signature"
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderAttempt        = "X-Tidewatch-Attempt"
)

// Body is the JSON a webhook receives: Alertmanager's webhook payload.
type Body struct {
	Version           string       `json:"version"`
	GroupKey          string       `json:"groupKey"`
	TruncatedAlerts   int          `json:"truncatedAlerts"`
	Status            string       `json:"status"`
	Receiver          string       `json:"receiver"`
	GroupLabels       alert.Labels `json:"groupLabels"`
	CommonLabels      alert.Labels `json:"commonLabels"`
	CommonAnnotations alert.Labels `json:"commonAnnotations"`
	ExternalURL       string       `json:"externalURL"`
	Alerts            alert.Alerts `json:"alerts"`
}

// NewBody builds the payload of a message, keeping at most max alerts (0: all).
func NewBody(m *alert.Message, max int) Body {
	as := m.Alerts
	truncated := m.TruncatedAlerts
	if max > 0 && len(as) > max {
		truncated += len(as) - max
		as = as[:max]
	}
	return Body{Version: "4", GroupKey: m.GroupKey, TruncatedAlerts: truncated, Status: m.Status,
		Receiver: m.Receiver, GroupLabels: nonNil(m.GroupLabels), CommonLabels: nonNil(m.CommonLabels),
		CommonAnnotations: nonNil(m.CommonAnnotations), ExternalURL: m.ExternalURL, Alerts: as}
}

func nonNil(l alert.Labels) alert.Labels {
	if l == nil {
		return alert.Labels{}
	}
	return l
}

// Sign is the value of X-Tidewatch-Signature for a body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature header against a body in constant time; for
// receivers written in Go.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Channel posts to one webhook.
type Channel struct {
	cfg    Config
	client *http.Client
}

// New returns the channel; client nil means http.DefaultClient.
func New(cfg Config, client *http.Client) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Channel{cfg: cfg, client: client}, nil
}

// Send posts the message.
func (c *Channel) Send(ctx context.Context, m *alert.Message) error {
	body, err := json.Marshal(NewBody(m, c.cfg.MaxAlerts))
	if err != nil {
		return channel.Permanent("webhook", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderIdempotencyKey, m.IdempotencyKey)
	h.Set(HeaderAttempt, strconv.Itoa(m.Attempt))
	if c.cfg.Secret != "" {
		h.Set(HeaderSignature, Sign([]byte(c.cfg.Secret.Value()), body))
	}
	_, err = channel.Do(ctx, c.client, channel.Request{Channel: "webhook", Method: http.MethodPost,
		URL: c.cfg.URL.Value(), Header: h, Body: body, Secrets: append(channel.URLSecrets(c.cfg.URL.Value()), c.cfg.Secret.Value())})
	return err
}
