// Package alertmanager forwards notifications to an existing Prometheus
// Alertmanager through its API v2 (POST /api/v2/alerts), so that a site
// that already routes, silences and pages with Alertmanager keeps doing so.
//
// Alertmanager expects firing alerts to be sent again before its
// resolve_timeout (default 5m) passes, or it resolves them itself: give the
// route to this channel a repeat_interval below that timeout.
package alertmanager

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

// PostableAlert is one element of the body of POST /api/v2/alerts.
type PostableAlert struct {
	Labels       alert.Labels `json:"labels"`
	Annotations  alert.Labels `json:"annotations,omitempty"`
	StartsAt     *time.Time   `json:"startsAt,omitempty"`
	EndsAt       *time.Time   `json:"endsAt,omitempty"`
	GeneratorURL string       `json:"generatorURL,omitempty"`
}

// Postable turns a message's alerts into Alertmanager's form: resolved
// alerts carry their endsAt, firing ones none (Alertmanager applies its
// resolve_timeout).
func Postable(m *alert.Message) []PostableAlert {
	out := make([]PostableAlert, 0, len(m.Alerts))
	for _, a := range m.Alerts {
		p := PostableAlert{Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: a.GeneratorURL}
		if !a.StartsAt.IsZero() {
			t := a.StartsAt.UTC()
			p.StartsAt = &t
		}
		if a.Status == alert.StatusResolved && !a.EndsAt.IsZero() {
			t := a.EndsAt.UTC()
			p.EndsAt = &t
		}
		out = append(out, p)
	}
	return out
}

// Channel posts to one Alertmanager.
type Channel struct {
	cfg    Config
	url    string
	client *http.Client
}

// New returns the channel; client nil means http.DefaultClient.
func New(cfg Config, client *http.Client) (*Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Channel{cfg: cfg, url: strings.TrimRight(cfg.URL.Value(), "/") + "/api/v2/alerts", client: client}, nil
}

// Send posts the message's alerts.
func (c *Channel) Send(ctx context.Context, m *alert.Message) error {
	body, err := json.Marshal(Postable(m))
	if err != nil {
		return channel.Permanent("alertmanager", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", m.IdempotencyKey)
	if c.cfg.BearerToken != "" {
		h.Set("Authorization", "Bearer "+c.cfg.BearerToken.Value())
	}
	_, err = channel.Do(ctx, c.client, channel.Request{Channel: "alertmanager", Method: http.MethodPost, URL: c.url,
		Header: h, Body: body, Secrets: append(channel.URLSecrets(c.cfg.URL.Value()), c.cfg.BearerToken.Value())})
	return err
}
