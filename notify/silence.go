package notify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// Silence states.
const (
	SilencePending = "pending"
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// Errors of silences.
var (
	ErrInvalidSilence = errors.New("notify: invalid silence")
	ErrNotFound       = errors.New("notify: not found")
	ErrExpired        = errors.New("notify: silence has expired")
)

// Silence mutes the alerts its matchers match between StartsAt and EndsAt:
// they are recorded, and shown as silenced, but not notified.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// State is pending, active or expired at the given time.
func (s *Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// Mutes reports whether the silence is active and matches the labels.
func (s *Silence) Mutes(ls alert.Labels, now time.Time) bool {
	return s.State(now) == SilenceActive && s.Matchers.Matches(ls)
}

// Validate checks a silence as a user gives it.
func (s *Silence) Validate() error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("%w: matchers: at least one is needed", ErrInvalidSilence)
	}
	if len(s.Matchers) > 32 {
		return fmt.Errorf("%w: matchers: at most 32", ErrInvalidSilence)
	}
	// A silence whose every matcher matches the empty string would match
	// alerts without the label too, and so, easily, every alert.
	selective := false
	for _, m := range s.Matchers {
		if m == nil {
			return fmt.Errorf("%w: matchers: null matcher", ErrInvalidSilence)
		}
		if !m.MatchesValue("") {
			selective = true
		}
	}
	if !selective {
		return fmt.Errorf("%w: matchers: at least one must not match the empty string", ErrInvalidSilence)
	}
	if s.StartsAt.IsZero() || s.EndsAt.IsZero() {
		return fmt.Errorf("%w: startsAt and endsAt must be set", ErrInvalidSilence)
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: endsAt must be after startsAt", ErrInvalidSilence)
	}
	if s.CreatedBy == "" || len(s.CreatedBy) > 128 {
		return fmt.Errorf("%w: createdBy: must be 1-128 bytes", ErrInvalidSilence)
	}
	if s.Comment == "" || len(s.Comment) > 1024 {
		return fmt.Errorf("%w: comment: must be 1-1024 bytes", ErrInvalidSilence)
	}
	return nil
}

// newID returns 32 random hex characters.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// silencer answers which silences mute an alert.
type silencer struct {
	silences map[string]*Silence
}

func (s *silencer) silencedBy(ls alert.Labels, now time.Time) []string {
	var out []string
	for id, sil := range s.silences {
		if sil.Mutes(ls, now) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func dedupSorted(s []string) []string {
	if len(s) < 2 {
		return s
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
