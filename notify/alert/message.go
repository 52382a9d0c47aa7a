package alert

import (
	"sort"
	"strings"
	"time"
)

// Message is one notification of one alert group to one channel: what a
// channel delivers. Its fields are also the data of the channels' templates.
type Message struct {
	// IdempotencyKey is the same for every attempt at delivering this
	// notification through this channel, and different for anything else.
	// Receivers that may see a message twice (the outbox delivers at least
	// once) deduplicate by it.
	IdempotencyKey string `json:"-"`
	// NotificationID identifies the notification, shared by its channels.
	NotificationID string `json:"-"`
	// Attempt counts delivery attempts, from 1.
	Attempt int `json:"-"`
	// Done lists the recipients a previous attempt already reached (for
	// channels with several recipients per message that report partial
	// success, see channel.PartialError).
	Done []string `json:"-"`

	Receiver          string    `json:"receiver"`
	Status            string    `json:"status"`
	GroupKey          string    `json:"groupKey"`
	GroupLabels       Labels    `json:"groupLabels"`
	CommonLabels      Labels    `json:"commonLabels"`
	CommonAnnotations Labels    `json:"commonAnnotations"`
	ExternalURL       string    `json:"externalURL"`
	Alerts            Alerts    `json:"alerts"`
	Time              time.Time `json:"time"`
	TruncatedAlerts   int       `json:"truncatedAlerts,omitempty"`
}

// MessageAlert is an alert as it stands in a message.
type MessageAlert struct {
	Status       string    `json:"status"`
	Labels       Labels    `json:"labels"`
	Annotations  Labels    `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// Job, Event and Level are shortcuts for templates.
func (a MessageAlert) Job() string   { return a.Labels[LabelJob] }
func (a MessageAlert) Event() string { return a.Labels[LabelEvent] }
func (a MessageAlert) Level() string { return a.Labels[LabelLevel] }

// Alerts is a list of message alerts.
type Alerts []MessageAlert

// Firing returns the firing alerts.
func (as Alerts) Firing() Alerts { return as.with(StatusFiring) }

// Resolved returns the resolved alerts.
func (as Alerts) Resolved() Alerts { return as.with(StatusResolved) }

func (as Alerts) with(status string) Alerts {
	out := Alerts{}
	for _, a := range as {
		if a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// NewMessageAlert turns an alert into its message form as of the given time.
func NewMessageAlert(a Alert, at time.Time) MessageAlert {
	ann := a.Annotations
	if ann == nil {
		ann = Labels{}
	}
	return MessageAlert{
		Status: a.Status(at), Labels: a.Labels, Annotations: ann,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL,
		Fingerprint: a.Fingerprint().String(),
	}
}

// Common returns the label pairs every one of the label sets shares.
func Common(sets []Labels) Labels {
	out := Labels{}
	if len(sets) == 0 {
		return out
	}
	for k, v := range sets[0] {
		all := true
		for _, s := range sets[1:] {
			if w, ok := s[k]; !ok || w != v {
				all = false
				break
			}
		}
		if all {
			out[k] = v
		}
	}
	return out
}

// SortAlerts orders alerts by level (most severe first), then by start, then
// by fingerprint, so messages read the same every time.
func SortAlerts(as Alerts) {
	rank := func(l string) int {
		for i, k := range Levels {
			if string(k) == l {
				return i
			}
		}
		return len(Levels)
	}
	sort.SliceStable(as, func(i, j int) bool {
		ri, rj := rank(as[i].Level()), rank(as[j].Level())
		if ri != rj {
			return ri < rj
		}
		if !as[i].StartsAt.Equal(as[j].StartsAt) {
			return as[i].StartsAt.Before(as[j].StartsAt)
		}
		return strings.Compare(as[i].Fingerprint, as[j].Fingerprint) < 0
	})
}
